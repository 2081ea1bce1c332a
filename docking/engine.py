"""One docking: a prepared receptor, a 3D ligand and a box in; Vina's ranked poses out as SDF.

AutoDock Vina 1.2 (the ``vina`` wheel) runs in the calling process: callers put that process
where a cancel can reach it (a job's child process, or the worker's docking pool). The grid
maps of the last receptor and box are kept, so a library docked into one pocket computes them
once per process.

With ``ring_conformers`` K > 1 the ligand is docked from each of up to K starts that differ in
ring pucker (:mod:`docking.conformers`; Vina keeps rings rigid) with the same maps; the poses
are pooled, ordered by Vina score, those more than ``energy_range`` above the best dropped, a
pose closer than ``min_rmsd`` (heavy atoms, in place, same atom order) to a better one dropped,
and the first ``n_poses`` kept. Each pose's ``start_conformer`` SD tag says which start it came
from (0: the input). One start (K = 1, or a ligand without a non-aromatic ring) is one Vina run,
exactly as before, and its SDF has no such tag.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rdkit import Chem

from docking import conformers
from docking import ligand as lig
from docking.box import Box
from docking.receptor import Receptor

GRID_SPACING = 1.0 / 2.666  # Å, Vina's default 0.375


@dataclass(frozen=True)
class DockParams:
    exhaustiveness: int = 8
    n_poses: int = 9
    seed: int = 0
    energy_range: float = 3.0
    min_rmsd: float = 1.0
    cpu: int = 1
    ring_conformers: int = 1  # starts with distinct ring puckers docked and pooled (1: the input only)


@dataclass
class Pose:
    rank: int
    vina_score: float
    mol: Chem.Mol = field(repr=False)
    start: int | None = None  # the start conformer it came from, when several were docked

    @property
    def coordinates(self) -> np.ndarray:
        return self.mol.GetConformer().GetPositions()

    def sdf(self, name: str = "") -> str:
        if name:
            self.mol.SetProp("_Name", name)
        props = {"vina_score": f"{self.vina_score:.3f}", "rank": self.rank, "start_conformer": self.start}
        return lig.mol_to_sdf(self.mol, props)


class _Maps:
    """The Vina object of the last (receptor, box, seed, cpu): its grid maps are the costly part."""

    key: tuple[Any, ...] | None = None
    vina: Any = None


_MAPS = _Maps()


def vina_seed(seed: int) -> int:
    """Vina's seed for the API's ``seed``: Vina 1.2 reads 0 as "pick one at random", so every
    seed is shifted by one and the default (0) docks reproducibly too."""
    return seed + 1


def _vina_for(receptor: Receptor, box: Box, params: DockParams) -> Any:
    from vina import Vina

    key = (receptor.key, box.center, box.size, params.seed, params.cpu)
    if _MAPS.key != key:
        vina = Vina(sf_name="vina", cpu=params.cpu, seed=vina_seed(params.seed), verbosity=0)
        vina.set_receptor(str(receptor.pdbqt))
        vina.compute_vina_maps(center=list(box.center), box_size=list(box.size), spacing=GRID_SPACING)
        _MAPS.key, _MAPS.vina = key, vina
    return _MAPS.vina


def start_conformers(mol: Chem.Mol, params: DockParams) -> list[Chem.Mol]:
    """The starts ``dock`` docks: ``mol`` alone when K = 1, else its ring conformers (``mol`` first)."""
    if params.ring_conformers <= 1:
        return [mol]
    return conformers.ring_conformers(mol, params.ring_conformers, seed=params.seed)


def dock(
    receptor: Receptor, mol: Chem.Mol, box: Box, params: DockParams, *, starts: list[Chem.Mol] | None = None
) -> tuple[list[Pose], dict[str, float]]:
    """Vina's poses of ``mol`` (best first) and the time each step took, in ms (summed over starts).

    ``starts``: the start conformers (from :func:`start_conformers`, ``mol`` first); computed here,
    and timed as ``conformers``, when not given.
    """
    extra: dict[str, float] = {}
    if starts is None:
        t0 = time.perf_counter()
        starts = start_conformers(mol, params)
        if params.ring_conformers > 1:
            extra["conformers"] = round((time.perf_counter() - t0) * 1e3, 1)
    if len(starts) <= 1:
        poses, timings = _dock_one(receptor, starts[0] if starts else mol, box, params)
        return poses, {**timings, **extra}
    pooled: list[Pose] = []
    totals: dict[str, float] = {}
    for index, start in enumerate(starts):
        poses, timings = _dock_one(receptor, start, box, params)
        for key, value in timings.items():
            totals[key] = totals.get(key, 0.0) + value
        for pose in poses:
            pose.start = index
        pooled += poses
    t0 = time.perf_counter()
    kept = pool(pooled, params)
    totals["poses"] = totals.get("poses", 0.0) + (time.perf_counter() - t0) * 1e3
    return kept, {**{k: round(v, 1) for k, v in totals.items()}, **extra}


def _heavy_positions(pose: Pose) -> np.ndarray:
    heavy = [a.GetIdx() for a in pose.mol.GetAtoms() if a.GetAtomicNum() > 1]
    return pose.coordinates[heavy]


def pool(poses: list[Pose], params: DockParams) -> list[Pose]:
    """Poses of several starts as one ranked list: by Vina score (ties: start, then Vina's rank),
    within ``energy_range`` of the best, none closer than ``min_rmsd`` to a better one, ``n_poses`` at most."""
    ordered = sorted(poses, key=lambda p: (p.vina_score, p.start or 0, p.rank))
    kept: list[Pose] = []
    kept_xyz: list[np.ndarray] = []
    for pose in ordered:
        if len(kept) >= params.n_poses or pose.vina_score > ordered[0].vina_score + params.energy_range:
            break
        xyz = _heavy_positions(pose)
        if any(
            other.shape == xyz.shape and float(np.sqrt(((other - xyz) ** 2).sum(1).mean())) < params.min_rmsd
            for other in kept_xyz
        ):
            continue
        kept.append(pose)
        kept_xyz.append(xyz)
    for rank, pose in enumerate(kept, start=1):
        pose.rank = rank
    return kept


def _dock_one(receptor: Receptor, mol: Chem.Mol, box: Box, params: DockParams) -> tuple[list[Pose], dict[str, float]]:
    """One Vina run from one start: its poses (best first) and the time each step took, in ms."""
    t0 = time.perf_counter()
    ligand_pdbqt = lig.to_pdbqt(mol)
    t1 = time.perf_counter()
    vina = _vina_for(receptor, box, params)
    t2 = time.perf_counter()
    vina.set_ligand_from_string(ligand_pdbqt)
    vina.dock(exhaustiveness=params.exhaustiveness, n_poses=params.n_poses, min_rmsd=params.min_rmsd)
    out = vina.poses(n_poses=params.n_poses, energy_range=params.energy_range)
    energies = vina.energies(n_poses=params.n_poses, energy_range=params.energy_range)
    t3 = time.perf_counter()
    mols = lig.poses_to_mols(out)
    poses = [Pose(i + 1, float(energies[i][0]), m) for i, m in enumerate(mols)]
    t4 = time.perf_counter()
    timings = {
        "ligand_pdbqt": (t1 - t0) * 1e3,
        "maps": (t2 - t1) * 1e3,
        "vina": (t3 - t2) * 1e3,
        "poses": (t4 - t3) * 1e3,
    }
    return poses, {k: round(v, 1) for k, v in timings.items()}
