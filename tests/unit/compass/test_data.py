"""The structure pipeline on real files: every layout, ligand flag, crop radius, failures with reasons."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from compass.data import FeatureSettings, LayoutError, StructureError, featurize_files, featurize_texts, load_root
from compass.data.graph import NUM_ELEMENTS, element_index, pack, unpack
from compass.data.roots import affinity_type, detect_layout, list_records
from compass.data.structures import parse_pdb_text, read_ligand, read_protein
from tests.support import shared_data

# The 7 PDBbind sample SDFs RDKit cannot sanitise (data README, "Known quirks").
UNSANITISABLE_SDF = {"10gs", "1a4w", "1k22", "1ypg", "2r9w", "3bpc", "4kiu"}


def _ligand_protein_distances(graph) -> np.ndarray:
    lig = graph.pos[graph.is_ligand]
    prot = graph.pos[~graph.is_ligand]
    return cdist(prot, lig).min(1)


def test_pdbbind_sample_all_featurise_and_unsanitisable_sdfs_are_reported_not_dropped() -> None:
    root = shared_data("pdbbind", "sample")
    settings = FeatureSettings(crop_radius=6.0)
    loaded = load_root(root, settings, progress=False)
    assert loaded.layout == "complexes"
    assert loaded.survival.featurised == 24 and not loaded.survival.failed
    partial = {n["key"] for n in loaded.survival.notes if "partial sanitisation" in n["reason"]}
    assert partial == UNSANITISABLE_SDF
    for graph in loaded.graphs:
        # Ligand atoms come first and carry the ligand offset; protein atoms never do.
        n_lig = graph.num_ligand_atoms
        assert n_lig > 0 and bool(graph.is_ligand[:n_lig].all()) and not bool(graph.is_ligand[n_lig:].any())
        assert bool((graph.atom_type[:n_lig] >= NUM_ELEMENTS).all())
        assert bool((graph.atom_type[n_lig:] < NUM_ELEMENTS).all())
        assert float(_ligand_protein_distances(graph).max()) <= 6.0 + 1e-4


def test_crop_radius_keeps_exactly_the_atoms_within_it() -> None:
    folder = shared_data("casf2016", "1a30")
    protein = read_protein(folder / "1a30_pocket.pdb")
    ligand = read_ligand([folder / "1a30_ligand.sdf"])
    for radius in (4.0, 8.0):
        graph, _ = featurize_files(folder / "1a30_pocket.pdb", [folder / "1a30_ligand.sdf"], FeatureSettings(radius))
        d = np.sqrt(((protein.coords[:, None] - ligand.coords[None]) ** 2).sum(-1)).min(1)
        assert graph.num_atoms - graph.num_ligand_atoms == int((d <= radius).sum())
    capped, _ = featurize_files(
        folder / "1a30_pocket.pdb", [folder / "1a30_ligand.sdf"], FeatureSettings(8.0, max_protein_atoms=50)
    )
    assert capped.num_atoms - capped.num_ligand_atoms == 50
    # The 50 kept are the nearest ones.
    assert float(_ligand_protein_distances(capped).max()) <= float(np.sort(d)[49]) + 1e-4


def test_fep_root_reads_every_labelled_record_and_reports_the_unlabelled() -> None:
    loaded = load_root(shared_data("fep"), progress=False)
    assert loaded.layout == "fep"
    assert loaded.survival.featurised == 1141 and not loaded.survival.failed
    assert len(loaded.survival.skipped) == 13
    assert all(s["reason"] == "no experimental affinity in the index" for s in loaded.survival.skipped)
    bace = [r for r in loaded.records if r.series == "jacs_set/bace"]
    assert len(bace) > 20 and {r.group for r in bace} == {"bace1"}
    with_fep = [r for r in loaded.records if r.fep_plus_pK is not None]
    assert 900 < len(with_fep) < 1141
    # Same SDF, different records: different ligands, same protein pocket region.
    g0, g1 = loaded.graphs[loaded.records.index(bace[0])], loaded.graphs[loaded.records.index(bace[1])]
    assert not np.array_equal(g0.pos[g0.is_ligand], g1.pos[g1.is_ligand])


def test_pdbqt_complexes_map_autodock_types_and_drop_hydrogens() -> None:
    folder = shared_data("pdbqt_extra", "5zcu")
    protein = read_protein(folder / "5zcu_protein.pdbqt")
    ligand = read_ligand(folder / "5zcu_ligand.pdbqt")
    assert "H" not in protein.elements and "H" not in ligand.elements
    assert {"A", "OA", "NA", "HD"}.isdisjoint(set(protein.elements) | set(ligand.elements))
    assert {"C", "N", "O"} <= set(protein.elements)
    text = (folder / "5zcu_ligand.pdbqt").read_text()
    heavy = sum(
        1 for line in text.splitlines() if line.startswith(("ATOM", "HETATM")) and line.split()[-1] not in ("HD", "H")
    )
    assert len(ligand) == heavy


def test_ligand_fallback_from_a_broken_sdf_to_mol2_is_recorded(tmp_path: Path) -> None:
    src = shared_data("casf2016", "1a30")
    (tmp_path / "bad.sdf").write_text("not an sdf\n$$$$\n")
    shutil.copy(src / "1a30_ligand.mol2", tmp_path / "good.mol2")
    atoms = read_ligand([tmp_path / "bad.sdf", tmp_path / "good.mol2"])
    assert len(atoms) > 0 and any("fallback to good.mol2" in n for n in atoms.notes)
    with pytest.raises(StructureError, match=r"bad\.sdf.*missing\.mol2: missing"):
        read_ligand([tmp_path / "bad.sdf", tmp_path / "missing.mol2"])


def test_structure_errors_say_why() -> None:
    pocket = shared_data("casf2016", "1a30", "1a30_pocket.pdb").read_text()
    ligand = shared_data("casf2016", "1a30", "1a30_ligand.sdf").read_text()
    with pytest.raises(StructureError, match="no heavy atoms"):
        featurize_texts("HEADER nothing\n", ligand, "sdf", FeatureSettings())
    with pytest.raises(StructureError, match="cannot parse SDF"):
        featurize_texts(pocket, "garbage\n\n\n  0  0\n$$$$\n", "sdf", FeatureSettings())
    with pytest.raises(StructureError, match="ligand format"):
        featurize_texts(pocket, ligand, "xyz", FeatureSettings())
    with pytest.raises(StructureError, match="max_ligand_atoms"):
        featurize_texts(pocket, ligand, "sdf", FeatureSettings(max_ligand_atoms=5))
    # Move the ligand 100 Å away: the pocket is empty, which is an error, not an empty graph.
    moved = parse_pdb_text(pocket)
    far = "\n".join(
        f"HETATM{i + 1:5d}  C   LIG A   1    {x + 100:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00           C"
        for i, (x, y, z) in enumerate(moved.coords[:3])
    )
    with pytest.raises(StructureError, match="same coordinate frame"):
        featurize_texts(pocket, far, "pdbqt", FeatureSettings())


def test_pdbbind_layout_uses_what_has_files_and_reports_the_rest_missing() -> None:
    root = shared_data("pdbbind")
    layout, records, skipped = list_records(root)
    assert layout == "pdbbind"
    ids = {r.key for r in records}
    # 4x6p is in the sample but not in the v2017 refined index: not a record of this root.
    assert len(ids) == 23 and "4x6p" not in ids and "10gs" in ids
    assert len(records) + len(skipped) == 4154
    assert all(s.reason.startswith("missing files") for s in skipped)
    assert {r.extra["affinity_type"] for r in records} <= {"Kd", "Ki"}


def test_layout_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="not a data root"):
        detect_layout(tmp_path)
    (tmp_path / "index.csv").write_text("a,b\n1,2\n")
    with pytest.raises(LayoutError, match="columns: a, b"):
        detect_layout(tmp_path)


def test_cache_round_trip_and_key_changes_with_settings(tmp_path: Path) -> None:
    root = shared_data("pdbbind", "sample")
    first = load_root(root, FeatureSettings(crop_radius=5.0), cache_dir=tmp_path, progress=False)
    files = list(tmp_path.glob("*.pt"))
    assert len(files) == 1
    again = load_root(root, FeatureSettings(crop_radius=5.0), cache_dir=tmp_path, progress=False)
    assert again.data_hash == first.data_hash
    for a, b in zip(first.graphs, again.graphs, strict=True):
        assert a.key == b.key and np.array_equal(a.pos, b.pos) and np.array_equal(a.atom_type, b.atom_type)
    direct = load_root(files[0])  # the GPU machine reads the .pt without RDKit or the structures
    assert [g.key for g in direct.graphs] == [g.key for g in first.graphs]
    other = load_root(root, FeatureSettings(crop_radius=6.0), cache_dir=tmp_path, progress=False)
    assert other.data_hash != first.data_hash and len(list(tmp_path.glob("*.pt"))) == 2


def test_pack_unpack_and_element_vocabulary() -> None:
    assert element_index("cl") == element_index("Cl") and element_index("ZN") == element_index("Mg")
    assert element_index("Xe") == element_index("other")
    loaded = load_root(shared_data("pdbbind", "sample"), FeatureSettings(crop_radius=4.0), progress=False)
    back = unpack(pack(loaded.graphs))
    assert [g.key for g in back] == [g.key for g in loaded.graphs]
    assert all(np.array_equal(a.is_ligand, b.is_ligand) for a, b in zip(back, loaded.graphs, strict=True))


def test_affinity_type_parsing() -> None:
    assert affinity_type("Ki<=100nM") == "Ki"
    assert affinity_type("IC50=2160nM") == "IC50"
    assert affinity_type("kd=1uM") == "Kd"
    assert affinity_type("") == ""
