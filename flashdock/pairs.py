"""Protein–ligand pairs for Predict: the shipped examples, and the pairs inside an uploaded zip.

A zip is read member by member, straight from the upload, each member only when its pair is
scored: bytes are counted while they are read (headers can lie), with a cap per member, a cap
on everything read, and a compression-ratio limit, as the worker's archive code does.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "complexes"
PROTEIN_SUFFIXES = ("_pocket.pdb", "_protein.pdb", "_pocket.pdbqt", "_protein.pdbqt")
LIGAND_SUFFIXES = ("_ligand.sdf", "_ligand.mol2", "_ligand.pdbqt")
MAX_ZIP_PAIRS = 500
MAX_MEMBER_BYTES = 20_000_000
MAX_TOTAL_BYTES = 500_000_000
MAX_RATIO = 200.0  # uncompressed / compressed, judged on members over 1 MB
CHUNK = 1 << 16


@dataclass(frozen=True)
class Pair:
    """One complex to score: a name, both files as (filename, bytes), and its measured pK when known."""

    name: str
    protein: tuple[str, bytes]
    ligand: tuple[str, bytes]
    experimental_pk: float | None = None


def examples() -> dict[str, Pair]:
    """The example complexes under examples/complexes (pocket + SDF ligand), with index.csv's pK."""
    measured: dict[str, float] = {}
    index = EXAMPLES / "index.csv"
    if index.is_file():
        with index.open() as fh:
            measured = {row["pdb_id"]: float(row["pK"]) for row in csv.DictReader(fh) if row.get("pK")}
    out = {}
    for folder in sorted(p for p in EXAMPLES.iterdir() if p.is_dir()) if EXAMPLES.is_dir() else []:
        prot, lig = folder / f"{folder.name}_pocket.pdb", folder / f"{folder.name}_ligand.sdf"
        if prot.exists() and lig.exists():
            pair = Pair(folder.name, (prot.name, prot.read_bytes()), (lig.name, lig.read_bytes()))
            out[folder.name] = Pair(pair.name, pair.protein, pair.ligand, measured.get(folder.name))
    return out


def _split(name: str, suffixes: tuple[str, ...]) -> str | None:
    base = PurePosixPath(name)
    for suffix in suffixes:
        if base.name.lower().endswith(suffix):
            return str(base.parent / base.name[: -len(suffix)])
    return None


class ZipPairs:
    """The pairs of a zip upload ``<id>_pocket.pdb|_protein.pdb`` + ``<id>_ligand.sdf|.mol2`` at any depth.

    Only the central directory is read up front; :meth:`__iter__` reads each pair's two members when
    it is reached. Raises ``ValueError`` with a readable reason for a file that is not a zip, holds no
    pair, or breaks a limit.
    """

    def __init__(self, upload: IO[bytes]) -> None:
        try:
            self.archive = zipfile.ZipFile(upload)
        except zipfile.BadZipFile as exc:
            raise ValueError("this file is not a zip archive") from exc
        proteins: dict[str, zipfile.ZipInfo] = {}
        ligands: dict[str, zipfile.ZipInfo] = {}
        for info in self.archive.infolist():
            if info.is_dir():
                continue
            if (key := _split(info.filename, PROTEIN_SUFFIXES)) is not None:
                proteins.setdefault(key, info)
            elif (key := _split(info.filename, LIGAND_SUFFIXES)) is not None:
                ligands.setdefault(key, info)
        keys = sorted(set(proteins) & set(ligands))
        if not keys:
            raise ValueError(
                "no pairs found: name files <id>_pocket.pdb (or _protein.pdb) and <id>_ligand.sdf (or .mol2)"
            )
        self.skipped = max(0, len(keys) - MAX_ZIP_PAIRS)
        self.keys = keys[:MAX_ZIP_PAIRS]
        self.members = {k: (proteins[k], ligands[k]) for k in self.keys}
        self.unpaired = [PurePosixPath(k).name for k in sorted(set(proteins) ^ set(ligands))]
        self._read = 0

    def __len__(self) -> int:
        return len(self.keys)

    def _member(self, info: zipfile.ZipInfo) -> tuple[str, bytes]:
        name = PurePosixPath(info.filename).name
        if info.file_size > MAX_MEMBER_BYTES:
            raise ValueError(f"{name} is larger than {MAX_MEMBER_BYTES // 1_000_000} MB")
        if info.file_size > 1 << 20 and info.file_size > MAX_RATIO * max(1, info.compress_size):
            raise ValueError(f"{name} is compressed more than {MAX_RATIO:g}:1 (a zip bomb?)")
        parts, size = [], 0
        with self.archive.open(info) as fh:
            while chunk := fh.read(CHUNK):
                size += len(chunk)
                self._read += len(chunk)
                if size > MAX_MEMBER_BYTES:  # the header said less: it lied
                    raise ValueError(f"{name} is larger than {MAX_MEMBER_BYTES // 1_000_000} MB")
                if self._read > MAX_TOTAL_BYTES:
                    raise ValueError(f"the archive holds more than {MAX_TOTAL_BYTES // 1_000_000} MB of structures")
                parts.append(chunk)
        return name, b"".join(parts)

    def pair(self, key: str) -> Pair:
        """The pair ``key`` (one of :attr:`keys`), its two members read now; ``ValueError`` past a limit."""
        protein, ligand = self.members[key]
        try:
            return Pair(PurePosixPath(key).name, self._member(protein), self._member(ligand))
        except (zipfile.BadZipFile, OSError) as exc:  # a damaged member (CRC, truncated): this pair only
            raise ValueError(f"cannot read {PurePosixPath(key).name}: {exc}") from exc

    def __iter__(self) -> Iterator[Pair]:
        for key in self.keys:
            yield self.pair(key)
