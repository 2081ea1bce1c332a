"""Reading what a training process leaves behind: progress, logs, metrics, the reason it failed, its usage.

Everything here reads files the child writes (``runs/<id>/`` and the job's output log) or asks
the OS about the process; nothing is taken from the job record's intent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from compass.service.procs import tree_usage
from compass.train import artifacts as art

MAX_LOG_CHUNK = 256 * 1024
_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Interrupt)\b.*|compass\.train: .*)$")


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, None when missing or half-written."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def progress(run_dir: Path) -> dict[str, Any] | None:
    return read_json(run_dir / art.PROGRESS)


def checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint a completed run hands over: best ViSNet weights, else the compass-lite file, else the last."""
    for name in (art.BEST, art.LITE_BEST, art.LAST):
        if (run_dir / name).is_file():
            return run_dir / name
    return None


def metrics(run_dir: Path) -> dict[str, Any]:
    """Per-epoch rows of ``metrics.jsonl`` (partial last line skipped) and ``eval.json`` when written."""
    rows = []
    path = run_dir / art.METRICS
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return {"epochs": rows, "eval": read_json(run_dir / art.EVAL)}


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


def failure_reason(output_log: Path, returncode: int | None, signal_name: str | None) -> str:
    """Why a training process failed, in one line: its last error line, with the exit status."""
    status = f"killed by {signal_name}" if signal_name else f"exit code {returncode}"
    try:
        with output_log.open("rb") as fh:
            fh.seek(max(0, output_log.stat().st_size - 16384))
            tail = fh.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        tail = []
    lines = [line.strip() for line in tail if line.strip() and not line.startswith("PROGRESS ")]
    errors = [line for line in lines if _ERROR_LINE.match(line)]
    detail = errors[-1] if errors else (lines[-1] if lines else "no output")
    if signal_name == "SIGKILL" and not errors:
        detail = "the process was killed (out of memory?)"
    return f"training process failed ({status}): {detail}"[:1000]


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
