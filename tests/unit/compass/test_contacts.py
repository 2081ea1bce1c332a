"""Element-pair counts: the rule on hand-made atoms, and against the shipped PDBbind table."""

from __future__ import annotations

import csv

import numpy as np

from compass.data.contacts import PAIR_NAMES, contact_protein_atoms, pair_counts
from compass.data.pair_inputs import dbref_uniprot
from compass.data.structures import Atoms, read_ligand
from tests.support import shared_data


def _atom(record: str, serial: int, name: str, resname: str, xyz: tuple[float, float, float], element: str) -> str:
    x, y, z = xyz
    coords = f"{x:8.3f}{y:8.3f}{z:8.3f}"
    return f"{record:<6s}{serial:5d} {name:<4s} {resname:>3s} A{1:4d}    {coords}  1.00  0.00          {element:>2s}"


PDB = "\n".join(
    [
        "DBREF  1ABC A    1   100  UNP    P00734   THRB_HUMAN     328    622",
        _atom("ATOM", 1, "CA", "ALA", (0.0, 0.0, 0.0), "C"),
        _atom("ATOM", 2, "OG1", "THR", (1.0, 0.0, 0.0), "O"),
        _atom("ATOM", 3, "SD", "MET", (5.0, 0.0, 0.0), "S"),
        _atom("ATOM", 4, "HA", "ALA", (0.5, 0.0, 0.0), "H"),  # hydrogen: not counted
        _atom("ATOM", 5, "C1", "NAG", (0.2, 0.0, 0.0), "C"),  # not a standard residue
        _atom("HETATM", 6, "ZN", "ZN", (0.1, 0.0, 0.0), "ZN"),  # HETATM: not counted
        _atom("HETATM", 7, "O", "HOH", (0.1, 0.0, 0.0), "O"),  # water: not counted
        _atom("ATOM", 8, "CA", "GLY", (9.0, 0.0, 0.0), "C"),
    ]
)


def test_rule_counts_standard_residue_heavy_atoms_only() -> None:
    protein = contact_protein_atoms(PDB)
    assert protein.elements == ["C", "O", "S", "C"]
    ligand = Atoms(["N", "Cl", "Se"], np.array([[0.0, 0.0, 3.0], [4.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=np.float32))
    counts = pair_counts(protein, ligand, [3.0, 6.0, 12.0])
    col = {name: i for i, name in enumerate(PAIR_NAMES)}
    # Ligand N at z=3: C at 3.0 Å (inclusive), O at 3.16, S at 5.83, far C at 9.49.
    assert counts[0, col["C-N"]] == 1 and counts[0, col["O-N"]] == 0
    assert counts[1, col["O-N"]] == 1 and counts[1, col["S-N"]] == 1 and counts[1, col["C-N"]] == 1
    assert counts[2, col["C-N"]] == 2
    # Ligand Cl at x=4: O at 3, C at 4, S at 1, far C at 5.
    assert counts[1, col["C-Cl"]] == 2 and counts[0, col["O-Cl"]] == 1 and counts[0, col["S-Cl"]] == 1
    assert (np.diff(counts, axis=0) >= 0).all()  # cumulative over distance
    assert counts.sum() == counts[:, [col[n] for n in PAIR_NAMES]].sum()  # Se is in no column
    assert dbref_uniprot(PDB) == ["P00734"]


def test_table_rule_reproduced_on_casf_pockets() -> None:
    """At 6 Å at least 200 of the 285 CASF-2016 vectors match the shipped table exactly (median diff 0)."""
    casf = shared_data("casf2016")
    table = shared_data("pdbbind_features", "elements", "elements_6.0.csv")
    with table.open() as fh:
        rows = {r["pdb_id"]: np.array([float(r[n]) for n in PAIR_NAMES]) for r in csv.DictReader(fh)}
    with (casf / "index.csv").open() as fh:
        ids = [r["pdb_id"] for r in csv.DictReader(fh)]
    identical, rel = 0, []
    for pdb in ids:
        protein = contact_protein_atoms((casf / pdb / f"{pdb}_pocket.pdb").read_text())
        ligand = read_ligand([casf / pdb / f"{pdb}_ligand.sdf", casf / pdb / f"{pdb}_ligand.mol2"])
        mine, theirs = pair_counts(protein, ligand, [6.0])[0], rows[pdb]
        identical += bool(np.array_equal(mine, theirs))
        rel.append(np.abs(mine - theirs).sum() / max(theirs.sum(), 1.0))
    assert len(ids) == 285
    assert identical >= 200, identical
    assert float(np.median(rel)) == 0.0
