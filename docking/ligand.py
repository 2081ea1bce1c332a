"""Ligands: SMILES or SDF in, a protonated 3D molecule and its PDBQT out; Vina poses back to SDF.

SMILES are protonated at the requested pH by Dimorphite-DL (one most-likely state), given
hydrogens and embedded by RDKit's ETKDGv3 with a fixed seed, then relaxed with MMFF94. An SDF is
taken as the chemist prepared it (its protonation and its 3D coordinates; hydrogens are added
where missing); ``randomize`` throws its coordinates away for redocking benchmarks. Meeko writes
the PDBQT (atom types, torsion tree) and turns Vina's PDBQT poses back into RDKit molecules with
bond orders and hydrogens.
"""

from __future__ import annotations

import io
import logging

from rdkit import Chem, RDLogger
from rdkit.Chem import AllChem, rdMolDescriptors

from docking.errors import INVALID_SMILES, INVALID_STRUCTURE, DockingError

log = logging.getLogger(__name__)
RDLogger.DisableLog("rdApp.*")  # RDKit's own stderr chatter; every failure is reported as an error instead

MAX_SMILES_CHARS = 2000


def check_size(mol: Chem.Mol, *, max_heavy_atoms: int, max_rotatable_bonds: int) -> None:
    """Refuse ligands past the caps (heavy atoms, rotatable bonds) before any work is done."""
    heavy = mol.GetNumHeavyAtoms()
    if heavy == 0:
        raise DockingError(INVALID_STRUCTURE, "the ligand has no heavy atom")
    if heavy > max_heavy_atoms:
        raise DockingError(INVALID_STRUCTURE, f"the ligand has {heavy} heavy atoms; the cap is {max_heavy_atoms}")
    rot = rdMolDescriptors.CalcNumRotatableBonds(mol)
    if rot > max_rotatable_bonds:
        raise DockingError(INVALID_STRUCTURE, f"the ligand has {rot} rotatable bonds; the cap is {max_rotatable_bonds}")


def protonate(smiles: str, ph: float) -> str:
    """The most likely protonation state at ``ph`` (Dimorphite-DL); the input when it finds none."""
    from dimorphite_dl import protonate_smiles

    try:
        states = protonate_smiles(smiles, ph_min=ph, ph_max=ph, max_variants=1)
    except Exception as exc:  # Dimorphite raises on SMILES RDKit accepts but it cannot type
        log.warning("protonation of %s failed (%s); keeping the input state", smiles, exc)
        return smiles
    return states[0] if states else smiles


def parse_smiles(smiles: str) -> Chem.Mol:
    """An RDKit molecule, or INVALID_SMILES saying why."""
    text = (smiles or "").strip()
    if not text:
        raise DockingError(INVALID_SMILES, "the SMILES is empty")
    if len(text) > MAX_SMILES_CHARS:
        raise DockingError(INVALID_SMILES, f"the SMILES has {len(text)} characters; the cap is {MAX_SMILES_CHARS}")
    if any(c.isspace() for c in text):
        raise DockingError(INVALID_SMILES, "a SMILES has no whitespace: give one molecule per string")
    mol = Chem.MolFromSmiles(text)
    if mol is None:
        raise DockingError(INVALID_SMILES, f"RDKit cannot parse the SMILES {text[:80]!r}")
    if len(Chem.GetMolFrags(mol)) > 1:
        raise DockingError(INVALID_SMILES, "the SMILES has several fragments (salts?): give the ligand alone")
    return mol


def embed(mol: Chem.Mol, seed: int) -> Chem.Mol:
    """Hydrogens and one ETKDGv3 conformer relaxed with MMFF94 (UFF when MMFF has no parameters)."""
    mol = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    params.maxIterations = 200
    if AllChem.EmbedMolecule(mol, params) != 0:
        params.useRandomCoords = True  # the slower, more robust start for awkward ring systems
        if AllChem.EmbedMolecule(mol, params) != 0:
            raise DockingError(INVALID_STRUCTURE, "RDKit cannot embed this molecule in 3D (ETKDG failed)")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMolecule(mol, maxIters=500)
    elif AllChem.UFFHasAllMoleculeParams(mol):
        AllChem.UFFOptimizeMolecule(mol, maxIters=500)
    return mol


def from_smiles(
    smiles: str, *, ph: float | None = 7.4, seed: int = 0, max_heavy_atoms: int = 150, max_rotatable_bonds: int = 32
) -> Chem.Mol:
    """A 3D ligand from a SMILES: protonated at ``ph`` (None keeps the SMILES' state), embedded."""
    mol = parse_smiles(smiles)
    check_size(mol, max_heavy_atoms=max_heavy_atoms, max_rotatable_bonds=max_rotatable_bonds)
    if ph is not None:
        state = Chem.MolFromSmiles(protonate(Chem.MolToSmiles(mol), ph))
        mol = state if state is not None else mol
    out = embed(mol, seed)
    out.SetProp("_Name", smiles.strip()[:200])
    return out


def sdf_records(text: str) -> list[Chem.Mol | None]:
    """Every record of an SDF text (None for a record RDKit cannot read), hydrogens kept."""
    supplier = Chem.ForwardSDMolSupplier(io.BytesIO(text.encode()), removeHs=False, sanitize=True)
    return list(supplier)


def from_sdf(text: str, *, index: int = 0, max_heavy_atoms: int = 150, max_rotatable_bonds: int = 32) -> Chem.Mol:
    """Record ``index`` of an SDF as given (its coordinates and protonation); hydrogens added if absent."""
    if not text or ("M  END" not in text and "M END" not in text):
        raise DockingError(INVALID_STRUCTURE, "the ligand SDF has no molecule block (no 'M  END' line)")
    records = sdf_records(text)
    if index >= len(records) or index < 0:
        raise DockingError(INVALID_STRUCTURE, f"the SDF has {len(records)} record(s); index {index} is out of range")
    mol = records[index]
    if mol is None or mol.GetNumAtoms() == 0:
        raise DockingError(INVALID_STRUCTURE, f"RDKit cannot read SDF record {index}")
    check_size(mol, max_heavy_atoms=max_heavy_atoms, max_rotatable_bonds=max_rotatable_bonds)
    if mol.GetNumConformers() == 0 or not mol.GetConformer().Is3D():
        return embed(Chem.RemoveHs(mol), seed=0)
    return Chem.AddHs(mol, addCoords=True)


def randomize(mol: Chem.Mol, seed: int) -> Chem.Mol:
    """The same molecule (same protonation) with new ETKDG coordinates: no trace of the input pose."""
    fresh = embed(Chem.RemoveHs(mol), seed)
    fresh.SetProp("_Name", mol.GetProp("_Name") if mol.HasProp("_Name") else "")
    return fresh


def to_pdbqt(mol: Chem.Mol) -> str:
    """Meeko's PDBQT of the ligand (AutoDock types, rotatable bonds as a torsion tree)."""
    from meeko import MoleculePreparation, PDBQTWriterLegacy

    try:
        setups = MoleculePreparation().prepare(mol)
        text, ok, error = PDBQTWriterLegacy.write_string(setups[0])
    except Exception as exc:  # meeko raises plain errors for chemistry it cannot type
        raise DockingError(INVALID_STRUCTURE, f"meeko cannot prepare the ligand: {exc}"[:400]) from None
    if not ok:
        raise DockingError(INVALID_STRUCTURE, f"meeko cannot write the ligand PDBQT: {error}"[:400])
    return text


def poses_to_mols(vina_pdbqt: str) -> list[Chem.Mol]:
    """Vina's output poses as RDKit molecules (bond orders and hydrogens restored by meeko), best first."""
    from meeko import PDBQTMolecule, RDKitMolCreate

    pdbqt_mol = PDBQTMolecule(vina_pdbqt, skip_typing=True)
    mol = RDKitMolCreate.from_pdbqt_mol(pdbqt_mol)[0]
    poses = []
    for conf in mol.GetConformers():
        pose = Chem.Mol(mol)
        pose.RemoveAllConformers()
        pose.AddConformer(Chem.Conformer(conf), assignId=True)
        poses.append(pose)
    return poses


def mol_to_sdf(mol: Chem.Mol, props: dict[str, object] | None = None) -> str:
    """One SDF record with ``props`` as SD tags (None values left out)."""
    mol = Chem.Mol(mol)
    for key, value in (props or {}).items():
        if value is not None:
            mol.SetProp(key, str(value))
    out = io.StringIO()
    with Chem.SDWriter(out) as writer:
        writer.write(mol)
    return out.getvalue()
