"""Generate the Python code of ``vectors.proto`` (messages and gRPC stubs) beside it.

    python -m vectors.proto.build            # rewrite vectors_pb2.py, vectors_pb2.pyi, vectors_pb2_grpc.py
    python -m vectors.proto.build --check    # exit 1 when the committed files differ from a fresh build

The generated files are committed so a worker needs only ``grpcio`` and ``protobuf`` at run
time; ``grpcio-tools`` (pinned in requirements_service.txt) is needed only to rebuild them, and
a unit test rebuilds into a temporary folder and compares, so they never drift from the .proto.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

PROTO_DIR = Path(__file__).resolve().parent
ROOT = PROTO_DIR.parent.parent
PROTOS = ("vectors.proto",)
OUTPUTS = ("vectors_pb2.py", "vectors_pb2.pyi", "vectors_pb2_grpc.py")


def generate(out_root: Path) -> list[Path]:
    """Run protoc (from grpcio-tools) with the repository root as include path, into ``out_root``."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    rel = [str((PROTO_DIR / p).relative_to(ROOT)) for p in PROTOS]
    args = [
        "protoc",
        f"-I{ROOT}",
        f"-I{well_known}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *rel,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    return [out_root / PROTO_DIR.relative_to(ROOT) / name for name in OUTPUTS]


def differences() -> list[str]:
    """The generated files whose committed copy differs from a fresh build."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        return [
            p.name
            for p in fresh
            if not (PROTO_DIR / p.name).exists() or (PROTO_DIR / p.name).read_bytes() != p.read_bytes()
        ]


@click.command(help="Generate vectors_pb2*.py from vectors.proto (needs grpcio-tools).")
@click.option("--check", is_flag=True, help="only compare the committed files with a fresh build")
def main(check: bool) -> None:
    if check:
        stale = differences()
        if stale:
            click.echo(f"out of date: {', '.join(stale)} (run python -m vectors.proto.build)", err=True)
            sys.exit(1)
        click.echo("generated code is up to date")
        return
    with tempfile.TemporaryDirectory() as tmp:
        for path in generate(Path(tmp)):
            (PROTO_DIR / path.name).write_bytes(path.read_bytes())
            click.echo(f"wrote {PROTO_DIR / path.name}")


if __name__ == "__main__":
    main()
