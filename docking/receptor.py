"""Receptors: a plain PDB in, a Vina-ready PDBQT out, cached by content hash.

PDBFixer (OpenMM) does the chemistry: non-standard residues mapped to standard ones (MSE → MET),
missing heavy atoms rebuilt, hydrogens added for the requested pH. Waters go unless asked for;
metal ions stay (Vina scores them as metal donors: zinc sites matter); other HETATM groups
(cofactors, other ligands) go unless ``keep_hetero``, in which case they are kept as the file
gives them. The PDBQT typing is AutoDockTools' receptor rule, written out below because it is a
table: aromatic ring carbons ``A``, other carbons ``C``, histidine ring N without H ``NA``, other N
``N``, oxygens ``OA``, sulfur ``SA``, polar hydrogens ``HD`` (non-polar ones merged away), metals
and halogens by element. Meeko's own receptor writer was tried first: it rejects the
PDBFixer output of PDBbind pocket files (fragments of chains), so it is not used here.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from docking.errors import INVALID_STRUCTURE, DockingError
from services.common.files import atomic_path

log = logging.getLogger(__name__)

PREP_VERSION = "2"  # part of the cache key: bump when the preparation changes (2: seeded hydrogens, Reference platform)
# OpenMM puts each new hydrogen at a position drawn from Python's global ``random`` and then
# minimises: unseeded, two preparations of one file differed in their polar hydrogens, so a fresh
# worker and a cached one docked the same request differently. Seeded, the same PDB text always
# gives the same receptor.
PREP_SEED = 0
_random_lock = threading.Lock()
WATERS = frozenset({"HOH", "WAT", "DOD", "H2O", "TIP", "TIP3", "SOL"})
METALS = frozenset({"ZN", "FE", "MG", "CA", "MN", "CO", "NI", "CU", "NA", "K"})
# Element → AutoDock type for atoms with no special rule (Vina ignores the others).
_ELEMENT_TYPES = {
    "C": "C",
    "O": "OA",
    "S": "SA",
    "P": "P",
    "F": "F",
    "CL": "Cl",
    "BR": "Br",
    "I": "I",
    "ZN": "Zn",
    "FE": "Fe",
    "MG": "Mg",
    "CA": "Ca",
    "MN": "Mn",
    "CO": "Co",
    "NI": "Ni",
    "CU": "Cu",
    "NA": "Na",
    "K": "K",
}
_AROMATIC = {
    "PHE": {"CG", "CD1", "CD2", "CE1", "CE2", "CZ"},
    "TYR": {"CG", "CD1", "CD2", "CE1", "CE2", "CZ"},
    "TRP": {"CG", "CD1", "CD2", "NE1", "CE2", "CE3", "CZ2", "CZ3", "CH2"},
    "HIS": {"CG", "ND1", "CD2", "CE1", "NE2"},
}


@dataclass(frozen=True)
class PdbAtom:
    """One ATOM/HETATM record, as much of it as docking needs."""

    het: bool
    name: str
    resname: str
    chain: str
    resseq: str  # number plus insertion code, as written ("123", "123A")
    element: str
    xyz: tuple[float, float, float]


def _element(line: str) -> str:
    symbol = line[76:78].strip().upper()
    if symbol:
        return symbol
    name = line[12:16].strip().upper()
    return name.lstrip("0123456789")[:1]


def parse_pdb(text: str, max_atoms: int) -> list[PdbAtom]:
    """The ATOM/HETATM records of the first model; INVALID_STRUCTURE when there is none or too many."""
    atoms: list[PdbAtom] = []
    for line in text.splitlines():
        if line.startswith("ENDMDL"):
            break
        if not line.startswith(("ATOM  ", "HETATM")):
            continue
        try:
            xyz = (float(line[30:38]), float(line[38:46]), float(line[46:54]))
        except ValueError:
            raise DockingError(INVALID_STRUCTURE, f"unreadable coordinates in PDB line {line[:30]!r}") from None
        atoms.append(
            PdbAtom(
                line.startswith("HETATM"),
                line[12:16].strip(),
                line[17:20].strip(),
                line[21:22].strip(),
                line[22:27].strip(),
                _element(line),
                xyz,
            )
        )
        if len(atoms) > max_atoms:
            raise DockingError(INVALID_STRUCTURE, f"the protein has more than {max_atoms} atoms (the cap)")
    if not any(not a.het and a.element != "H" for a in atoms):
        raise DockingError(INVALID_STRUCTURE, "the protein PDB has no ATOM records (no protein atoms)")
    return atoms


def coordinates(atoms: list[PdbAtom]) -> np.ndarray:
    return np.array([a.xyz for a in atoms], dtype=float).reshape(-1, 3)


@dataclass(frozen=True)
class ReceptorOptions:
    """How to treat what is not protein; part of the cache key."""

    ph: float = 7.4
    keep_waters: bool = False
    keep_metals: bool = True
    keep_hetero: bool = False


@dataclass(frozen=True)
class Receptor:
    """A prepared receptor on disk: ``pdbqt`` for Vina, ``pdb`` (with hydrogens) for viewing and pockets."""

    key: str
    pdbqt: Path
    pdb: Path
    cached: bool


def cache_key(pdb_text: str, options: ReceptorOptions) -> str:
    blob = json.dumps({"v": PREP_VERSION, "options": asdict(options)}, sort_keys=True) + "\n" + pdb_text
    return hashlib.sha256(blob.encode()).hexdigest()


def prepare(pdb_text: str, options: ReceptorOptions, cache_dir: Path, *, max_atoms: int = 100_000) -> Receptor:
    """The prepared receptor for this exact PDB text and options, from the cache when it is there."""
    key = cache_key(pdb_text, options)
    pdbqt, pdb = cache_dir / f"{key}.pdbqt", cache_dir / f"{key}.pdb"
    if pdbqt.is_file() and pdb.is_file():
        return Receptor(key, pdbqt, pdb, cached=True)
    atoms = parse_pdb(pdb_text, max_atoms)
    fixed_pdb, typed = _fix_and_type(pdb_text, atoms, options)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(pdb) as tmp:  # pdb first: a receptor counts as cached only once its pdbqt exists
        Path(tmp).write_text(fixed_pdb)
    with atomic_path(pdbqt) as tmp:
        Path(tmp).write_text(typed)
    return Receptor(key, pdbqt, pdb, cached=False)


def _fix_and_type(pdb_text: str, atoms: list[PdbAtom], options: ReceptorOptions) -> tuple[str, str]:
    """PDBFixer's protein with hydrogens (PDB text) and the PDBQT of it plus the kept HETATM groups."""
    from openmm.app import PDBFile
    from pdbfixer import PDBFixer

    protein_lines = [ln for ln in pdb_text.splitlines() if ln.startswith(("ATOM  ", "TER", "END"))]
    try:
        fixer = PDBFixer(pdbfile=io.StringIO("\n".join(protein_lines) + "\n"), platform=_reference_platform())
        fixer.missingResidues = {}  # never invent loops: pocket files are fragments by design
        fixer.findNonstandardResidues()
        fixer.replaceNonstandardResidues()
        fixer.findMissingAtoms()
        with seeded_random(PREP_SEED):
            fixer.addMissingAtoms(seed=PREP_SEED)
            fixer.addMissingHydrogens(options.ph)
    except Exception as exc:  # OpenMM raises ValueError/Exception for residues it cannot template
        raise DockingError(INVALID_STRUCTURE, f"PDBFixer cannot prepare the protein: {exc}"[:400]) from None
    out = io.StringIO()
    PDBFile.writeFile(fixer.topology, fixer.positions, out, keepIds=True)
    lines = _protein_pdbqt(fixer)
    kept = [a for a in atoms if a.het and _keep_het(a, options)]
    lines += [
        _pdbqt_line(len(lines) + i + 1, a.name, a.resname, a.chain, a.resseq, a.xyz, _het_type(a, kept))
        for i, a in enumerate(kept)
        if _het_type(a, kept)
    ]
    if not lines:
        raise DockingError(INVALID_STRUCTURE, "no protein atom is left after preparation")
    het_pdb = "".join(
        f"HETATM{i:5d} {a.name:<4} {a.resname:>3} {a.chain:1}{a.resseq:>5}   "
        f"{a.xyz[0]:8.3f}{a.xyz[1]:8.3f}{a.xyz[2]:8.3f}  1.00  0.00          {a.element:>2}\n"
        for i, a in enumerate(kept, start=1)
    )
    return out.getvalue().replace("END\n", het_pdb + "END\n"), "\n".join(lines) + "\n"


def _reference_platform() -> Any:
    """OpenMM's Reference platform: its minimisation gives the same hydrogens on any number of cores
    (the CPU platform's result depends on its thread count, i.e. on the machine)."""
    from openmm import Platform

    return Platform.getPlatformByName("Reference")


@contextmanager
def seeded_random(seed: int) -> Iterator[None]:
    """Python's global ``random`` seeded for the block (OpenMM draws from it), its state restored after."""
    with _random_lock:
        state = random.getstate()
        random.seed(seed)
        try:
            yield
        finally:
            random.setstate(state)


def _keep_het(atom: PdbAtom, options: ReceptorOptions) -> bool:
    if atom.resname in WATERS:
        return options.keep_waters and atom.element != "H"
    if atom.resname in METALS or (atom.element in METALS and atom.resname == atom.element):
        return options.keep_metals
    return options.keep_hetero


def _het_type(atom: PdbAtom, group: list[PdbAtom]) -> str | None:
    """A kept HETATM's type: by element; N with an H within 1.15 Å is a donor N, without one NA."""
    if atom.element == "H":
        near = [b for b in group if b.element in ("N", "O") and _dist(atom.xyz, b.xyz) < 1.15]
        return "HD" if near else None
    if atom.element == "N":
        has_h = any(b.element == "H" and _dist(atom.xyz, b.xyz) < 1.15 for b in group)
        return "N" if has_h else "NA"
    return _ELEMENT_TYPES.get(atom.element)


def _dist(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    return float(np.linalg.norm(np.subtract(a, b)))


def _protein_pdbqt(fixer: object) -> list[str]:
    """PDBQT lines of PDBFixer's topology, typed by the table in the module docstring."""
    topology, positions = fixer.topology, fixer.positions  # type: ignore[attr-defined]
    partner: dict[int, str] = {}
    hydrogens_on: dict[int, int] = {}
    for a, b in topology.bonds():
        for h, other in ((a, b), (b, a)):
            if h.element is not None and h.element.symbol == "H":
                partner[h.index] = other.element.symbol if other.element is not None else ""
                hydrogens_on[other.index] = hydrogens_on.get(other.index, 0) + 1
    lines: list[str] = []
    for atom in topology.atoms():
        symbol = atom.element.symbol.upper() if atom.element is not None else ""
        res = atom.residue
        if symbol == "H":
            if partner.get(atom.index) not in ("N", "O"):
                continue  # non-polar hydrogens are merged, as AutoDockTools does
            ad_type = "HD"
        elif symbol == "C":
            ad_type = "A" if atom.name in _AROMATIC.get(res.name, ()) else "C"
        elif symbol == "N":
            acceptor = res.name == "HIS" and atom.name in ("ND1", "NE2") and not hydrogens_on.get(atom.index)
            ad_type = "NA" if acceptor else "N"
        else:
            ad_type = _ELEMENT_TYPES.get(symbol)
            if ad_type is None:
                continue
        pos = positions[atom.index].value_in_unit(_angstrom())
        resseq = f"{res.id}{(res.insertionCode or '').strip()}"
        lines.append(_pdbqt_line(len(lines) + 1, atom.name, res.name, res.chain.id, resseq, tuple(pos), ad_type))
    return lines


def _angstrom() -> object:
    from openmm.unit import angstrom

    return angstrom


def _pdbqt_line(
    serial: int, name: str, resname: str, chain: str, resseq: str, xyz: tuple[float, float, float], ad_type: str | None
) -> str:
    """One receptor PDBQT record (charges are zero: Vina's scoring function does not use them)."""
    name4 = name if len(name) >= 4 else f" {name:<3}"
    number, icode = (resseq[:-1], resseq[-1]) if resseq and resseq[-1].isalpha() else (resseq, " ")
    return (
        f"ATOM  {serial % 100000:5d} {name4:<4} {resname:>3} {chain[:1] or ' '}{number[-4:]:>4}{icode}   "
        f"{xyz[0]:8.3f}{xyz[1]:8.3f}{xyz[2]:8.3f}  1.00  0.00    {0.0:+6.3f} {ad_type:<2}"
    )
