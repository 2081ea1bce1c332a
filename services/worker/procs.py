"""Processes the worker starts and later has to recognise: identity that survives pid reuse, signals, usage.

A pid alone is not an identity: after a restart the number may belong to anything. A process is
``(pid, create_time)``, and a worker is its owner token ``pid:create_time``, so a restarted worker
(or another replica sharing the state folder) can tell a live job process or owner from a
recycled pid. Used by the job runtime (:mod:`services.worker.jobs`) and any kind's own children.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import psutil


def process_started(pid: int) -> float | None:
    """The process's creation time (its identity next to the pid), None when there is no such process."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def process_alive(pid: int | None, started: float | None) -> bool:
    """Whether ``pid`` is still the process created at ``started`` (and not a zombie)."""
    if not pid or started is None:
        return False
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - started) > 0.01:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def owner_token() -> str:
    """This worker process as an owner of jobs and validations."""
    return f"{os.getpid()}:{process_started(os.getpid()):.3f}"


def owner_alive(token: str | None) -> bool:
    if not token or ":" not in token:
        return False
    pid, _, started = token.partition(":")
    try:
        return process_alive(int(pid), float(started))
    except ValueError:
        return False


def signal_group(pid: int, sig: int) -> bool:
    """Signal the process group led by ``pid`` (a job and any processes it started); False if gone."""
    try:
        os.killpg(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def child_command(target: str, args: list[str]) -> list[str]:
    """``python -m services.worker.child <worker pid> <target> args...``: an argument list, never a shell string.

    ``target`` is a module run as ``__main__`` or ``module:function`` (see :mod:`services.worker.child`).
    """
    return [sys.executable, "-m", "services.worker.child", str(os.getpid()), target, *args]


def child_env(**extra: str) -> dict[str, str]:
    """The worker's environment for a child, with this checkout first on ``PYTHONPATH``.

    The child may run in another folder (the state folder), where ``import services`` (and the
    kind's package beside it) must still find this code, not an installed copy or a stale finder.
    """
    import services

    code_root = str(Path(services.__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH", "")
    python_path = code_root + (os.pathsep + path if path else "")
    return {**os.environ, "PYTHONPATH": python_path, "PYTHONUNBUFFERED": "1", **extra}


def tree_usage(pid: int, started: float | None) -> dict[str, Any] | None:
    """CPU, memory and thread use of a job's process tree, None once it is gone."""
    if not process_alive(pid, started):
        return None
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
        rss = cpu = 0.0
        threads = 0
        for proc in procs:
            with proc.oneshot():
                rss += proc.memory_info().rss
                times = proc.cpu_times()
                cpu += times.user + times.system
                threads += proc.num_threads()
        elapsed = max(1e-6, time.time() - root.create_time())
        return {
            "pid": pid,
            "processes": len(procs),
            "threads": threads,
            "rss_mb": round(rss / 2**20, 1),
            "cpu_seconds": round(cpu, 2),
            "cpu_percent_avg": round(100.0 * cpu / elapsed, 1),
            "elapsed_s": round(elapsed, 1),
        }
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def ended_by(returncode: int | None) -> str | None:
    """``SIGKILL`` for a process ended by a signal (negative return code), else None."""
    if returncode is not None and returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return None
