"""``python -m compass.service.child WORKER_PID MODULE [ARGS...]``: run ``python -m MODULE ARGS`` tied to its worker.

Training and validation run in child processes of the worker. If the worker dies (even by
``kill -9``), its children must not run on unsupervised: this wrapper asks the kernel for SIGTERM
when its parent dies (Linux ``PR_SET_PDEATHSIG``) and also polls the parent, then runs the module
as ``__main__`` in this same process. SIGTERM makes ``compass.train`` save and stop.
"""

from __future__ import annotations

import runpy
import sys

from services.common.parent_death import tie_to_parent

_POLL_S = 1.0
ALLOWED_MODULES = frozenset({"compass.train", "compass.service.validate"})


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or not argv[0].isdigit() or argv[1] not in ALLOWED_MODULES:
        print(f"usage: python -m compass.service.child WORKER_PID {{{','.join(sorted(ALLOWED_MODULES))}}} ARGS...")
        return 2
    parent, module, args = int(argv[0]), argv[1], argv[2:]
    # The kernel hook fires when the forking *thread* ends (and only on Linux): poll as a backup.
    if not tie_to_parent(parent, poll_s=_POLL_S):  # the worker died before the hook was in place
        return 143
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
