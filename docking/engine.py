"""One docking: a prepared receptor, a 3D ligand and a box in; Vina's ranked poses out as SDF.

AutoDock Vina 1.2 (the ``vina`` wheel) runs in the calling process: callers put that process
where a cancel can reach it (a job's child process, or the worker's docking pool). The grid
maps of the last receptor and box are kept, so a library docked into one pocket computes them
once per process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rdkit import Chem

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


@dataclass
class Pose:
    rank: int
    vina_score: float
    mol: Chem.Mol = field(repr=False)

    @property
    def coordinates(self) -> np.ndarray:
        return self.mol.GetConformer().GetPositions()

    def sdf(self, name: str = "") -> str:
        if name:
            self.mol.SetProp("_Name", name)
        return lig.mol_to_sdf(self.mol, {"vina_score": f"{self.vina_score:.3f}", "rank": self.rank})


class _Maps:
    """The Vina object of the last (receptor, box, seed, cpu): its grid maps are the costly part."""

    key: tuple[Any, ...] | None = None
    vina: Any = None


_MAPS = _Maps()


def _vina_for(receptor: Receptor, box: Box, params: DockParams) -> Any:
    from vina import Vina

    key = (receptor.key, box.center, box.size, params.seed, params.cpu)
    if _MAPS.key != key:
        vina = Vina(sf_name="vina", cpu=params.cpu, seed=params.seed, verbosity=0)
        vina.set_receptor(str(receptor.pdbqt))
        vina.compute_vina_maps(center=list(box.center), box_size=list(box.size), spacing=GRID_SPACING)
        _MAPS.key, _MAPS.vina = key, vina
    return _MAPS.vina


def dock(receptor: Receptor, mol: Chem.Mol, box: Box, params: DockParams) -> tuple[list[Pose], dict[str, float]]:
    """Vina's poses of ``mol`` (best first) and the time each step took, in ms."""
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
