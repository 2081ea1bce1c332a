"""What code made an artefact: ``compass.__version__`` and the git commit (recorded in every checkpoint)."""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path

import compass


def _git(args: list[str], cwd: Path) -> str | None:
    """stdout of a git command, or None when git, the repository or the command fails."""
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):  # no git, odd sandbox: no answer is fine
        return None
    return out.stdout if out.returncode == 0 else None


def git_state(folder: Path) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the checkout holding ``folder``.

    ``dirty`` says whether files under ``folder`` differ from that commit (edited, added or
    untracked), so a checkpoint trained on uncommitted code does not claim a commit it was not
    made by. Both are None outside a git checkout.
    """
    commit = (_git(["rev-parse", "HEAD"], folder) or "").strip()
    if not commit:
        return None, None
    status = _git(["status", "--porcelain", "--", "."], folder)
    return commit, None if status is None else bool(status.strip())


@lru_cache(maxsize=1)
def code_version() -> dict[str, str | bool | None]:
    """``compass.__version__``, the git commit of the checkout and whether ``compass/`` had edits."""
    commit, dirty = git_state(Path(compass.__file__).resolve().parent)
    return {"compass": compass.__version__, "git_commit": commit, "git_dirty": dirty}
