"""Ring conformers: several docking starts that differ in the pucker of the ligand's non-aromatic rings.

Vina keeps every ring rigid (only acyclic single bonds are torsions of its search), so the ring
geometry of the start conformer is the ring geometry of every pose. One ETKDG start with a bad
pucker (a boat for a chair, an axial for an equatorial substituent) can make the crystal pose
unreachable. :func:`ring_conformers` gives up to ``k`` starts, one per distinct ring geometry:

1. a ligand without a non-aromatic ring (or ``k`` = 1) gives just itself, at no cost;
2. otherwise ``max(30, 10 k)`` ETKDGv3 conformers are embedded (seeded, one thread, stereo taken
   from the input's 3D coordinates; a conformer whose stereo differs is dropped) and relaxed with
   MMFF94 (UFF when MMFF has no parameters, as :func:`docking.ligand.embed` does);
3. each is described by the endocyclic torsion angles of its non-aromatic rings; conformers whose
   ring torsions all agree within ``TORSION_TOLERANCE_DEG`` (30°) form one group, represented by
   its lowest-energy member;
4. groups more than ``ENERGY_WINDOW_KCAL`` (10 kcal/mol) above the lowest are dropped;
5. the input conformer always comes first (an SDF's coordinates are the chemist's start; a SMILES
   ligand's are the single start ``k`` = 1 docks, so ``k`` ≥ 2 only adds starts), followed by the
   lowest-energy groups whose ring geometry differs from the input's, up to ``k`` in all.

Every start is a copy of the input molecule (same atoms, same order, same stereo tags) with one
conformer, so poses of different starts compare atom by atom.
"""

from __future__ import annotations

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem, rdMolTransforms

TORSION_TOLERANCE_DEG = 30.0  # two ring geometries are the same when every ring torsion agrees this closely
ENERGY_WINDOW_KCAL = 10.0  # ring geometries this far above the lowest (MMFF94, kcal/mol) are not docked
MIN_EMBEDDED = 30
EMBEDDED_PER_START = 10


def ring_torsions(mol: Chem.Mol) -> list[tuple[int, int, int, int]]:
    """The endocyclic torsions (atom quadruples) of every ring that is not entirely aromatic."""
    out = []
    for ring in mol.GetRingInfo().AtomRings():
        if all(mol.GetAtomWithIdx(a).GetIsAromatic() for a in ring):
            continue
        n = len(ring)
        out += [(ring[i - 1], ring[i], ring[(i + 1) % n], ring[(i + 2) % n]) for i in range(n)]
    return out


def torsion_angles(conf: Chem.Conformer, torsions: list[tuple[int, int, int, int]]) -> np.ndarray:
    """The torsion angles in degrees, in (-180, 180]."""
    return np.array([rdMolTransforms.GetDihedralDeg(conf, *t) for t in torsions])


def same_geometry(a: np.ndarray, b: np.ndarray, tolerance: float = TORSION_TOLERANCE_DEG) -> bool:
    """Every torsion of ``a`` within ``tolerance`` degrees of ``b``'s (angles wrap at 360°)."""
    diff = np.abs((a - b + 180.0) % 360.0 - 180.0)
    return bool((diff <= tolerance).all())


def _stereo_key(mol: Chem.Mol, conf_id: int = -1) -> str:
    """Isomeric SMILES with stereo perceived from one conformer's 3D coordinates."""
    copy = Chem.Mol(mol, confId=conf_id) if conf_id >= 0 else Chem.Mol(mol)
    Chem.AssignStereochemistryFrom3D(copy)
    return Chem.MolToSmiles(Chem.RemoveHs(copy, sanitize=False))


def _embed_ensemble(mol: Chem.Mol, n: int, seed: int) -> tuple[Chem.Mol, list[float]]:
    """``n`` seeded ETKDGv3 conformers of ``mol`` (stereo from its 3D input), relaxed; their energies."""
    ens = Chem.Mol(mol)
    Chem.AssignStereochemistryFrom3D(ens)  # the input's stereo (also a SMILES' unspecified centres, as embedded)
    ens.RemoveAllConformers()
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    params.maxIterations = 200
    params.numThreads = 1
    params.enableSequentialRandomSeeds = True  # conformer i from seed + i: with one seed, seed 0 repeats one conformer
    ids = list(AllChem.EmbedMultipleConfs(ens, numConfs=n, params=params))
    if not ids:
        params.useRandomCoords = True
        ids = list(AllChem.EmbedMultipleConfs(ens, numConfs=n, params=params))
    if not ids:
        return ens, []
    if AllChem.MMFFHasAllMoleculeParams(ens):
        result = AllChem.MMFFOptimizeMoleculeConfs(ens, numThreads=1, maxIters=500)
    elif AllChem.UFFHasAllMoleculeParams(ens):
        result = AllChem.UFFOptimizeMoleculeConfs(ens, numThreads=1, maxIters=500)
    else:
        result = [(0, 0.0)] * len(ids)  # no force field: embedding order, no energy window
    energies = [float(e) for _, e in result]
    return ens, energies


def ring_conformers(mol: Chem.Mol, k: int, *, seed: int = 0) -> list[Chem.Mol]:
    """Up to ``k`` starts of a 3D ligand with hydrogens, ``mol`` itself first (see the module text)."""
    torsions = ring_torsions(mol)
    if k <= 1 or not torsions or mol.GetNumConformers() == 0:
        return [mol]
    ens, energies = _embed_ensemble(mol, max(MIN_EMBEDDED, EMBEDDED_PER_START * k), seed)
    if not energies:
        return [mol]
    reference = _stereo_key(mol)
    conf_ids = [c.GetId() for c in ens.GetConformers()]
    candidates = [(energies[i], cid) for i, cid in enumerate(conf_ids) if _stereo_key(ens, cid) == reference]
    if not candidates:
        return [mol]
    candidates.sort()
    lowest = candidates[0][0]
    kept = [torsion_angles(mol.GetConformer(), torsions)]  # the input's group first
    starts = [mol]
    for energy, cid in candidates:  # lowest energy first: each group's first member represents it
        if len(starts) >= k or energy > lowest + ENERGY_WINDOW_KCAL:
            break
        angles = torsion_angles(ens.GetConformer(cid), torsions)
        if any(same_geometry(angles, other) for other in kept):
            continue
        kept.append(angles)
        start = Chem.Mol(mol)
        start.RemoveAllConformers()
        start.AddConformer(Chem.Conformer(ens.GetConformer(cid)), assignId=True)
        start.SetDoubleProp("ring_conformer_energy", round(energy, 3))
        starts.append(start)
    return starts
