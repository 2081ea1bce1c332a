"""Per-client tokens: the identity a worker's rate limit and cost budget count against.

The operator issues one token per client (a team, FlashDock, a pipeline host) with::

    python -m services.common.client_tokens issue NAME --file client-tokens.txt

which prints the token once and appends ``NAME:sha256(token)`` to the file; every worker given
the file (``--client-tokens-file`` / ``WORKER_CLIENT_TOKENS_FILE``) then recognises that client
from its ``Authorization: Bearer`` header. The file holds only hashes, so a copy on every worker
host gives nobody a usable token; ``revoke NAME`` removes a line and workers reread the file when
it changes. Why a file of hashes and not signed tokens: a signing key on every worker would let
any worker host mint identities, and a signed token cannot be revoked without a list anyway.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import click

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_RECHECK_S = 1.0  # how often a worker looks at the file's modification time


def token_hash(token: str) -> str:
    """What the file stores: the token's SHA-256 (tokens are 256 random bits, so no salt or stretching)."""
    return hashlib.sha256(token.encode()).hexdigest()


def read_file(path: Path) -> dict[str, str]:
    """``{hash: name}`` from ``NAME:HASH`` lines (``#`` comments and blank lines skipped)."""
    names: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, digest = line.partition(":")
        if not NAME_RE.match(name) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ValueError(f"{path}:{number}: expected NAME:SHA256-HEX")
        names[digest] = name
    return names


class ClientTokens:
    """The issued tokens a worker verifies; rereads its file when it changes (at most once a second)."""

    def __init__(self, path: str | Path, clock=time.monotonic) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._names = read_file(self.path)  # a bad file fails start-up, not the first request
        self._mtime = self.path.stat().st_mtime_ns
        self._checked = clock()

    def __len__(self) -> int:
        return len(self._names)

    def verify(self, token: str) -> str | None:
        """The client's name when ``token`` was issued (and not revoked), else None."""
        if not token:
            return None
        self._refresh()
        return self._names.get(token_hash(token))

    def _refresh(self) -> None:
        now = self._clock()
        with self._lock:
            if now - self._checked < _RECHECK_S:
                return
            self._checked = now
            try:
                mtime = self.path.stat().st_mtime_ns
                if mtime != self._mtime:
                    self._names, self._mtime = read_file(self.path), mtime
            except (OSError, ValueError) as exc:  # keep the last good list; say so once per check
                print(f"client tokens: keeping the previous list: {exc}", file=sys.stderr)


def _write_lines(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{line}\n" for line in lines))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


@click.group(context_settings={"max_content_width": 100})
def cli() -> None:
    """Issue, revoke and list the per-client tokens workers verify (the file holds hashes only)."""


_FILE = click.option(
    "--file", "path", type=click.Path(dir_okay=False, path_type=Path), required=True, help="the tokens file"
)


@cli.command()
@click.argument("name")
@_FILE
def issue(name: str, path: Path) -> None:
    """Make a token for NAME, append its hash to the file and print the token (shown only now)."""
    if not NAME_RE.match(name):
        raise click.BadParameter(f"must match {NAME_RE.pattern}", param_hint="NAME")
    lines = path.read_text().splitlines() if path.exists() else []
    if name in (read_file(path).values() if path.exists() else ()):
        raise click.UsageError(f"{name} has a token already: revoke it first")
    token = secrets.token_urlsafe(32)
    _write_lines(path, [*lines, f"{name}:{token_hash(token)}"])
    click.echo(token)


@cli.command()
@click.argument("name")
@_FILE
def revoke(name: str, path: Path) -> None:
    """Remove NAME's token; workers stop accepting it within a second or two."""
    lines = path.read_text().splitlines()
    kept = [line for line in lines if line.strip().partition(":")[0] != name]
    if len(kept) == len(lines):
        raise click.UsageError(f"no token for {name} in {path}")
    _write_lines(path, kept)


@cli.command(name="list")
@_FILE
def list_names(path: Path) -> None:
    """The client names that hold a token."""
    for name in sorted(read_file(path).values()):
        click.echo(name)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cli.main(args=list(sys.argv[1:] if argv is None else argv), prog_name="python -m services.common.client_tokens")
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
