"""The COMPASS worker's own flags (the runtime adds its own, see :mod:`services.worker.cli`).

Defaults come from :class:`~compass.service.settings.ServiceSettings` (``COMPASS_SERVICE_*``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compass.service.settings import ServiceSettings

KINDS = ("compass", "compass-lite")


def add_compass_arguments(parser: argparse.ArgumentParser) -> None:
    d = ServiceSettings()
    group = parser.add_argument_group("compass")
    group.add_argument(
        "--model", choices=KINDS, default="compass", help="which model this worker serves (default: %(default)s)"
    )
    group.add_argument(
        "--state-dir", type=Path, default=d.state_dir, help="database, datasets, runs, models (default: %(default)s)"
    )
    group.add_argument(
        "--weights",
        default=d.weights,
        help="checkpoint to serve at start (default: the active one) (default: %(default)s)",
    )
    group.add_argument(
        "--api-token", default=d.api_token, help="token for mutating calls (prefer env; default: $REGISTRY_TOKEN)"
    )
    group.add_argument(
        "--max-batch", type=int, default=d.max_batch, help="micro-batch size; 1 = no batching (default: %(default)s)"
    )
    group.add_argument(
        "--max-wait-ms", type=float, default=d.max_wait_ms, help="wait for a micro-batch to fill (default: %(default)s)"
    )
    group.add_argument(
        "--max-pairs", type=int, default=d.max_pairs, help="pairs per /predict/batch call (default: %(default)s)"
    )
    group.add_argument(
        "--model-threads",
        type=int,
        default=d.model_threads,
        help="threads per forward pass (-1: 1 on a CPU, libraries' own on CUDA) (default: %(default)s)",
    )
    group.add_argument(
        "--batch-workers",
        type=int,
        default=d.batch_workers,
        help="threads running forward passes; 0: one per CPU for compass on a CPU, else 1 (default: %(default)s)",
    )
    group.add_argument(
        "--featurize-slots",
        type=int,
        default=d.featurize_slots,
        help="complexes featurised at once (0: CPUs) (default: %(default)s)",
    )
    group.add_argument(
        "--jobs-per-device",
        type=int,
        default=d.jobs_per_device,
        help="training jobs per GPU (or CPU) (default: %(default)s)",
    )
    group.add_argument(
        "--stop-grace-s",
        type=float,
        default=d.stop_grace_s,
        help="SIGTERM → SIGKILL grace of a stop (default: %(default)s)",
    )
    group.add_argument(
        "--resume-jobs",
        action=argparse.BooleanOptionalAction,
        default=d.resume_jobs,
        help="resume orphaned jobs (default: %(default)s)",
    )
    group.add_argument(
        "--max-upload-bytes",
        type=int,
        default=d.max_upload_bytes,
        help="dataset archive size limit (default: %(default)s)",
    )
    group.add_argument(
        "--max-archive-files", type=int, default=d.max_archive_files, help="members per archive (default: %(default)s)"
    )
    group.add_argument(
        "--max-extracted-bytes",
        type=int,
        default=d.max_extracted_bytes,
        help="unpacked size limit (default: %(default)s)",
    )


def service_settings(args: argparse.Namespace) -> ServiceSettings:
    """The flags as settings, after checking their ranges (SystemExit names the flag)."""
    base = ServiceSettings()
    for name in ("max_batch", "max_pairs", "jobs_per_device", "max_upload_bytes", "max_archive_files"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_wait_ms < 0 or args.stop_grace_s < 0:
        raise SystemExit("--max-wait-ms and --stop-grace-s must not be negative")
    return ServiceSettings(
        state_dir=args.state_dir,
        api_token=args.api_token,
        weights=args.weights,
        max_upload_bytes=args.max_upload_bytes,
        max_archive_files=args.max_archive_files,
        max_extracted_bytes=args.max_extracted_bytes,
        max_compression_ratio=base.max_compression_ratio,
        jobs_per_device=args.jobs_per_device,
        stop_grace_s=args.stop_grace_s,
        resume_jobs=args.resume_jobs,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_pairs=args.max_pairs,
        max_structure_bytes=base.max_structure_bytes,
        model_threads=args.model_threads,
        featurize_slots=max(0, args.featurize_slots),
        batch_workers=max(0, args.batch_workers),
    )
