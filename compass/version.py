"""What code made an artefact: ``compass.__version__`` and the git commit (recorded in every checkpoint)."""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path

import compass


@lru_cache(maxsize=1)
def code_version() -> dict[str, str | None]:
    """``compass.__version__`` and the git commit of the checkout, when there is one (never fails)."""
    commit = None
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(compass.__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        commit = (out.stdout.strip() or None) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):  # no git, no repo, odd sandbox: no commit is fine
        commit = None
    return {"compass": compass.__version__, "git_commit": commit}
