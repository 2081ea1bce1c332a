"""Ligand preparation: SMILES and SDF to 3D, the caps, and meeko's PDBQT round trip."""

from __future__ import annotations

import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from docking import ligand as lig
from docking.errors import DockingError
from tests.support import REPO

REFERENCE = (REPO / "examples" / "complexes" / "1o3f" / "1o3f_ligand.sdf").read_text()


def test_smiles_is_protonated_embedded_and_deterministic() -> None:
    first = lig.from_smiles("CC(=O)O", ph=7.4, seed=4)
    again = lig.from_smiles("CC(=O)O", ph=7.4, seed=4)
    assert Chem.MolToSmiles(Chem.RemoveHs(first)) == "CC(=O)[O-]"
    assert first.GetConformer().Is3D() and first.GetNumAtoms() == 7  # heavy atoms + 3 methyl H
    assert (first.GetConformer().GetPositions() == again.GetConformer().GetPositions()).all()
    kept = lig.from_smiles("CC(=O)O", ph=None, seed=4)
    assert Chem.MolToSmiles(Chem.RemoveHs(kept)) == "CC(=O)O"


@pytest.mark.parametrize(
    ("smiles", "code", "words"),
    [
        ("", "INVALID_SMILES", "empty"),
        ("C1CC", "INVALID_SMILES", "cannot parse"),
        ("CC.O", "INVALID_SMILES", "fragments"),
        ("CC O", "INVALID_SMILES", "whitespace"),
        ("C1#CC1", "INVALID_STRUCTURE", "cannot embed"),
        ("C" * 40, "INVALID_STRUCTURE", "rotatable bonds"),
    ],
)
def test_bad_smiles(smiles: str, code: str, words: str) -> None:
    with pytest.raises(DockingError) as info:
        lig.from_smiles(smiles, ph=None)
    assert info.value.code == code and words in info.value.details


def test_heavy_atom_cap() -> None:
    with pytest.raises(DockingError, match="heavy atoms"):
        lig.from_smiles("c1ccccc1" * 3, ph=None, max_heavy_atoms=10)


def test_sdf_keeps_its_pose_and_randomize_forgets_it() -> None:
    mol = lig.from_sdf(REFERENCE)
    crystal = Chem.MolFromMolBlock(REFERENCE, removeHs=False)
    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    pos = mol.GetConformer().GetPositions()[heavy]
    assert abs(pos - crystal.GetConformer().GetPositions()[heavy]).max() < 1e-3
    fresh = lig.randomize(mol, seed=1)
    assert Chem.MolToSmiles(Chem.RemoveHs(fresh)) == Chem.MolToSmiles(Chem.RemoveHs(mol))
    moved = fresh.GetConformer().GetPositions()[: len(heavy)].mean(0) - pos.mean(0)
    assert (moved**2).sum() ** 0.5 > 5, "the re-embedded ligand starts far from the crystal pose"


def test_bad_sdf() -> None:
    with pytest.raises(DockingError, match="no molecule block"):
        lig.from_sdf("not an sdf")
    with pytest.raises(DockingError, match="out of range"):
        lig.from_sdf(REFERENCE, index=3)


def test_pdbqt_round_trip_keeps_the_molecule() -> None:
    mol = Chem.AddHs(Chem.MolFromSmiles("NC(=[NH2+])c1ccccc1"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    text = lig.to_pdbqt(mol)
    assert "TORSDOF" in text and "ROOT" in text
    back = lig.poses_to_mols(text)
    assert len(back) == 1
    assert Chem.MolToSmiles(Chem.RemoveHs(back[0])) == Chem.MolToSmiles(Chem.RemoveHs(mol))
    sdf = lig.mol_to_sdf(back[0], {"vina_score": -5.5, "skipped": None})
    assert ">  <vina_score>" in sdf and "skipped" not in sdf and sdf.endswith("$$$$\n")
