"""Receptor preparation: hydrogens, AutoDock types, the content-hash cache, empty proteins."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from docking import receptor as rec
from docking.errors import DockingError
from tests.support import REPO

PROTEIN = (REPO / "examples" / "complexes" / "1o3f" / "1o3f_pocket.pdb").read_text()
NO_H = "\n".join(ln for ln in PROTEIN.splitlines() if ln.startswith("ATOM") and ln[76:78].strip() != "H") + "\nEND\n"


def test_prepared_from_a_pdb_without_hydrogens_and_cached(tmp_path: Path) -> None:
    first = rec.prepare(NO_H, rec.ReceptorOptions(), tmp_path)
    lines = first.pdbqt.read_text().splitlines()
    types = {ln[77:79].strip() for ln in lines}
    assert {"C", "A", "N", "OA", "HD"} <= types, "aromatic carbons, polar hydrogens and acceptors are typed"
    assert "H" not in types, "non-polar hydrogens are merged"
    assert " H" in first.pdb.read_text(), "PDBFixer added hydrogens"
    assert all(len(ln) >= 79 and float(ln[30:38]) == float(ln[30:38]) for ln in lines)
    again = rec.prepare(NO_H, rec.ReceptorOptions(), tmp_path)
    assert again.cached and again.key == first.key and not first.cached
    other = rec.prepare(NO_H, rec.ReceptorOptions(ph=5.0), tmp_path)
    assert other.key != first.key, "options are part of the cache key"


def test_the_same_pdb_gives_the_same_receptor_whatever_the_random_state(tmp_path: Path) -> None:
    """OpenMM draws new hydrogens' positions from Python's global ``random``: seeded, a fresh worker
    prepares the receptor a cached one has, byte for byte, and the caller's random state is untouched."""
    random.seed(1)
    first = rec.prepare(NO_H, rec.ReceptorOptions(), tmp_path / "a")
    random.seed(2)
    state = random.getstate()
    second = rec.prepare(NO_H, rec.ReceptorOptions(), tmp_path / "b")
    assert random.getstate() == state, "the global random state is restored"
    assert not first.cached and not second.cached
    assert second.pdb.read_text() == first.pdb.read_text()
    assert second.pdbqt.read_text() == first.pdbqt.read_text()


def test_waters_go_unless_kept(tmp_path: Path) -> None:
    water = "HETATM 9999  O   HOH W 900      10.000  10.000  10.000  1.00  0.00           O\n"
    residues = sorted({ln[22:26] for ln in NO_H.splitlines() if ln.startswith("ATOM")})[:3]
    fragment = "\n".join(ln for ln in NO_H.splitlines() if ln[22:26] in residues)
    text = fragment + "\n" + water + "END\n"
    dry = rec.prepare(text, rec.ReceptorOptions(), tmp_path).pdbqt.read_text()
    wet = rec.prepare(text, rec.ReceptorOptions(keep_waters=True), tmp_path).pdbqt.read_text()
    assert "HOH" not in dry and "HOH" in wet


@pytest.mark.parametrize(
    "text", ["", "HEADER x\nEND\n", "HETATM    1 ZN   ZN  A   1       0.000   0.000   0.000  1.00  0.00          ZN\n"]
)
def test_no_protein_atoms_is_invalid_structure(text: str, tmp_path: Path) -> None:
    with pytest.raises(DockingError, match="no ATOM records") as info:
        rec.prepare(text, rec.ReceptorOptions(), tmp_path)
    assert info.value.code == "INVALID_STRUCTURE"


def test_atom_cap() -> None:
    with pytest.raises(DockingError, match="more than 10 atoms"):
        rec.parse_pdb(PROTEIN, 10)
