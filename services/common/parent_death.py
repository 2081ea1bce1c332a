"""Tie a child process to its parent: the one die-with-parent helper (launcher replicas, COMPASS jobs, benchmarks).

A child of a worker or launcher must not live on unsupervised when its parent dies, even by
``kill -9``. Linux can send it a signal then (``prctl(PR_SET_PDEATHSIG)``); the signal follows
the parent *thread* that forked, so a long-lived child may also poll its parent as a backup.

``python -m services.common.parent_death PARENT_PID COMMAND...`` arms the signal in a fresh,
single-threaded process and then execs ``COMMAND`` (same pid; the setting survives exec), which
avoids a ``preexec_fn`` in a multi-threaded parent.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1


def arm_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies; False (and a warning) if it cannot.

    Outside Linux there is no such signal: nothing happens and the answer is False, silently.
    Safe as a ``subprocess.Popen(preexec_fn=...)`` in a single-threaded parent.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    except (OSError, AttributeError) as exc:
        sys.stderr.write(f"warning: no parent-death signal ({exc}); this process outlives a killed parent\n")
        return False
    return True


def tie_to_parent(parent: int, *, poll_s: float | None = None) -> bool:
    """Arm the parent-death signal for ``parent``; False when it is already gone (died before the arming).

    With ``poll_s``, a daemon thread also checks the parent that often and SIGTERMs this process
    when it changes: the backup where the kernel hook is missing or fired early (forking thread ended).
    """
    arm_parent_death_signal()
    if os.getppid() != parent:
        return False
    if poll_s is not None:
        threading.Thread(target=_watch_parent, args=(parent, poll_s), name="parent-watch", daemon=True).start()
    return True


def _watch_parent(parent: int, poll_s: float) -> None:
    while os.getppid() == parent:
        time.sleep(poll_s)
    os.kill(os.getpid(), signal.SIGTERM)


def with_parent_death_signal(command: Sequence[str], parent_pid: int | None = None) -> list[str]:
    """``command`` wrapped to get SIGTERM when ``parent_pid`` (default: this process) dies; unchanged off Linux."""
    if not sys.platform.startswith("linux"):
        return list(command)
    pid = os.getpid() if parent_pid is None else parent_pid
    return [sys.executable, "-m", "services.common.parent_death", str(pid), *command]


def main(argv: Sequence[str] | None = None) -> int:
    """Arm, then exec the command; exit 0 without starting it when the parent is already gone."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or not args[0].isdigit():
        sys.stderr.write("usage: python -m services.common.parent_death PARENT_PID COMMAND...\n")
        return 2
    if not tie_to_parent(int(args[0])):
        return 0
    os.execv(args[1], args[1:])
    return 127  # not reached: execv replaces this process or raises


if __name__ == "__main__":
    raise SystemExit(main())
