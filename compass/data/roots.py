"""Data roots: recognise a folder's layout and list its labelled complexes.

Three layouts (DESIGN "Data roots"):

- ``fep``: ``index.csv`` with ``protein_file``, ``ligands_file``, ``sdf_index``, ``pK`` (one
  multi-record SDF per series);
- ``complexes``: ``index.csv`` with ``pdb_id``, ``pK`` and per-complex folders
  ``<id>/<id>_pocket.pdb`` or ``_protein.pdb|pdbqt`` + ``_ligand.sdf|mol2|pdbqt``;
- ``pdbbind``: PDBbind's own index files (``INDEX_refined_data.20xx``,
  ``index/INDEX_general_PL*.20xx`` ...) with structures under ``refined/``, ``P-L/<years>/``,
  ``sample/`` or the root itself. Ids of the index without files are reported as missing.

Rows that cannot become a complex (no label, no files) are returned as :class:`Skipped` with the
reason, never dropped silently. So are rows whose paths lead outside the root (``..``, absolute
paths, links): an uploaded index must never reach another dataset or the server's files.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compass.data.graph import ComplexRecord

KCAL_PER_PK = 1.3643  # RT ln 10 at 298.15 K: ΔG = -1.3643 pK
PROTEIN_SUFFIXES = ("_pocket.pdb", "_protein.pdb", "_protein.pdbqt", "_pocket.pdbqt")
LIGAND_SUFFIXES = ("_ligand.sdf", "_ligand.mol2", "_ligand.pdbqt")
_PDBBIND_INDEX_GLOBS = ("INDEX_refined_data.*", "INDEX_general_PL_data.*", "index/INDEX_*.lst", "index/INDEX_*data.*")
_PDBBIND_LINE = re.compile(r"^(\w{4})\s+(\S+)\s+(\d{4})\s+([\d.]+)\s+(\S+)")
_AFFINITY_TYPE = re.compile(r"^(Kd|Ki|IC50|EC50|Ka)", re.IGNORECASE)


def affinity_type(affinity: str) -> str:
    """``Kd``, ``Ki``, ``IC50`` ... from an affinity string such as ``Ki<=100nM`` ("" when unknown)."""
    match = _AFFINITY_TYPE.match(affinity.strip())
    return {"kd": "Kd", "ki": "Ki", "ic50": "IC50", "ec50": "EC50", "ka": "Ka"}[match.group(1).lower()] if match else ""


@dataclass
class Skipped:
    """An index row that is not a usable complex, and why."""

    key: str
    reason: str


class LayoutError(ValueError):
    """The folder is not a data root this loader understands."""


def _float_or_none(value: str | None) -> float | None:
    if value is None or not str(value).strip():
        return None
    try:
        out = float(value)
    except ValueError:
        return None
    return out if math.isfinite(out) else None


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def detect_layout(root: Path) -> str:
    """``fep``, ``pdbbind`` or ``complexes``; a clear error for anything else."""
    index = root / "index.csv"
    if index.is_file():
        with index.open(newline="") as fh:
            header = next(csv.reader(fh), [])
        if {"protein_file", "ligands_file", "pK"} <= set(header):
            return "fep"
    if _pdbbind_index_files(root):
        return "pdbbind"
    if index.is_file():
        with index.open(newline="") as fh:
            header = next(csv.reader(fh), [])
        if {"pdb_id", "pK"} <= set(header):
            return "complexes"
        raise LayoutError(f"{index} has neither FEP columns nor pdb_id,pK (columns: {', '.join(header)})")
    raise LayoutError(f"{root} has no index.csv and no PDBbind INDEX file: not a data root")


def _pdbbind_index_files(root: Path) -> list[Path]:
    found: list[Path] = []
    for pattern in _PDBBIND_INDEX_GLOBS:
        found.extend(p for p in sorted(root.glob(pattern)) if p.is_file() and "name" not in p.name.lower())
    return found


def list_records(root: str | Path) -> tuple[str, list[ComplexRecord], list[Skipped]]:
    """Layout, usable records and skipped rows of a data root."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise LayoutError(f"data root {root} is not a folder")
    layout = detect_layout(root)
    reader = {"fep": _fep_records, "complexes": _complex_records, "pdbbind": _pdbbind_records}[layout]
    records, skipped = reader(root)
    return layout, records, skipped


_OUTSIDE = "outside the dataset folder"


def inside_root(root: Path, relative: str) -> Path | None:
    """``root / relative`` with links and ``..`` resolved, or None when that is not under ``root``."""
    path = (root / relative).resolve()
    return path if path.is_relative_to(root) else None


def _fep_records(root: Path) -> tuple[list[ComplexRecord], list[Skipped]]:
    records, skipped = [], []
    for row in _read_csv(root / "index.csv"):
        key = f"{row.get('group', '')}/{row.get('series', '')}/{row['sdf_index']}"
        pk = _float_or_none(row.get("pK"))
        if pk is None:
            skipped.append(Skipped(key, "no experimental affinity in the index"))
            continue
        protein_path = inside_root(root, row["protein_file"])
        ligands_path = inside_root(root, row["ligands_file"])
        if protein_path is None or ligands_path is None:
            which = "protein_file" if protein_path is None else "ligands_file"
            skipped.append(Skipped(key, f"{which} {row[which]!r} is {_OUTSIDE}"))
            continue
        fep_dg = _float_or_none(row.get("fep_plus_dg_kcal_mol"))
        protein = (row.get("protein") or row.get("series") or "").strip()
        records.append(
            ComplexRecord(
                key=key,
                protein_path=str(protein_path),
                ligand_paths=[str(ligands_path)],
                pK=pk,
                group=protein.lower(),
                series=f"{row.get('group', '')}/{row.get('series', '')}",
                molecule=row.get("ligand", "") or key,
                sdf_index=int(row["sdf_index"]),
                fep_plus_pK=None if fep_dg is None else -fep_dg / KCAL_PER_PK,
                extra={"reference_pdb": row.get("reference_pdb", "")},
            )
        )
    return records, skipped


def find_complex_files(folder: Path, pdb_id: str) -> tuple[Path | None, list[Path]]:
    """Protein file (pocket preferred: smaller, same result after cropping) and ligand files in preference order."""
    protein = next((folder / f"{pdb_id}{s}" for s in PROTEIN_SUFFIXES if (folder / f"{pdb_id}{s}").is_file()), None)
    ligands = [folder / f"{pdb_id}{s}" for s in LIGAND_SUFFIXES if (folder / f"{pdb_id}{s}").is_file()]
    return protein, ligands


def _missing_reason(protein: Path | None, ligands: list[Path]) -> str | None:
    if protein is None and not ligands:
        return "missing files: no protein or pocket and no ligand file"
    if protein is None:
        return "missing files: no protein or pocket file"
    if not ligands:
        return "missing files: no ligand file (sdf, mol2 or pdbqt)"
    return None


def _escaping(root: Path, protein: Path | None, ligands: list[Path]) -> str | None:
    """A reason when a structure file is a link leading out of the root."""
    for path in [p for p in (protein, *ligands) if p is not None]:
        if not path.resolve().is_relative_to(root):
            return f"{path.name} links to a file {_OUTSIDE}"
    return None


def _complex_records(root: Path) -> tuple[list[ComplexRecord], list[Skipped]]:
    records, skipped = [], []
    for row in _read_csv(root / "index.csv"):
        pdb_id = row["pdb_id"].strip()
        pk = _float_or_none(row.get("pK"))
        if pk is None:
            skipped.append(Skipped(pdb_id, "no affinity label in the index"))
            continue
        folder = inside_root(root, pdb_id)
        if folder is None or folder.parent != root:  # an id names one folder of the root, nothing else
            skipped.append(Skipped(pdb_id, f"pdb_id {pdb_id!r} names a folder {_OUTSIDE}"))
            continue
        files = _located(root, folder, pdb_id, skipped)
        if files is None:
            continue
        cluster = (row.get("cluster") or "").strip()
        group = (row.get("uniprot") or "").strip() or (f"cluster-{cluster}" if cluster else pdb_id)
        extra = {k: v for k, v in row.items() if k not in ("pdb_id", "pK") and v is not None}
        extra.setdefault("affinity_type", affinity_type(row.get("affinity") or ""))
        records.append(_record(pdb_id, files, pk, group, extra, series=cluster))
    return records, skipped


def _located(root: Path, folder: Path, pdb_id: str, skipped: list[Skipped]) -> tuple[Path, list[Path]] | None:
    """The complex's protein and ligand files, or None with the reason added to ``skipped``."""
    protein, ligands = find_complex_files(folder, pdb_id)
    reason = _missing_reason(protein, ligands) or _escaping(root, protein, ligands)
    if reason or protein is None:
        skipped.append(Skipped(pdb_id, reason or "missing files: no protein or pocket"))
        return None
    return protein, ligands


def _record(
    pdb_id: str, files: tuple[Path, list[Path]], pk: float, group: str, extra: dict[str, Any], series: str = ""
) -> ComplexRecord:
    protein, ligands = files
    return ComplexRecord(
        key=pdb_id,
        protein_path=str(protein),
        ligand_paths=[str(p) for p in ligands],
        pK=pk,
        group=group,
        series=series,
        molecule=pdb_id,
        extra=extra,
    )


def _pdbbind_folders(root: Path) -> dict[str, Path]:
    """Every ``<id>/`` folder in the places PDBbind releases (and our sample) put them."""
    folders: dict[str, Path] = {}
    places = [root, root / "refined", root / "refined-set", root / "general-set", root / "sample"]
    for parent in [*places, *sorted(root.glob("P-L/*"))]:
        if not parent.is_dir():
            continue
        for child in parent.iterdir():
            if child.is_dir() and len(child.name) == 4 and child.name not in folders:
                folders[child.name] = child
    return folders


def parse_pdbbind_index(path: Path) -> list[tuple[str, float, str, str]]:
    """``(pdb_id, pK, affinity, year)`` rows of a PDBbind INDEX file (comment lines skipped)."""
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        match = _PDBBIND_LINE.match(line)
        if match:
            rows.append((match.group(1).lower(), float(match.group(4)), match.group(5), match.group(3)))
    return rows


def _pdbbind_records(root: Path) -> tuple[list[ComplexRecord], list[Skipped]]:
    folders = _pdbbind_folders(root)
    records, skipped, seen = [], [], set()
    for index_file in _pdbbind_index_files(root):
        for pdb_id, pk, affinity, year in parse_pdbbind_index(index_file):
            if pdb_id in seen:
                continue
            seen.add(pdb_id)
            folder = folders.get(pdb_id)
            if folder is None:
                skipped.append(Skipped(pdb_id, "missing files: no folder for this id"))
                continue
            files = _located(root, folder, pdb_id, skipped)
            if files is None:
                continue
            extra = {
                "affinity": affinity,
                "affinity_type": affinity_type(affinity),
                "release_year": year,
                "index": index_file.name,
            }
            records.append(_record(pdb_id, files, pk, pdb_id, extra))
    return records, skipped
