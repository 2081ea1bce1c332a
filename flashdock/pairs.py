"""Protein–ligand pairs for Predict: the shipped examples, and the pairs inside an uploaded zip."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "complexes"
PROTEIN_SUFFIXES = ("_pocket.pdb", "_protein.pdb", "_pocket.pdbqt", "_protein.pdbqt")
LIGAND_SUFFIXES = ("_ligand.sdf", "_ligand.mol2", "_ligand.pdbqt")
MAX_ZIP_PAIRS = 500


@dataclass(frozen=True)
class Pair:
    """One complex to score: a name and both files as (filename, bytes)."""

    name: str
    protein: tuple[str, bytes]
    ligand: tuple[str, bytes]


def examples() -> dict[str, Pair]:
    """The example complexes under examples/complexes (pocket + SDF ligand)."""
    out = {}
    for folder in sorted(p for p in EXAMPLES.iterdir() if p.is_dir()) if EXAMPLES.is_dir() else []:
        prot, lig = folder / f"{folder.name}_pocket.pdb", folder / f"{folder.name}_ligand.sdf"
        if prot.exists() and lig.exists():
            out[folder.name] = Pair(folder.name, (prot.name, prot.read_bytes()), (lig.name, lig.read_bytes()))
    return out


def _split(name: str, suffixes: tuple[str, ...]) -> str | None:
    base = PurePosixPath(name)
    for suffix in suffixes:
        if base.name.lower().endswith(suffix):
            return str(base.parent / base.name[: -len(suffix)])
    return None


def zip_pairs(data: bytes) -> tuple[list[Pair], list[str]]:
    """Pairs ``<id>_pocket.pdb|_protein.pdb`` + ``<id>_ligand.sdf|.mol2`` at any depth, and what was left unpaired.

    Raises ``ValueError`` with a readable reason for a file that is not a zip or holds no pair.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ValueError("this file is not a zip archive") from exc
    proteins: dict[str, str] = {}
    ligands: dict[str, str] = {}
    for info in archive.infolist():
        if info.is_dir() or info.file_size > 50_000_000:
            continue
        if (key := _split(info.filename, PROTEIN_SUFFIXES)) is not None:
            proteins.setdefault(key, info.filename)
        elif (key := _split(info.filename, LIGAND_SUFFIXES)) is not None:
            ligands.setdefault(key, info.filename)
    keys = sorted(set(proteins) & set(ligands))[:MAX_ZIP_PAIRS]
    if not keys:
        raise ValueError("no pairs found: name files <id>_pocket.pdb (or _protein.pdb) and <id>_ligand.sdf (or .mol2)")
    pairs = [
        Pair(
            PurePosixPath(k).name,
            (PurePosixPath(proteins[k]).name, archive.read(proteins[k])),
            (PurePosixPath(ligands[k]).name, archive.read(ligands[k])),
        )
        for k in keys
    ]
    unpaired = sorted(set(proteins) ^ set(ligands))
    return pairs, [PurePosixPath(k).name for k in unpaired]
