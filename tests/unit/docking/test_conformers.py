"""Ring conformers: several starts with distinct ring puckers, and the pooling of their poses."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from docking import box as bx
from docking import conformers as cf
from docking import engine
from docking import ligand as lig
from tests.support import REPO

EXAMPLES = REPO / "examples" / "complexes"
AROMATIC_ONLY = (EXAMPLES / "1o3f" / "1o3f_ligand.sdf").read_text()  # benzamidine-indole-biphenyl, no saturated ring
CYCLOHEXYL = "NC(=[NH2+])c1ccc(cc1)C1CCC(O)CC1"


def ring_angles(mol: Chem.Mol) -> np.ndarray:
    return cf.torsion_angles(mol.GetConformer(), cf.ring_torsions(mol))


@pytest.mark.parametrize("smiles", ["CCO", "NC(=[NH2+])c1ccccc1", "c1ccc2ccccc2c1CCN"])
def test_no_non_aromatic_ring_gives_the_input_alone(smiles: str) -> None:
    mol = lig.from_smiles(smiles, ph=None, seed=1)
    starts = cf.ring_conformers(mol, 4, seed=1)
    assert len(starts) == 1 and starts[0] is mol
    sdf = lig.from_sdf(AROMATIC_ONLY)
    assert cf.ring_conformers(sdf, 8)[0] is sdf and len(cf.ring_conformers(sdf, 8)) == 1


def test_k1_gives_the_input_alone_even_with_rings() -> None:
    mol = lig.from_smiles(CYCLOHEXYL, ph=None)
    assert cf.ring_conformers(mol, 1) == [mol]
    assert engine.start_conformers(mol, engine.DockParams()) == [mol]


def test_saturated_ring_gives_distinct_ring_geometries_deterministically() -> None:
    mol = lig.from_smiles(CYCLOHEXYL, ph=None, seed=0)
    starts = cf.ring_conformers(mol, 4, seed=0)
    assert 2 <= len(starts) <= 4 and starts[0] is mol
    angles = [ring_angles(s) for s in starts]
    for a, b in itertools.combinations(angles, 2):
        assert not cf.same_geometry(a, b), "every start has its own ring geometry (30° tolerance)"
    for start in starts:
        assert start.GetNumAtoms() == mol.GetNumAtoms() and start.GetNumConformers() == 1
        assert [a.GetAtomicNum() for a in start.GetAtoms()] == [a.GetAtomicNum() for a in mol.GetAtoms()]
        assert Chem.MolToSmiles(Chem.RemoveHs(start)) == Chem.MolToSmiles(Chem.RemoveHs(mol))
    again = cf.ring_conformers(mol, 4, seed=0)
    assert len(again) == len(starts)
    for s, t in zip(starts, again, strict=True):
        assert np.array_equal(s.GetConformer().GetPositions(), t.GetConformer().GetPositions())
    energies = [s.GetDoubleProp("ring_conformer_energy") for s in starts[1:]]
    assert energies == sorted(energies) and max(energies) - min(energies) <= cf.ENERGY_WINDOW_KCAL


def test_sdf_input_conformer_is_kept_first() -> None:
    prepared = lig.from_smiles("CC(=O)N1CCC(CC1)c1ccccc1", ph=None, seed=7)  # a piperidine, as a chemist's SDF
    mol = lig.from_sdf(lig.mol_to_sdf(prepared))
    starts = cf.ring_conformers(mol, 4, seed=0)
    assert len(starts) >= 2
    assert np.array_equal(starts[0].GetConformer().GetPositions(), mol.GetConformer().GetPositions())
    assert all(not cf.same_geometry(ring_angles(s), ring_angles(mol)) for s in starts[1:])


def test_stereo_of_the_input_is_kept() -> None:
    mol = lig.from_smiles("C[C@H]1CC[C@@H](N)CC1", ph=None)  # trans-4-methylcyclohexylamine
    for start in cf.ring_conformers(mol, 4):
        copy = Chem.Mol(start)
        Chem.AssignStereochemistryFrom3D(copy)
        assert Chem.MolToSmiles(Chem.RemoveHs(copy)) == Chem.MolToSmiles(Chem.RemoveHs(mol))


def _pose(mol: Chem.Mol, score: float, shift: float, start: int) -> engine.Pose:
    moved = Chem.Mol(mol)
    conf = moved.GetConformer()
    for i in range(moved.GetNumAtoms()):
        p = conf.GetAtomPosition(i)
        conf.SetAtomPosition(i, (p.x + shift, p.y, p.z))
    return engine.Pose(rank=1, vina_score=score, mol=moved, start=start)


def test_pool_sorts_deduplicates_and_caps() -> None:
    mol = lig.from_smiles("CCOc1ccccc1", ph=None)
    poses = [
        _pose(mol, -5.0, 0.0, 0),
        _pose(mol, -6.0, 10.0, 1),
        _pose(mol, -5.9, 10.5, 2),  # 0.5 Å from a better pose: dropped
        _pose(mol, -4.0, 20.0, 1),
        _pose(mol, -2.0, 30.0, 0),  # more than energy_range (3) above the best: dropped
        _pose(mol, -4.5, 40.0, 3),
    ]
    kept = engine.pool(poses, engine.DockParams(n_poses=3))
    assert [p.vina_score for p in kept] == [-6.0, -5.0, -4.5]
    assert [p.rank for p in kept] == [1, 2, 3] and [p.start for p in kept] == [1, 0, 3]
    assert len(engine.pool(poses, engine.DockParams(n_poses=9))) == 4
    assert ">  <start_conformer>" in kept[0].sdf("x")


@pytest.fixture(scope="module")
def pocket(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, bx.Box]:
    pytest.importorskip("vina")
    from docking import receptor as rec

    folder: Path = tmp_path_factory.mktemp("receptors")
    receptor = rec.prepare((EXAMPLES / "1o3f" / "1o3f_pocket.pdb").read_text(), rec.ReceptorOptions(), folder)
    reference = lig.from_sdf(AROMATIC_ONLY)
    heavy = [a.GetAtomicNum() > 1 for a in reference.GetAtoms()]
    return receptor, bx.around(reference.GetConformer().GetPositions()[heavy], 2.0)


def test_pooled_docking_is_sorted_distinct_and_tagged(pocket: tuple[object, bx.Box]) -> None:
    receptor, box = pocket
    mol = lig.from_smiles(CYCLOHEXYL, ph=None, seed=0)
    params = engine.DockParams(exhaustiveness=1, n_poses=4, seed=1, ring_conformers=2)
    starts = engine.start_conformers(mol, params)
    assert len(starts) >= 2
    poses, timings = engine.dock(receptor, mol, box, params, starts=starts)
    assert 1 <= len(poses) <= params.n_poses
    scores = [p.vina_score for p in poses]
    assert scores == sorted(scores) and [p.rank for p in poses] == list(range(1, len(poses) + 1))
    assert {p.start for p in poses} <= set(range(len(starts)))
    heavy = [a.GetIdx() for a in poses[0].mol.GetAtoms() if a.GetAtomicNum() > 1]
    for a, b in itertools.combinations(poses, 2):
        assert [x.GetAtomicNum() for x in a.mol.GetAtoms()] == [x.GetAtomicNum() for x in b.mol.GetAtoms()]
        diff = a.coordinates[heavy] - b.coordinates[heavy]
        assert np.sqrt((diff**2).sum(1).mean()) >= params.min_rmsd
    assert {"ligand_pdbqt", "maps", "vina", "poses"} <= timings.keys() and "conformers" not in timings


def test_one_start_is_exactly_todays_docking(pocket: tuple[object, bx.Box]) -> None:
    receptor, box = pocket
    mol = lig.from_smiles("NC(=[NH2+])c1ccccc1", ph=None, seed=0)  # no saturated ring: one start for any K
    base = engine.DockParams(exhaustiveness=1, n_poses=3, seed=1)
    today, _ = engine.dock(receptor, mol, box, base)
    more, timings = engine.dock(receptor, mol, box, replace(base, ring_conformers=4))
    assert [p.sdf("b") for p in more] == [p.sdf("b") for p in today]
    assert "start_conformer" not in today[0].sdf("b") and "conformers" in timings


def test_the_default_seed_docks_reproducibly(pocket: tuple[object, bx.Box]) -> None:
    """Vina 1.2 reads seed 0 as "random": the API's default must not reach it as 0."""
    receptor, box = pocket
    mol = lig.from_smiles("NC(=[NH2+])c1ccccc1", ph=None, seed=0)
    params = engine.DockParams(exhaustiveness=1, n_poses=3, seed=0)
    runs = []
    for _ in range(2):
        engine._MAPS.key = None  # a fresh Vina object each time, as a new worker process would make
        poses, _ = engine.dock(receptor, mol, box, params)
        runs.append([p.sdf("b") for p in poses])
    assert runs[0] == runs[1]
    assert engine.vina_seed(0) != 0
