"""``python -m compass.service.child WORKER_PID MODULE [ARGS...]``: run ``python -m MODULE ARGS`` tied to its worker.

Training and validation run in child processes of the worker. If the worker dies (even by
``kill -9``), its children must not run on unsupervised: this wrapper asks the kernel for SIGTERM
when its parent dies (Linux ``PR_SET_PDEATHSIG``) and also polls the parent, then runs the module
as ``__main__`` in this same process. SIGTERM makes ``compass.train`` save and stop.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import runpy
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1
_POLL_S = 1.0
ALLOWED_MODULES = frozenset({"compass.train", "compass.service.validate"})


def _watch_parent(parent: int) -> None:
    """Backup for the kernel hook (which fires when the forking *thread* ends, and only on Linux)."""
    while True:
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)
            return
        time.sleep(_POLL_S)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or not argv[0].isdigit() or argv[1] not in ALLOWED_MODULES:
        print(f"usage: python -m compass.service.child WORKER_PID {{{','.join(sorted(ALLOWED_MODULES))}}} ARGS...")
        return 2
    parent, module, args = int(argv[0]), argv[1], argv[2:]
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the worker died before the hook was in place
        return 143
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
