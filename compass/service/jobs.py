"""COMPASS training jobs: ``python -m compass.train`` as a job type of the worker's job runtime.

:mod:`services.worker.jobs` runs, watches, stops and adopts the processes; this module says what
a training job is: its plan (validated, with data only from datasets or the shared data folder),
its run folder, that it completed when the trainer says so *and* left a checkpoint, and that the
checkpoint then becomes a registered model.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compass.service import runfiles
from compass.service.datasets import DatasetManager
from compass.service.settings import ServiceSettings
from compass.service.store import Store
from compass.settings import data_dir
from compass.train.artifacts import CANCELLED_EXIT_CODE
from compass.train.plan import ExperimentPlan, PlanError
from services.common.envelope import ApiError, ErrorCode
from services.worker.jobs import STATUSES, JobPolicy, JobRunner, JobType, new_job_id

__all__ = ["STATUSES", "JobManager", "TrainingJob"]

log = logging.getLogger(__name__)

Registrar = Callable[[Path, dict[str, Any]], dict[str, Any]]  # (checkpoint, job) -> model record


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


class TrainingJob(JobType):
    """``compass.train PLAN`` in ``runs/<job id>/``; a completed run's checkpoint is registered as a model."""

    name = "training"
    target = "compass.train"
    cancelled_exit_code = CANCELLED_EXIT_CODE
    error_line = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Interrupt)\b.*|compass\.train: .*)$")
    hidden = ("plan", "run_dir")
    detail = ("plan",)

    def __init__(self, runs_dir: Path, register_model: Registrar) -> None:
        self.runs_dir = runs_dir
        self.register_model = register_model

    def run_dir(self, job_id: str) -> Path:
        return self.runs_dir / job_id

    def args(self, job: dict[str, Any], folder: Path, resume: bool) -> list[str]:
        args = [str(folder / "plan.json"), "--runs-dir", str(self.runs_dir), "--run-id", job["id"]]
        args += ["--device", "cpu" if job["device"] == "cpu" else "cuda", "--no-progress"]
        return args + (["--resume"] if resume else [])

    def progress_file(self, job: dict[str, Any], folder: Path) -> Path:
        return self.run_dir(job["id"]) / "progress.json"

    def completed(self, job: dict[str, Any], progress: dict[str, Any]) -> bool:
        return progress.get("status") == "completed" and runfiles.checkpoint(self.run_dir(job["id"])) is not None

    def on_completed(self, job: dict[str, Any]) -> dict[str, Any]:
        ckpt = runfiles.checkpoint(self.run_dir(job["id"]))
        try:
            model = self.register_model(ckpt, job)  # type: ignore[arg-type]
        except Exception as exc:  # the run completed; say that the hand-over did not
            log.exception("job %s: model registration failed", job["id"])
            return {"error": f"completed, but the model could not be registered: {exc}"[:1000]}
        return {"model_id": model["id"]}

    def resumable(self, job: dict[str, Any]) -> bool:
        return (self.run_dir(job["id"]) / "metrics.jsonl").is_file()

    def remove(self, job: dict[str, Any]) -> None:
        shutil.rmtree(self.run_dir(job["id"]), ignore_errors=True)


class JobManager(JobRunner):
    """The training jobs of one COMPASS worker: plans and datasets here, processes in the runtime."""

    def __init__(
        self,
        store: Store,
        state_dir: Path,
        datasets: DatasetManager,
        settings: ServiceSettings,
        *,
        device: str,
        owner: str,
        register_model: Registrar,
    ) -> None:
        self.state_dir = state_dir
        self.runs_dir = state_dir / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.datasets = datasets
        self.training = TrainingJob(self.runs_dir, register_model)
        super().__init__(
            store,
            state_dir / "jobs",
            self.training,
            owner=owner,
            device=device,
            policy=JobPolicy(settings.jobs_per_device, settings.stop_grace_s, settings.resume_jobs),
            cwd=state_dir,
        )

    def run_dir(self, job_id: str) -> Path:
        return self.training.run_dir(job_id)

    def running_with_dataset(self, dataset_id: str) -> list[str]:
        rows, _ = self.store.list("jobs", where={"status": "running", "dataset_id": dataset_id})
        return [r["id"] for r in rows]

    # -- create ------------------------------------------------------------------------------

    def _resolve_roots(self, data: dict[str, Any]) -> list[Path]:
        """Plan roots may only name folders under the shared data folder (never arbitrary server paths)."""
        shared = data_dir()
        roots = []
        for value in data.get("roots") or []:
            if not isinstance(value, str) or not value:
                raise ApiError(ErrorCode.INVALID_REQUEST, "plan.data.roots must be a list of paths")
            path = Path(value) if Path(value).is_absolute() else shared / value
            if not _inside(path, shared) or not path.exists():
                raise ApiError(
                    ErrorCode.INVALID_REQUEST,
                    f"plan.data.roots: {value!r} is not a folder of the shared data; upload it as a dataset instead",
                )
            roots.append(path.resolve())
        return roots

    def build_plan(self, job_id: str, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The plan the child runs: the dataset's root, the worker's run folder and device, validated."""
        plan = body.get("plan")
        if not isinstance(plan, dict):
            raise ApiError(ErrorCode.INVALID_REQUEST, "'plan' must be an experiment plan object")
        if not isinstance(plan.get("data") or {}, dict):
            raise ApiError(ErrorCode.INVALID_REQUEST, "plan.data must be an object")
        data = dict(plan.get("data") or {})
        roots = self._resolve_roots(data)
        dataset = None
        dataset_id = body.get("dataset_id")
        if dataset_id is not None:
            dataset = self.datasets.get(str(dataset_id))
            if dataset["status"] != "ready":
                raise ApiError(ErrorCode.CONFLICT, f"dataset {dataset_id} is {dataset['status']}, not ready")
            roots.append(self.datasets.root(dataset))
        if not roots:
            raise ApiError(ErrorCode.INVALID_REQUEST, "give a 'dataset_id' (or plan.data.roots under the shared data)")
        exclude = data.get("exclude_ids_file")
        if exclude is not None:
            path = Path(str(exclude)) if Path(str(exclude)).is_absolute() else data_dir() / str(exclude)
            allowed = [data_dir()] + ([self.datasets.folder(dataset["id"])] if dataset else [])
            if not any(_inside(path, a) for a in allowed):
                raise ApiError(ErrorCode.INVALID_REQUEST, "plan.data.exclude_ids_file must lie in the shared data")
            data["exclude_ids_file"] = str(path.resolve())
        data["roots"] = [str(r) for r in roots]
        cache = self.datasets.cache_dir(dataset["id"]) if dataset else self.state_dir / "cache"
        data["cache_dir"] = str(cache)
        full = {**plan, "data": data, "run_id": job_id, "runs_dir": str(self.runs_dir), "device": "auto"}
        try:
            ExperimentPlan.from_dict(full)
        except PlanError as exc:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"invalid plan: {exc}") from None
        return full, dataset

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate the plan, then start ``compass.train`` on the least busy device."""
        job_id = new_job_id()
        plan, dataset = self.build_plan(job_id, body)
        fields = {
            "dataset_id": dataset["id"] if dataset else None,
            "model_kind": (plan.get("model") or {}).get("kind", "compass"),
            "name": str(body.get("name") or job_id)[:128],
            "plan_json": plan,
            "run_dir": str(self.run_dir(job_id)),
        }
        return self.start(job_id, fields, {"plan.json": json.dumps(plan, indent=2, sort_keys=True)})
