"""What a run leaves in ``runs/<run_id>/``, written by rank 0 only.

``plan.json``, ``train.log``, ``metrics.jsonl`` (one line per epoch), ``progress.json`` (replaced
atomically, so a job API polling it never reads half a file), ``best``/``last`` checkpoints,
``last.state.pt`` (optimiser, schedule, counters, RNG: written by :mod:`compass.train.state`)
and ``eval.json``. Progress is also printed as ``PROGRESS {json}``
lines on stdout for a parent process to parse, and a cancelled run exits with
:data:`CANCELLED_EXIT_CODE`.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from services.common.files import atomic_path

PLAN = "plan.json"
METRICS = "metrics.jsonl"
PROGRESS = "progress.json"
LOG = "train.log"
BEST = "best.safetensors"
LAST = "last.safetensors"
STATE = "last.state.pt"
EVAL = "eval.json"
LITE_BEST = "best.skops"
PROGRESS_PREFIX = "PROGRESS "
CANCELLED_EXIT_CODE = 143  # 128 + SIGTERM, what a shell reports for a process ended by SIGTERM


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become null (strict JSON readers reject them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json_atomic(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        json.dump(_clean(data), fh, indent=2, sort_keys=True)
        fh.write("\n")


class RunFiles:
    """The run folder of one run; every write is a no-op on ranks other than 0."""

    def __init__(self, run_dir: Path, is_main: bool = True, echo_progress: bool = True) -> None:
        self.dir = run_dir
        self.is_main = is_main
        self.echo_progress = echo_progress
        self._handler: logging.Handler | None = None
        if is_main:
            run_dir.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.dir / name

    def attach_log(self, logger: logging.Logger) -> None:
        if not self.is_main:
            return
        self._handler = logging.FileHandler(self.path(LOG))
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(self._handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)

    def detach_log(self, logger: logging.Logger) -> None:
        if self._handler is not None:
            logger.removeHandler(self._handler)
            self._handler.close()
            self._handler = None

    def write_json(self, name: str, data: Any) -> None:
        if self.is_main:
            write_json_atomic(self.path(name), data)

    def append_metrics(self, row: dict[str, Any]) -> None:
        if self.is_main:
            with self.path(METRICS).open("a") as fh:
                fh.write(json.dumps(_clean(row), sort_keys=True) + "\n")

    def truncate_metrics(self, last_epoch: int) -> None:
        """On resume, drop lines of epochs after the checkpoint (written after it was saved)."""
        path = self.path(METRICS)
        if not self.is_main or not path.is_file():
            return
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        kept = [r for r in rows if r.get("epoch", 0) <= last_epoch]
        path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))

    def progress(self, data: dict[str, Any]) -> None:
        if not self.is_main:
            return
        write_json_atomic(self.path(PROGRESS), data)
        if self.echo_progress:
            print(PROGRESS_PREFIX + json.dumps(_clean(data), sort_keys=True), flush=True)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / METRICS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
