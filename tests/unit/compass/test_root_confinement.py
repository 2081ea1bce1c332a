"""Issue 18 item 5: paths in a dataset's index.csv never leave the dataset's own folder."""

from __future__ import annotations

import csv
from pathlib import Path

from compass.data.roots import list_records
from tests.support import shared_data

FEP_HEADER = ["group", "series", "protein", "sdf_index", "ligand", "pK", "protein_file", "ligands_file"]


def _fep_root(tmp_path: Path, rows: list[tuple[str, str]]) -> Path:
    root = tmp_path / "mine"
    (root / "s").mkdir(parents=True)
    (root / "s" / "p.pdb").write_text("ATOM\n")
    (root / "s" / "l.sdf").write_text("$$$$\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "secret.pdb").write_text("ATOM\n")
    with (root / "index.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(FEP_HEADER)
        for i, (protein, ligands) in enumerate(rows):
            writer.writerow(["g", "s", "P", i, f"lig{i}", 6.0, protein, ligands])
    return root


def test_fep_rows_pointing_outside_the_dataset_are_refused_with_the_reason(tmp_path: Path) -> None:
    secret = str(tmp_path / "other" / "secret.pdb")
    root = _fep_root(
        tmp_path,
        [
            ("s/p.pdb", "s/l.sdf"),
            ("../other/secret.pdb", "s/l.sdf"),
            (secret, "s/l.sdf"),
            ("s/p.pdb", "s/../../other/secret.pdb"),
            ("s/../s/p.pdb", "s/l.sdf"),  # a detour that stays inside is fine
        ],
    )
    (root / "s" / "escape.pdb").symlink_to(tmp_path / "other" / "secret.pdb")
    with (root / "index.csv").open("a", newline="") as fh:
        csv.writer(fh).writerow(["g", "s", "P", 5, "lig5", 6.0, "s/escape.pdb", "s/l.sdf"])
    _, records, skipped = list_records(root)
    assert [r.key for r in records] == ["g/s/0", "g/s/4"]
    assert {s.key for s in skipped} == {"g/s/1", "g/s/2", "g/s/3", "g/s/5"}
    assert all("outside the dataset folder" in s.reason for s in skipped)
    assert all(Path(r.protein_path).is_relative_to(root.resolve()) for r in records)


def test_complex_ids_that_are_paths_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    source = shared_data("casf2016", "1a30")
    (root / "1a30").mkdir(parents=True)
    for f in source.iterdir():
        (root / "1a30" / f.name).write_bytes(f.read_bytes())
    outside = tmp_path / "1bcu"
    outside.mkdir()
    for f in shared_data("casf2016", "1bcu").iterdir():
        (outside / f.name).write_bytes(f.read_bytes())
    rows = ["1a30", "../1bcu", str(outside), "1a30/../../1bcu"]
    (root / "index.csv").write_text("pdb_id,pK\n" + "".join(f"{r},6.0\n" for r in rows))
    _, records, skipped = list_records(root)
    assert [r.key for r in records] == ["1a30"]
    assert len(skipped) == 3 and all("outside the dataset folder" in s.reason for s in skipped)
