"""The 3D viewer's JavaScript (3Dmol.js), installed from its npm package into flashdock/static/vendor/.

FlashDock must work on an air-gapped cluster and never load a script from a CDN. ``scripts/bootstrap.sh``
runs ``python -m flashdock.assets`` once: it asks the npm client for the pinned package tarball
(``npm pack``: the registry, or an npm cache / mirror an operator configured; without npm, the registry's
tarball URL), checks its SHA-256,
and extracts the one minified file plus its licence. Pages read the file from disk.

Why 3Dmol.js: one self-contained 540 kB file (BSD-3-Clause) that draws cartoon, sticks, labels and
surfaces from PDB/SDF/MOL2 text; Mol* is an order of magnitude larger and needs a build step.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import click

from services.common.cli import command, parse

PACKAGE = "3dmol@2.5.5"
REGISTRY_TARBALL = "https://registry.npmjs.org/3dmol/-/3dmol-2.5.5.tgz"  # where npm itself would fetch it
TARBALL_SHA256 = "26d91c5036d4efe78fc032c22cb692fea92bbb3cb1e65d20bf3869673fb3d8f5"
SCRIPT_SHA256 = "f7cc78921ae72e7623e89cdd111434f58c2efddd2ffda1cd212644b406fb8016"
VENDOR = Path(__file__).resolve().parent / "static" / "vendor"
SCRIPT = VENDOR / "3Dmol-min.js"
MEMBERS = {"package/build/3Dmol-min.js": SCRIPT, "package/LICENSE": VENDOR / "3Dmol-LICENSE.txt"}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fetch(folder: Path) -> Path:
    """The package tarball: ``npm pack`` (which honours an operator's npm mirror or cache), else the registry's
    own tarball URL over HTTPS (a machine without npm). Either way its SHA-256 is checked by the caller."""
    npm = shutil.which("npm")
    if npm is not None:
        out = subprocess.run(
            [npm, "pack", PACKAGE, "--silent", "--pack-destination", str(folder)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        return folder / out[-1]
    target = folder / "3dmol-2.5.5.tgz"
    with urllib.request.urlopen(REGISTRY_TARBALL, timeout=60) as answer:  # a constant URL, never user input
        target.write_bytes(answer.read())
    return target


def installed() -> bool:
    return SCRIPT.is_file() and _sha256(SCRIPT) == SCRIPT_SHA256


def install(tarball: Path | None = None) -> Path:
    """Put 3Dmol-min.js under flashdock/static/vendor/ (from ``tarball``, else ``npm pack``); idempotent."""
    if installed():
        return SCRIPT
    with tempfile.TemporaryDirectory(prefix="flashdock-assets-") as tmp:
        if tarball is None:
            tarball = _fetch(Path(tmp))
        if _sha256(tarball) != TARBALL_SHA256:
            raise SystemExit(f"{tarball} is not the pinned {PACKAGE} (SHA-256 mismatch)")
        VENDOR.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarball, "r:gz") as tar:
            for name, dest in MEMBERS.items():
                member = tar.getmember(name)
                if not member.isfile():
                    raise SystemExit(f"{name} in {tarball} is not a regular file")
                source = tar.extractfile(member)
                assert source is not None
                dest.write_bytes(source.read())
    if not installed():
        raise SystemExit(f"{SCRIPT} does not match the pinned SHA-256")
    return SCRIPT


def main(argv: list[str] | None = None) -> int:
    cmd = command(
        "python -m flashdock.assets",
        [click.Option(["--tarball"], type=click.Path(dir_okay=False, path_type=Path), help="a local 3dmol-2.5.5.tgz")],
        help=__doc__.split("\n")[0],
    )
    print(install(parse(cmd, argv).params["tarball"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
