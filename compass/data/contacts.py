"""Protein–ligand element-pair counts by the rule of ``pdbbind_features/`` (RF-Score / ECIF family).

The 9,299-complex training table in ``../shared/data/pdbbind_features/`` holds no structures,
only these counts, so a model trained on it can score a user's complex only if the counts are
computed here exactly as they were there:

* protein atoms: heavy atoms of ``ATOM`` records of the 20 standard amino acids (no HETATM, no
  waters, metals or hydrogens), first model, the element read from the atom name (``CA`` is a
  carbon, ``OG1`` an oxygen, ``SD`` a sulfur);
* ligand atoms: the ligand's heavy atoms;
* a pair counts when its distance is ≤ the cutoff; counts are cumulative over distance.

36 columns, protein element {C, N, O, S} × ligand element {Br, C, Cl, F, I, N, O, P, S}, named
``P-L`` as in the table. Ligand elements outside the nine are not counted (as in the table).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from compass.data.structures import Atoms, StructureError

PROTEIN_ELEMENTS: tuple[str, ...] = ("C", "N", "O", "S")
LIGAND_ELEMENTS: tuple[str, ...] = ("Br", "C", "Cl", "F", "I", "N", "O", "P", "S")
PAIR_NAMES: tuple[str, ...] = tuple(f"{p}-{lig}" for p in PROTEIN_ELEMENTS for lig in LIGAND_ELEMENTS)
N_PAIRS = len(PAIR_NAMES)
STANDARD_RESIDUES = frozenset(
    "ALA ARG ASN ASP CYS GLN GLU GLY HIS ILE LEU LYS MET PHE PRO SER THR TRP TYR VAL".split()  # noqa: SIM905
)
_P_INDEX = {e: i for i, e in enumerate(PROTEIN_ELEMENTS)}
_L_INDEX = {e: i for i, e in enumerate(LIGAND_ELEMENTS)}


def contact_protein_atoms(text: str) -> Atoms:
    """Protein atoms the rule counts, from PDB or PDBQT text (atom names are the same in both)."""
    elements: list[str] = []
    coords: list[tuple[float, float, float]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("ENDMDL"):
            break
        if not line.startswith("ATOM  ") or line[17:20].strip() not in STANDARD_RESIDUES:
            continue
        if len(line) < 54:  # the coordinates are fixed columns 31-54
            raise StructureError(f"line {number}: ATOM record of {len(line)} characters; coordinates need 54")
        if line[16] not in (" ", "A", "1"):
            continue
        name = line[12:16].strip().lstrip("0123456789")
        element = name[:1].upper()
        if element not in _P_INDEX:
            continue  # hydrogens (H, D and numbered names such as 1HB)
        try:
            coords.append((float(line[30:38]), float(line[38:46]), float(line[46:54])))
        except ValueError as exc:
            raise StructureError(f"line {number}: bad coordinates in {line[:54]!r}") from exc
        elements.append(element)
    if not elements:
        raise StructureError("no standard amino-acid ATOM records: is this a protein PDB/PDBQT file?")
    return Atoms(elements, np.asarray(coords, dtype=np.float32))


def pair_counts(protein: Atoms, ligand: Atoms, cutoffs: tuple[float, ...] | list[float]) -> np.ndarray:
    """Counts ``[len(cutoffs), 36]`` (float64) of protein–ligand pairs within each cutoff (Å, inclusive)."""
    cutoffs = tuple(float(c) for c in cutoffs)
    out = np.zeros((len(cutoffs), N_PAIRS))
    if not cutoffs:
        return out
    p_idx = np.array([_P_INDEX.get(e, -1) for e in protein.elements])
    l_idx = np.array([_L_INDEX.get(e.capitalize(), -1) for e in ligand.elements])
    p_keep, l_keep = np.flatnonzero(p_idx >= 0), np.flatnonzero(l_idx >= 0)
    if not p_keep.size or not l_keep.size:
        return out
    lig_xyz = ligand.coords[l_keep].astype(np.float64)
    prot_xyz = protein.coords[p_keep].astype(np.float64)
    # Only protein atoms within the largest cutoff of some ligand atom can count: a KD-tree finds them.
    near = cKDTree(prot_xyz).query_ball_point(lig_xyz, r=max(cutoffs) + 1e-6)
    for li, partners in enumerate(near):
        if not partners:
            continue
        partners = np.asarray(partners)
        d = np.sqrt(((prot_xyz[partners] - lig_xyz[li]) ** 2).sum(1))
        col = p_idx[p_keep[partners]] * len(LIGAND_ELEMENTS) + l_idx[l_keep[li]]
        for k, cutoff in enumerate(cutoffs):
            inside = d <= cutoff
            np.add.at(out[k], col[inside], 1.0)
    return out
