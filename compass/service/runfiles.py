"""What ``compass.train`` leaves in its run folder: progress, the checkpoint to hand over, metrics.

Logs, failure reasons and resource use are the job runtime's (:mod:`services.worker.jobfiles`);
this module knows only the training run's own files (:mod:`compass.train.artifacts`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from compass.train import artifacts as art
from services.worker.jobfiles import read_json


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
