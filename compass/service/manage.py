"""Datasets, training jobs and the model registry of a COMPASS worker: everything but inference.

Kept apart from the request path (:mod:`compass.service.serving`): these own the state folder
(SQLite, uploads, runs, model files), which replicas on one host may share.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from compass.model.checkpoint import CheckpointError
from compass.predict import SHIPPED
from compass.service.archives import ArchiveLimits
from compass.service.datasets import DatasetManager
from compass.service.jobs import JobManager
from compass.service.models import ModelRegistry
from compass.service.settings import ServiceSettings
from compass.service.store import Store
from compass.settings import weights_dir
from services.worker.jobfiles import read_json
from services.worker.procs import owner_token

log = logging.getLogger(__name__)


class Management:
    """The records of one state folder and what works on them: datasets, training jobs, models."""

    def __init__(self, kind: str, settings: ServiceSettings, *, device: str = "cpu") -> None:
        self.kind = kind
        self.settings = settings
        state = settings.state_dir
        state.mkdir(parents=True, exist_ok=True)
        self.owner = owner_token()
        self.store = Store(state / "compass.db")
        self.registry = ModelRegistry(self.store, state, device)
        limits = ArchiveLimits(
            settings.max_upload_bytes,
            settings.max_archive_files,
            settings.max_extracted_bytes,
            settings.max_compression_ratio,
        )
        self.datasets = DatasetManager(self.store, state, limits, self.owner)
        self.jobs = JobManager(
            self.store,
            state,
            self.datasets,
            settings,
            device=device,
            owner=self.owner,
            register_model=self._register_from_job,
        )

    def register_file(self, path: Path) -> str:
        """Register weights named by flag; the id to activate (a file that cannot load raises)."""
        return self.registry.register(path, name=f"{self.kind} ({path.name})", source="file")["id"]

    def startup_candidates(self) -> list[str]:
        """Models to try serving at start-up, in order: the active one, then the shipped one.

        An upgrade that brought new shipped weights puts them first when the active model is the
        old shipped one (a model someone trained or activated by hand stays active across upgrades).
        """
        shipped = weights_dir() / SHIPPED[self.kind]
        shipped_row = None
        if shipped.is_file():
            try:
                shipped_row = self.registry.register(shipped, name=f"{self.kind} (shipped)", source="shipped")
            except CheckpointError:
                log.exception("shipped weights %s cannot be loaded", shipped)
        active, _ = self.store.active(self.kind)
        candidates = [active, shipped_row["id"] if shipped_row else None]
        row = self.store.get("models", active) if active else None
        if shipped_row and row and row["source"] == "shipped" and active != shipped_row["id"]:
            log.info("new shipped weights %s replace the shipped %s", shipped_row["id"], active)
            candidates.reverse()
        return [c for c in candidates if c]

    def start(self) -> None:
        """Start validating uploads and adopt the jobs of workers that died."""
        self.datasets.start()
        self.jobs.reconcile()

    def reconcile(self) -> None:
        """Adopt jobs and validations of dead workers (the sweeper calls this)."""
        self.jobs.reconcile()
        self.datasets.reconcile()

    def _register_from_job(self, checkpoint: Path, job: dict[str, Any]) -> dict[str, Any]:
        evaluation = read_json(checkpoint.parent / "eval.json")
        return self.registry.register(
            checkpoint,
            name=job.get("name") or job["id"],
            source="job",
            job_id=job["id"],
            dataset_id=job.get("dataset_id"),
            metrics=evaluation,
        )
