"""Dataset archives: stream an upload to disk, then unpack it without trusting a single header.

An archive is hostile until proven otherwise. Members are written only as regular files and
folders under a fresh staging folder: absolute names, ``..``, backslashes, links (symbolic or
hard), devices and FIFOs reject the whole archive, as do too many members, too many bytes or a
compression ratio typical of a zip bomb. Bytes are counted while they are written (headers can
lie), files are opened with ``O_EXCL`` (no member overwrites another), and a rejected archive
leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO

CHUNK = 1 << 20
# Below this size a member's ratio is not judged: tiny files compress absurdly well (empty, repeated lines).
_RATIO_MIN_BYTES = 1 << 20
_MAX_DEPTH = 32
_MAX_NAME = 1024
_SKIPPED_PREFIXES = ("__MACOSX/",)


class ArchiveError(ValueError):
    """The upload is refused; ``too_large`` marks a size limit (413) rather than a bad archive (400)."""

    def __init__(self, reason: str, *, too_large: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.too_large = too_large


@dataclass(frozen=True)
class ArchiveLimits:
    max_upload_bytes: int = 2 << 30
    max_files: int = 50_000
    max_extracted_bytes: int = 8 << 30
    max_ratio: float = 200.0


@dataclass(frozen=True)
class Extracted:
    """What an archive held once unpacked."""

    format: str
    n_files: int
    n_dirs: int
    extracted_bytes: int


def save_stream(stream: BinaryIO | IO[bytes], dest: Path, max_bytes: int) -> tuple[int, str]:
    """Copy ``stream`` to ``dest`` in chunks (never whole in memory); returns ``(bytes, sha256)``."""
    digest = hashlib.sha256()

    def take(size: int, chunk: bytes) -> None:
        if size > max_bytes:
            raise ArchiveError(f"upload exceeds the {max_bytes}-byte limit", too_large=True)
        digest.update(chunk)

    try:
        size = _copy_chunks(stream, dest, take)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()


def _copy_chunks(src: BinaryIO | IO[bytes], dest: Path, take: Callable[[int, bytes], None]) -> int:
    """Stream ``src`` into the new file ``dest``; ``take(bytes so far, chunk)`` may refuse by raising."""
    total = 0
    with open(dest, "xb") as out:
        while chunk := src.read(CHUNK):
            total += len(chunk)
            take(total, chunk)
            out.write(chunk)
    return total


def archive_format(path: Path) -> str:
    """``zip`` or ``tar`` (plain, gz, bz2, xz), judged by content, not by the file name."""
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except (OSError, EOFError, tarfile.TarError):
        pass
    raise ArchiveError("not a .zip or .tar(.gz/.bz2/.xz) archive")


def safe_name(name: str) -> PurePosixPath | None:
    """The member's relative path, None for entries to skip; ArchiveError for a dangerous name."""
    if "\x00" in name or "\\" in name:
        raise ArchiveError(f"member name {name[:100]!r} contains a NUL or a backslash")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"member {name[:100]!r} has an absolute path")
    if len(name) > _MAX_NAME:
        raise ArchiveError(f"member name of {len(name)} characters (limit {_MAX_NAME})")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"member {name[:100]!r} climbs out of the archive with '..'")
    if len(parts) > _MAX_DEPTH:
        raise ArchiveError(f"member {name[:100]!r} is nested deeper than {_MAX_DEPTH} folders")
    if not parts or any(name.startswith(p) for p in _SKIPPED_PREFIXES):
        return None
    return PurePosixPath(*parts)


class _Budget:
    """Counts members and bytes against the limits as they are written."""

    def __init__(self, limits: ArchiveLimits, archive_bytes: int) -> None:
        self.limits = limits
        self.archive_bytes = max(1, archive_bytes)
        self.files = 0
        self.dirs = 0
        self.bytes = 0

    def member(self) -> None:
        if self.files + self.dirs >= self.limits.max_files:
            raise ArchiveError(f"archive has more than {self.limits.max_files} members", too_large=True)

    def add_bytes(self, n: int) -> None:
        self.bytes += n
        if self.bytes > self.limits.max_extracted_bytes:
            raise ArchiveError(f"archive expands past the {self.limits.max_extracted_bytes}-byte limit", too_large=True)
        if self.bytes > _RATIO_MIN_BYTES and self.bytes / self.archive_bytes > self.limits.max_ratio:
            raise ArchiveError(
                f"archive expands more than {self.limits.max_ratio:g}× its size: refused as a likely zip bomb"
            )


def _target(root: Path, rel: PurePosixPath) -> Path:
    path = root.joinpath(*rel.parts)
    # Defence in depth: nothing we create is a link, so resolving cannot be fooled.
    if not path.resolve().is_relative_to(root.resolve()):
        raise ArchiveError(f"member {rel} resolves outside the extraction folder")
    return path


def _make_dir(root: Path, rel: PurePosixPath, budget: _Budget) -> None:
    path = _target(root, rel)
    if path.is_dir():
        return
    budget.member()
    try:
        path.mkdir(mode=0o755, parents=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise ArchiveError(f"member {rel} clashes with another member") from exc
    budget.dirs += 1


def _write_file(root: Path, rel: PurePosixPath, src: IO[bytes], budget: _Budget, declared: int) -> None:
    budget.member()
    path = _target(root, rel)
    if rel.parent.parts:
        _make_dir(root, rel.parent, budget)

    def take(written: int, chunk: bytes) -> None:
        if written > declared:
            raise ArchiveError(f"member {rel} holds more bytes than its header declares")
        budget.add_bytes(len(chunk))

    try:
        _copy_chunks(src, path, take)
    except (FileExistsError, IsADirectoryError, NotADirectoryError) as exc:
        raise ArchiveError(f"member {rel} appears twice or clashes with a folder") from exc
    path.chmod(0o644)
    budget.files += 1


def _zip_members(zf: zipfile.ZipFile, limits: ArchiveLimits) -> Iterator[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Check every entry of the central directory before a single byte is written."""
    infos = zf.infolist()
    if len(infos) > limits.max_files:
        raise ArchiveError(f"archive has {len(infos)} members (limit {limits.max_files})", too_large=True)
    declared = sum(i.file_size for i in infos)
    if declared > limits.max_extracted_bytes:
        raise ArchiveError(f"archive declares {declared} bytes (limit {limits.max_extracted_bytes})", too_large=True)
    checked = []
    for info in infos:
        rel = safe_name(info.filename)
        kind = stat.S_IFMT(info.external_attr >> 16)  # 0: the archiver recorded no Unix type (plain file)
        if kind == stat.S_IFLNK:
            raise ArchiveError(f"member {info.filename!r} is a symbolic link")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise ArchiveError(f"member {info.filename!r} is a device, FIFO or socket")
        if info.flag_bits & 0x1:
            raise ArchiveError(f"member {info.filename!r} is encrypted")
        big = info.file_size > _RATIO_MIN_BYTES
        if big and info.file_size / max(1, info.compress_size) > limits.max_ratio:
            raise ArchiveError(f"member {info.filename!r} expands more than {limits.max_ratio:g}×: likely a zip bomb")
        if rel is not None:
            checked.append((info, rel))
    yield from checked


def _extract_zip(path: Path, dest: Path, budget: _Budget) -> None:
    with zipfile.ZipFile(path) as zf:
        for info, rel in list(_zip_members(zf, budget.limits)):
            if info.is_dir():
                _make_dir(dest, rel, budget)
                continue
            with zf.open(info) as src:
                _write_file(dest, rel, src, budget, info.file_size)


def _extract_tar(path: Path, dest: Path, budget: _Budget) -> None:
    # Streaming mode: one pass, no seeking back, members checked as they come.
    with tarfile.open(path, mode="r|*") as tf:
        for member in tf:
            if member.issym() or member.islnk():
                raise ArchiveError(f"member {member.name!r} is a link")
            if not (member.isreg() or member.isdir()):
                raise ArchiveError(f"member {member.name!r} is a device, FIFO or other special file")
            rel = safe_name(member.name)
            if rel is None:
                continue
            if member.isdir():
                _make_dir(dest, rel, budget)
                continue
            src = tf.extractfile(member)
            if src is None:
                raise ArchiveError(f"member {member.name!r} cannot be read")
            _write_file(dest, rel, src, budget, member.size)


def extract_archive(path: Path, dest: Path, limits: ArchiveLimits) -> Extracted:
    """Unpack ``path`` into the new folder ``dest``; on any refusal ``dest`` is removed again."""
    fmt = archive_format(path)
    budget = _Budget(limits, path.stat().st_size)
    dest.mkdir(parents=True, exist_ok=False)
    try:
        if fmt == "zip":
            _extract_zip(path, dest, budget)
        else:
            _extract_tar(path, dest, budget)
    except ArchiveError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, ValueError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise ArchiveError(f"corrupt archive: {type(exc).__name__}: {exc}") from exc
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    if budget.files == 0:
        shutil.rmtree(dest, ignore_errors=True)
        raise ArchiveError("the archive holds no files")
    return Extracted(fmt, budget.files, budget.dirs, budget.bytes)
