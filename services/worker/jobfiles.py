"""What a job's process leaves behind, read by the worker: progress, logs, why it failed, what it uses.

Everything here reads files the child writes (its progress file and the output log the runtime
captures) or asks the OS about the process; nothing is taken from the job record's intent. The
child side is :func:`report_progress`: a job reports progress by writing one JSON object.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from services.common.files import atomic_path
from services.worker.procs import tree_usage

MAX_LOG_CHUNK = 256 * 1024
PROGRESS_ENV = "WORKER_JOB_PROGRESS"  # where the runtime tells a child to write its progress
DEFAULT_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b.*$")


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, None when missing or half-written."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def report_progress(progress: dict[str, Any], path: Path | str | None = None) -> None:
    """Child side: publish ``progress`` (``status``, ``step``, ...) where the worker reads it, atomically.

    ``path`` defaults to the file the runtime named in ``$WORKER_JOB_PROGRESS``; ``status:
    "completed"`` is how a job says it finished its work (the exit code alone is not enough).
    """
    target = Path(path or os.environ[PROGRESS_ENV])
    with atomic_path(target) as tmp:
        Path(tmp).write_text(json.dumps(progress, sort_keys=True))


def read_log(path: Path, offset: int, limit: int) -> dict[str, Any]:
    """``limit`` bytes of a log from byte ``offset``; ``next_offset`` continues where this stopped."""
    limit = max(1, min(limit, MAX_LOG_CHUNK))
    size = path.stat().st_size if path.is_file() else 0
    offset = max(0, min(offset, size))
    data = b""
    if size:
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read(limit)
    return {
        "offset": offset,
        "next_offset": offset + len(data),
        "size": size,
        "eof": offset + len(data) >= size,
        "text": data.decode("utf-8", errors="replace"),
    }


def failure_reason(
    output_log: Path,
    returncode: int | None,
    signal_name: str | None,
    *,
    what: str = "job",
    error_line: re.Pattern[str] = DEFAULT_ERROR_LINE,
) -> str:
    """Why a job's process failed, in one line: its last error line, with the exit status."""
    status = f"killed by {signal_name}" if signal_name else f"exit code {returncode}"
    try:
        with output_log.open("rb") as fh:
            fh.seek(max(0, output_log.stat().st_size - 16384))
            tail = fh.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        tail = []
    lines = [line.strip() for line in tail if line.strip() and not line.startswith("PROGRESS ")]
    errors = [line for line in lines if error_line.match(line)]
    detail = errors[-1] if errors else (lines[-1] if lines else "no output")
    if signal_name == "SIGKILL" and not errors:
        detail = "the process was killed (out of memory?)"
    return f"{what} process failed ({status}): {detail}"[:1000]


def gpu_memory_mb(pids: set[int]) -> float | None:
    """GPU memory of these processes per ``nvidia-smi``, None without one."""
    exe = shutil.which("nvidia-smi")
    if exe is None or not pids:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=3,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    total = 0.0
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit() and int(parts[0]) in pids:
            try:
                total += float(parts[1])
            except ValueError:
                continue
    return total


def resources(pid: int | None, started: float | None, device: str | None) -> dict[str, Any]:
    """What the job's processes use now (empty usage once they are gone)."""
    usage = tree_usage(pid, started) if pid else None
    out: dict[str, Any] = {"device": device, "alive": usage is not None, "usage": usage}
    if usage is not None and device and device.startswith("cuda"):
        import psutil

        try:
            pids = {pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))}
        except psutil.Error:
            pids = {pid}
        out["gpu_mem_mb"] = gpu_memory_mb(pids)
    return out
