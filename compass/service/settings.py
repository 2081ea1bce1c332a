"""Settings of the COMPASS worker (``COMPASS_SERVICE_*``), each with its flag and help.

The worker's flags are made from these fields (:mod:`compass.service.cli`); they override the
environment, which overrides the defaults here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from compass.settings import REPO_ROOT
from services.common.cli import setting

_AT_LEAST_1 = click.IntRange(min=1)
_NOT_NEGATIVE = click.FloatRange(min=0)


@dataclass
class ServiceSettings:
    """What the COMPASS worker keeps, accepts and runs.

    ``state_dir`` holds the SQLite database, datasets, training runs and registered models; every
    replica on a host may share it (jobs carry their owner, the active model is per kind).
    """

    state_dir: Path = setting(
        REPO_ROOT / ".data" / "compass-service",
        "database, datasets, runs, models",
        env="COMPASS_SERVICE_DIR",
        type=click.Path(path_type=Path),
    )
    api_token: str = setting(
        "",
        "token for mutating calls (prefer the environment; empty: the registry token)",
        env="COMPASS_SERVICE_TOKEN",
        show_default=False,
    )
    weights: str = setting("", "checkpoint to serve at start (empty: the active one)", env="COMPASS_SERVICE_WEIGHTS")
    # Dataset uploads: archive size, member count, extracted bytes and per-archive compression ratio.
    max_upload_bytes: int = setting(
        2 << 30, "dataset archive size limit", env="COMPASS_SERVICE_MAX_UPLOAD_BYTES", type=_AT_LEAST_1
    )
    max_archive_files: int = setting(
        50_000, "members per archive", env="COMPASS_SERVICE_MAX_ARCHIVE_FILES", type=_AT_LEAST_1
    )
    max_extracted_bytes: int = setting(8 << 30, "unpacked size limit", env="COMPASS_SERVICE_MAX_EXTRACTED_BYTES")
    max_compression_ratio: float = setting(
        200.0, "unpacked/packed size limit of an archive", env="COMPASS_SERVICE_MAX_COMPRESSION_RATIO"
    )
    # Training jobs: concurrent jobs per device, SIGTERM→SIGKILL grace, restart policy.
    jobs_per_device: int = setting(
        1, "training jobs per GPU (or CPU)", env="COMPASS_SERVICE_JOBS_PER_DEVICE", type=_AT_LEAST_1
    )
    stop_grace_s: float = setting(
        30.0, "SIGTERM → SIGKILL grace of a stop", env="COMPASS_SERVICE_STOP_GRACE_S", type=_NOT_NEGATIVE
    )
    resume_jobs: bool = setting(False, "resume orphaned jobs", env="COMPASS_SERVICE_RESUME_JOBS")
    # Inference: micro-batching (max_batch 1 = off) and the /predict/batch size.
    max_batch: int = setting(32, "micro-batch size; 1 = no batching", env="COMPASS_SERVICE_MAX_BATCH", type=_AT_LEAST_1)
    max_wait_ms: float = setting(
        5.0, "wait for a micro-batch to fill", env="COMPASS_SERVICE_MAX_WAIT_MS", type=_NOT_NEGATIVE
    )
    max_pairs: int = setting(64, "pairs per /predict/batch call", env="COMPASS_SERVICE_MAX_PAIRS", type=_AT_LEAST_1)
    model_threads: int = setting(
        -1,
        "threads per forward pass (-1: 1 on a CPU, libraries' own on CUDA; 0: libraries' own)",
        env="COMPASS_SERVICE_MODEL_THREADS",
    )
    batch_workers: int = setting(
        0,
        "threads running forward passes; 0: one per CPU for compass on a CPU, else 1",
        env="COMPASS_SERVICE_BATCH_WORKERS",
    )
    featurize_slots: int = setting(0, "complexes featurised at once (0: CPUs)", env="COMPASS_SERVICE_FEATURIZE_SLOTS")
    max_structure_bytes: int = setting(
        8 << 20, "size limit of one uploaded structure", env="COMPASS_SERVICE_MAX_STRUCTURE_BYTES"
    )
