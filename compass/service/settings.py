"""Settings of the COMPASS worker (``COMPASS_SERVICE_*``); the only module of ``compass.service`` reading the env.

The worker's command-line flags are built from these defaults and override them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from compass.settings import REPO_ROOT


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass
class ServiceSettings:
    """What the COMPASS worker keeps, accepts and runs.

    ``state_dir`` holds the SQLite database, datasets, training runs and registered models; every
    replica on a host may share it (jobs carry their owner, the active model is per kind).
    """

    state_dir: Path = field(
        default_factory=lambda: Path(_env("COMPASS_SERVICE_DIR", str(REPO_ROOT / ".data" / "compass-service")))
    )
    # Bearer token for mutating calls; empty = the worker's registry token (REGISTRY_TOKEN), if any.
    api_token: str = field(default_factory=lambda: _env("COMPASS_SERVICE_TOKEN", ""))
    weights: str = field(default_factory=lambda: _env("COMPASS_SERVICE_WEIGHTS", ""))
    # Dataset uploads: archive size, member count, extracted bytes and per-archive compression ratio.
    max_upload_bytes: int = field(default_factory=lambda: _env_int("COMPASS_SERVICE_MAX_UPLOAD_BYTES", 2 << 30))
    max_archive_files: int = field(default_factory=lambda: _env_int("COMPASS_SERVICE_MAX_ARCHIVE_FILES", 50_000))
    max_extracted_bytes: int = field(default_factory=lambda: _env_int("COMPASS_SERVICE_MAX_EXTRACTED_BYTES", 8 << 30))
    max_compression_ratio: float = field(
        default_factory=lambda: _env_float("COMPASS_SERVICE_MAX_COMPRESSION_RATIO", 200.0)
    )
    # Training jobs: concurrent jobs per device, SIGTERM→SIGKILL grace, restart policy.
    jobs_per_device: int = field(default_factory=lambda: _env_int("COMPASS_SERVICE_JOBS_PER_DEVICE", 1))
    stop_grace_s: float = field(default_factory=lambda: _env_float("COMPASS_SERVICE_STOP_GRACE_S", 30.0))
    resume_jobs: bool = field(default_factory=lambda: _env("COMPASS_SERVICE_RESUME_JOBS", "0") == "1")
    # Inference: micro-batching (max_batch 1 = off) and the /predict/batch size.
    max_batch: int = field(default_factory=lambda: _env_int("COMPASS_SERVICE_MAX_BATCH", 32))
    max_wait_ms: float = field(default_factory=lambda: _env_float("COMPASS_SERVICE_MAX_WAIT_MS", 5.0))
    max_pairs: int = field(default_factory=lambda: _env_int("COMPASS_SERVICE_MAX_PAIRS", 64))
    # Threads of one forward pass (OpenMP/BLAS/torch): -1 = 1 on a CPU device, the libraries' own on
    # CUDA; 0 = the libraries' own. Batching threads: 0 = 1 (GPU, compass-lite), one per CPU for
    # compass on a CPU. Complexes featurised at once: 0 = one per CPU.
    model_threads: int = field(default_factory=lambda: _env_int("COMPASS_SERVICE_MODEL_THREADS", -1))
    batch_workers: int = field(default_factory=lambda: _env_int("COMPASS_SERVICE_BATCH_WORKERS", 0))
    featurize_slots: int = field(default_factory=lambda: _env_int("COMPASS_SERVICE_FEATURIZE_SLOTS", 0))
    max_structure_bytes: int = field(default_factory=lambda: _env_int("COMPASS_SERVICE_MAX_STRUCTURE_BYTES", 8 << 20))
