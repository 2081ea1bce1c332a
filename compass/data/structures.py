"""Reading protein and ligand structures into element + coordinate arrays, with fallbacks.

Ligands (SDF, MOL2) are read with RDKit without sanitisation first, then sanitised fully,
partially, or not at all: only elements and coordinates feed the models, so a ligand RDKit
cannot sanitise (X-TOOL's over-valent SDFs, three P=O phosphates) is still usable and the
report says how it was read. Proteins (PDB, PDBQT) and PDBQT ligands are read from their fixed
columns: a whole prepared protein (caps, waters, odd residues) must never fail on valence rules,
and AutoDock atom types need mapping to elements, which RDKit does not do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

WATER_RESIDUES = frozenset({"HOH", "WAT", "H2O", "DOD", "TIP", "TIP3", "SOL"})
HYDROGENS = frozenset({"H", "D"})
# An ATOM/HETATM line ends its z coordinate at column 54; a shorter one cannot be read.
_COORDS_END = 54
# AutoDock 4 atom types that are not element symbols (aromatic carbon, acceptors, donors, glue atoms).
AUTODOCK_TYPES = {
    "A": "C",
    "NA": "N",
    "NS": "N",
    "OA": "O",
    "OS": "O",
    "SA": "S",
    "HD": "H",
    "HS": "H",
    "G": "C",
    "G0": "C",
    "G1": "C",
    "G2": "C",
    "G3": "C",
    "CG0": "C",
    "CG1": "C",
    "CG2": "C",
    "CG3": "C",
    "Z": "C",
    "GA": "C",
    "J": "C",
    "Q": "C",
}
LIGAND_FORMATS = ("sdf", "mol2", "pdbqt")
PROTEIN_FORMATS = ("pdb", "pdbqt")


class StructureError(ValueError):
    """A structure file that cannot be used, with the reason a person can act on."""


@dataclass
class Atoms:
    """Heavy atoms of a structure: element symbols, coordinates (Å) and how they were read."""

    elements: list[str]
    coords: np.ndarray  # float32 [N, 3]
    notes: list[str] = field(default_factory=list)  # e.g. "partial sanitisation: ..."

    def __len__(self) -> int:
        return len(self.elements)


def _format_of(path: str | Path) -> str:
    return Path(path).suffix.lower().lstrip(".")


# --------------------------------------------------------------------------- proteins / PDBQT


def _element_from_pdb_line(line: str, pdbqt: bool) -> str:
    """Element of an ATOM/HETATM line: AutoDock type (PDBQT), element columns 77-78, or the atom name."""
    if pdbqt:
        ad_type = line[77:79].strip() or line.split()[-1]
        return AUTODOCK_TYPES.get(ad_type, ad_type)
    element = line[76:78].strip()
    if element:
        return element
    name = line[12:16]
    # PDB convention: a two-letter element is right-justified from column 13 (e.g. "FE  ").
    return (name[:2].strip() if name[0] != " " else name[1]).strip()


def parse_pdb_text(text: str, *, pdbqt: bool = False, keep_waters: bool = False) -> Atoms:
    """Heavy atoms of a PDB or PDBQT text (first model, altloc blank or A, waters dropped unless asked)."""
    elements: list[str] = []
    coords: list[tuple[float, float, float]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        record = line[:6]
        if record.startswith("ENDMDL"):
            break
        if record not in ("ATOM  ", "HETATM"):
            continue
        if len(line) < _COORDS_END:  # the coordinates are fixed columns 31-54
            raise StructureError(
                f"line {number}: {record.strip()} record of {len(line)} characters; coordinates need {_COORDS_END}"
            )
        if line[16] not in (" ", "A", "1"):
            continue
        if not keep_waters and line[17:20].strip() in WATER_RESIDUES:
            continue
        element = _element_from_pdb_line(line, pdbqt).capitalize()
        if element in HYDROGENS:
            continue
        try:
            xyz = (float(line[30:38]), float(line[38:46]), float(line[46:54]))
        except ValueError as exc:
            raise StructureError(f"line {number}: bad coordinates in {line[:54]!r}") from exc
        elements.append(element)
        coords.append(xyz)
    if not elements:
        raise StructureError("no heavy atoms found (is this a PDB/PDBQT file?)")
    return Atoms(elements, np.asarray(coords, dtype=np.float32))


@lru_cache(maxsize=8)
def _read_protein_cached(path: str, mtime_ns: int, keep_waters: bool) -> Atoms:
    fmt = _format_of(path)
    text = Path(path).read_text(errors="replace")
    return parse_pdb_text(text, pdbqt=fmt == "pdbqt", keep_waters=keep_waters)


def read_protein(path: str | Path, *, keep_waters: bool = False) -> Atoms:
    """Protein heavy atoms from a PDB or PDBQT file (cached: FEP series share one protein)."""
    p = Path(path)
    if _format_of(p) not in PROTEIN_FORMATS:
        raise StructureError(f"protein must be PDB or PDBQT, got {p.name}")
    if not p.is_file():
        raise StructureError(f"protein file missing: {p}")
    return _read_protein_cached(str(p), p.stat().st_mtime_ns, keep_waters)


# --------------------------------------------------------------------------- ligands (RDKit)


def _quiet_rdkit() -> None:
    """RDKit prints every valence complaint to stderr; the survival report already records them."""
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")


def _sanitise(mol: object) -> str:
    """Sanitise as far as RDKit allows; return a note ("" when fully sanitised)."""
    from rdkit import Chem

    try:
        Chem.SanitizeMol(mol)
        return ""
    except Exception as exc:  # RDKit raises several exception types for valence/kekulisation
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    try:
        mol.UpdatePropertyCache(strict=False)
        ops = Chem.SanitizeFlags.SANITIZE_ALL ^ Chem.SanitizeFlags.SANITIZE_PROPERTIES
        Chem.SanitizeMol(mol, sanitizeOps=ops, catchErrors=True)
        return f"partial sanitisation ({first})"
    except Exception:
        return f"unsanitised ({first})"


def _atoms_from_mol(mol: object, note: str) -> Atoms:
    if mol.GetNumConformers() == 0:
        raise StructureError("ligand has no 3D coordinates")
    conf = mol.GetConformer()
    elements, coords = [], []
    for atom in mol.GetAtoms():
        if atom.GetAtomicNum() <= 1:
            continue
        pos = conf.GetAtomPosition(atom.GetIdx())
        elements.append(atom.GetSymbol())
        coords.append((pos.x, pos.y, pos.z))
    if not elements:
        raise StructureError("ligand has no heavy atoms")
    xyz = np.asarray(coords, dtype=np.float32)
    if not np.isfinite(xyz).all() or (len(xyz) > 1 and np.allclose(xyz, 0.0)):
        raise StructureError("ligand coordinates are missing (all zero or not finite)")
    return Atoms(elements, xyz, [note] if note else [])


def _sdf_mol(text: str, index: int) -> object:
    from rdkit import Chem

    _quiet_rdkit()
    supplier = Chem.SDMolSupplier()
    supplier.SetData(text, sanitize=False, removeHs=False)
    if index >= len(supplier):
        raise StructureError(f"SDF has {len(supplier)} records, record {index} requested")
    mol = supplier[index]
    if mol is None:
        raise StructureError(f"RDKit cannot parse SDF record {index}")
    return mol


def _mol2_mol(text: str) -> object:
    from rdkit import Chem

    _quiet_rdkit()
    mol = Chem.MolFromMol2Block(text, sanitize=False, removeHs=False)
    if mol is None:
        raise StructureError("RDKit cannot parse the MOL2 block")
    return mol


def parse_ligand_text(text: str, fmt: str, index: int = 0) -> Atoms:
    """Ligand heavy atoms from SDF (record ``index``), MOL2 or PDBQT text."""
    fmt = fmt.lower()
    if fmt == "pdbqt":
        return parse_pdb_text(text, pdbqt=True, keep_waters=True)
    if fmt == "sdf":
        mol = _sdf_mol(text, index)
    elif fmt == "mol2":
        mol = _mol2_mol(text)
    else:
        raise StructureError(f"ligand format must be one of {', '.join(LIGAND_FORMATS)}, got {fmt!r}")
    return _atoms_from_mol(mol, _sanitise(mol))


@lru_cache(maxsize=4)
def _file_text(path: str, mtime_ns: int) -> str:
    return Path(path).read_text(errors="replace")


def read_ligand(paths: list[str | Path] | str | Path, index: int = 0) -> Atoms:
    """Ligand heavy atoms from the first readable file of ``paths`` (preference order, e.g. SDF → MOL2).

    A fallback that was needed is recorded in the returned notes; if none is readable the
    error lists every file's reason.
    """
    candidates = [paths] if isinstance(paths, (str, Path)) else list(paths)
    reasons: list[str] = []
    for candidate in candidates:
        p = Path(candidate)
        fmt = _format_of(p)
        if not p.is_file():
            reasons.append(f"{p.name}: missing")
            continue
        try:
            atoms = parse_ligand_text(_file_text(str(p), p.stat().st_mtime_ns), fmt, index)
        except StructureError as exc:
            reasons.append(f"{p.name}: {exc}")
            continue
        if reasons:
            atoms.notes.append("fallback to " + p.name + " (" + "; ".join(reasons) + ")")
        return atoms
    raise StructureError("no readable ligand: " + "; ".join(reasons) if reasons else "no ligand file given")
