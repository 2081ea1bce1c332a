"""``python -m services.worker.child WORKER_PID TARGET [ARGS...]``: run a job's code tied to its worker.

Jobs (training, dataset validation, docking...) run in child processes of the worker. If the
worker dies (even by ``kill -9``), its children must not run on unsupervised: this wrapper asks
the kernel for SIGTERM when its parent dies (Linux ``PR_SET_PDEATHSIG``) and also polls the
parent, then runs ``TARGET`` in this same process. ``TARGET`` is a module run as ``__main__``
(``python -m MODULE ARGS``) or ``module:function``, called with ``ARGS`` as a list of strings
and returning the exit code. Only the worker builds these commands (:func:`~services.worker.procs.child_command`),
never from a request; the name is still checked to be a dotted Python name.
"""

from __future__ import annotations

import importlib
import re
import runpy
import sys

from services.common.parent_death import tie_to_parent

_POLL_S = 1.0
TARGET_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*)?$")
_USAGE = "usage: python -m services.worker.child WORKER_PID MODULE[:FUNCTION] ARGS..."


def run_target(target: str, args: list[str]) -> int:
    """Run ``module`` as ``__main__`` or call ``module:function(args)``; the exit code."""
    module, _, function = target.partition(":")
    if not function:
        sys.argv = [module, *args]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return 0
    code = getattr(importlib.import_module(module), function)(args)
    return int(code or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or not argv[0].isdigit() or not TARGET_RE.match(argv[1]):
        print(_USAGE)
        return 2
    parent, target, args = int(argv[0]), argv[1], argv[2:]
    # The kernel hook fires when the forking *thread* ends (and only on Linux): poll as a backup.
    if not tie_to_parent(parent, poll_s=_POLL_S):  # the worker died before the hook was in place
        return 143
    return run_target(target, args)


if __name__ == "__main__":
    raise SystemExit(main())
