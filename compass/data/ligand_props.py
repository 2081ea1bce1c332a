"""Ligand chemistry from RDKit: physchem descriptors for the stack, fingerprints for the domain read-out.

Only where RDKit can build a sanitised molecule with bond orders (SDF, MOL2; a PDBQT ligand has
none): elsewhere the descriptors are NaN and the stack's gradient boosting treats them as missing,
and the fingerprint is absent (the domain read-out then says so).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compass.data.structures import StructureError, _mol2_mol, _sdf_mol

# RDKit descriptor functions, by the names RDKit gives them (rdkit.Chem.Descriptors).
PROP_NAMES: tuple[str, ...] = (
    "HeavyAtomCount",
    "MolWt",
    "MolLogP",
    "MolMR",
    "TPSA",
    "LabuteASA",
    "NumHDonors",
    "NumHAcceptors",
    "NumRotatableBonds",
    "RingCount",
    "NumAromaticRings",
    "NumAliphaticRings",
    "FractionCSP3",
    "NumHeteroatoms",
    "NHOHCount",
    "NOCount",
    "BertzCT",
    "qed",
)
EXTRA_PROPS: tuple[str, ...] = ("formal_charge", "halogens", "stereocentres")
FEATURE_NAMES: tuple[str, ...] = PROP_NAMES + EXTRA_PROPS
FP_BITS = 2048
FP_RADIUS = 2


def mol_from_text(text: str, fmt: str, index: int = 0) -> object | None:
    """A sanitised RDKit molecule without hydrogens, or None when RDKit cannot sanitise it."""
    from rdkit import Chem

    fmt = fmt.lower()
    try:
        mol = _sdf_mol(text, index) if fmt == "sdf" else _mol2_mol(text) if fmt == "mol2" else None
    except StructureError:
        return None
    if mol is None:
        return None
    try:
        Chem.SanitizeMol(mol)
        return Chem.RemoveHs(mol)
    except Exception:  # RDKit raises several exception types for valence/kekulisation
        return None


def mol_from_files(paths: list[str] | list[Path], index: int = 0) -> object | None:
    """The first file of ``paths`` (SDF, MOL2) that gives a sanitised molecule."""
    for path in paths:
        p = Path(path)
        fmt = p.suffix.lower().lstrip(".")
        if fmt in ("sdf", "mol2") and p.is_file():
            mol = mol_from_text(p.read_text(errors="replace"), fmt, index)
            if mol is not None:
                return mol
    return None


def ligand_props(mol: object | None) -> np.ndarray:
    """:data:`FEATURE_NAMES` of one molecule (float64; all NaN when ``mol`` is None)."""
    if mol is None:
        return np.full(len(FEATURE_NAMES), np.nan)
    from rdkit import Chem
    from rdkit.Chem import Descriptors

    values = [float(getattr(Descriptors, name)(mol)) for name in PROP_NAMES]
    charge = float(sum(a.GetFormalCharge() for a in mol.GetAtoms()))
    halogens = float(sum(a.GetSymbol() in ("F", "Cl", "Br", "I") for a in mol.GetAtoms()))
    stereo = float(len(Chem.FindMolChiralCenters(mol, includeUnassigned=True)))
    return np.array([*values, charge, halogens, stereo], dtype=np.float64)


def fingerprint(mol: object | None) -> np.ndarray | None:
    """Morgan (ECFP4-like) bits packed into ``FP_BITS // 8`` uint8, or None."""
    if mol is None:
        return None
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=FP_RADIUS, fpSize=FP_BITS)
    return np.packbits(gen.GetFingerprintAsNumPy(mol).astype(bool))


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def tanimoto_max(query: np.ndarray, index: np.ndarray) -> tuple[float, int]:
    """Highest Tanimoto similarity of packed bits ``query`` to any row of packed ``index``, and that row.

    Bit counts come from a byte lookup on the packed arrays: per request that is one AND over
    ``index`` (1.3 MB for the shipped models), not an unpacked float copy of it (40 MB).
    """
    if index.size == 0:
        return 0.0, -1
    query = np.asarray(query, dtype=np.uint8)
    common = _POPCOUNT[index & query].sum(axis=1, dtype=np.int32)
    union = _POPCOUNT[index].sum(axis=1, dtype=np.int32) + int(_POPCOUNT[query].sum(dtype=np.int32)) - common
    sim = np.where(union > 0, common / np.maximum(union, 1), 0.0)
    best = int(np.argmax(sim))
    return float(sim[best]), best
