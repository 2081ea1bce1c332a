"""Safe unpacking: every way out of the extraction folder is refused, and a refusal leaves nothing behind."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from compass.service.archives import ArchiveError, ArchiveLimits, extract_archive, safe_name, save_stream

LIMITS = ArchiveLimits(max_upload_bytes=1 << 20, max_files=50, max_extracted_bytes=8 << 20, max_ratio=50.0)


def write_zip(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]], deflate: bool = False) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as zf:
        for info, content in entries:
            zf.writestr(info, content)
    return path


def write_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info, content in members:
            if content is not None:
                info.size = len(content)
            tf.addfile(info, io.BytesIO(content) if content is not None else None)
    return path


def typed(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    return info


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a/b.txt", "a/b.txt"),
        ("./a//b.txt", "a/b.txt"),
        ("a/", "a"),
        ("__MACOSX/a/._b", None),
        ("", None),
    ],
)
def test_safe_names_are_normalised(name: str, expected: str | None) -> None:
    result = safe_name(name)
    assert (str(result) if result is not None else None) == expected


@pytest.mark.parametrize("name", ["/etc/passwd", "../evil", "a/../../evil", "C:/windows", "a\\..\\b", "a\x00b"])
def test_dangerous_names_are_refused(name: str) -> None:
    with pytest.raises(ArchiveError):
        safe_name(name)


def test_a_plain_zip_and_tar_unpack(tmp_path: Path) -> None:
    zipped = write_zip(tmp_path / "ok.zip", [("root/index.csv", b"pdb_id,pK\n"), ("root/x/y.txt", b"y" * 100)])
    out = extract_archive(zipped, tmp_path / "z", LIMITS)
    assert (out.format, out.n_files, out.extracted_bytes) == ("zip", 2, 110)
    assert (tmp_path / "z/root/x/y.txt").read_bytes() == b"y" * 100
    folder = tarfile.TarInfo("root/x")
    folder.type = tarfile.DIRTYPE
    tarred = write_tar(tmp_path / "ok.tar.gz", [(folder, None), (tarfile.TarInfo("root/x/y.txt"), b"yy")])
    assert extract_archive(tarred, tmp_path / "t", LIMITS).n_files == 1
    assert (tmp_path / "t/root/x/y.txt").read_bytes() == b"yy"


@pytest.mark.parametrize(
    "entry",
    [
        ("../evil", b"x"),
        ("/abs/evil", b"x"),
        (typed("link", stat.S_IFLNK | 0o777), b"/etc/passwd"),
        (typed("fifo", stat.S_IFIFO | 0o644), b""),
        (typed("dev", stat.S_IFCHR | 0o644), b""),
    ],
)
def test_zip_escapes_links_and_devices_are_refused_before_writing(tmp_path: Path, entry: tuple) -> None:
    archive = write_zip(tmp_path / "bad.zip", [("root/index.csv", b"ok"), entry])
    with pytest.raises(ArchiveError):
        extract_archive(archive, tmp_path / "out" / "x", LIMITS)
    assert not (tmp_path / "out" / "x").exists()
    assert not (tmp_path / "evil").exists() and not (tmp_path / "out" / "evil").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_tar_links_and_special_files_are_refused(tmp_path: Path, kind: bytes) -> None:
    good = tarfile.TarInfo("root/index.csv")
    bad = tarfile.TarInfo("root/other")
    bad.type, bad.linkname = kind, "/etc/passwd"
    archive = write_tar(tmp_path / "bad.tar.gz", [(good, b"pdb_id,pK\n"), (bad, None)])
    with pytest.raises(ArchiveError):
        extract_archive(archive, tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()  # the file written before the bad member is gone too


def test_tar_traversal_is_refused(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "bad.tar.gz", [(tarfile.TarInfo("../../evil"), b"owned")])
    with pytest.raises(ArchiveError, match=r"\.\."):
        extract_archive(archive, tmp_path / "out", LIMITS)
    assert not list(tmp_path.rglob("evil"))


def test_duplicate_members_cannot_overwrite_each_other(tmp_path: Path) -> None:
    archive = write_tar(
        tmp_path / "dup.tar.gz", [(tarfile.TarInfo("a.txt"), b"first"), (tarfile.TarInfo("./a.txt"), b"second")]
    )
    with pytest.raises(ArchiveError, match="twice"):
        extract_archive(archive, tmp_path / "out", LIMITS)


def test_compression_bombs_and_size_limits_are_refused(tmp_path: Path) -> None:
    bomb = write_zip(tmp_path / "bomb.zip", [("zeros", b"\0" * (4 << 20))], deflate=True)
    with pytest.raises(ArchiveError, match="bomb"):
        extract_archive(bomb, tmp_path / "b", LIMITS)
    many = write_zip(tmp_path / "many.zip", [(f"f{i}", b"x") for i in range(LIMITS.max_files + 1)])
    with pytest.raises(ArchiveError) as err:
        extract_archive(many, tmp_path / "m", LIMITS)
    assert err.value.too_large
    big = write_zip(tmp_path / "big.zip", [("big", b"\x01" * (LIMITS.max_extracted_bytes + 1))])
    with pytest.raises(ArchiveError) as err:
        extract_archive(big, tmp_path / "g", LIMITS)
    assert err.value.too_large and not (tmp_path / "g").exists()


def test_not_an_archive_or_empty_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.zip").write_bytes(b"hello, not a zip")
    with pytest.raises(ArchiveError, match=r"not a \.zip"):
        extract_archive(tmp_path / "x.zip", tmp_path / "o", LIMITS)
    with pytest.raises(ArchiveError, match="no files"):
        extract_archive(write_zip(tmp_path / "e.zip", [("d/", b"")]), tmp_path / "e", LIMITS)


def test_uploads_stream_to_disk_within_the_limit(tmp_path: Path) -> None:
    size, digest = save_stream(io.BytesIO(b"a" * 1000), tmp_path / "u", max_bytes=1000)
    assert size == 1000 and len(digest) == 64
    with pytest.raises(ArchiveError) as err:
        save_stream(io.BytesIO(b"a" * 1001), tmp_path / "v", max_bytes=1000)
    assert err.value.too_large and not (tmp_path / "v").exists()
