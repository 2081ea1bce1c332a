"""Variant training as a job type of the shared job runtime (:mod:`services.worker.jobs`).

The child is ``python -m variants.train plan.json --runs-dir <state>/runs --run-id <job id>``; the
runtime owns processes, records, cancel and kill -9 adoption. A plan sent to a worker may only read
the worker's own variant store: ``data.db`` is set here, never taken from the request.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.common.envelope import ApiError, ErrorCode
from services.worker.jobs import JobPolicy, JobRunner, JobType, new_job_id
from services.worker.store import Store
from variants.plan import PlanError, validate

Registrar = Callable[[Path, dict[str, Any]], dict[str, Any]]


class VariantTrainingJob(JobType):
    """``variants.train`` in ``runs/<job id>/``; a completed run becomes a registered model."""

    name = "training"
    target = "variants.train"
    error_line = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Interrupt)\b.*|variants\.train: .*)$")
    hidden = ("plan",)
    detail = ("plan",)

    def __init__(self, runs_dir: Path, workdir: Path, register: Registrar) -> None:
        self.runs_dir, self.workdir, self.register = runs_dir, workdir, register

    def args(self, job: dict[str, Any], folder: Path, resume: bool) -> list[str]:
        args = [
            str(folder / "plan.json"),
            "--runs-dir",
            str(self.runs_dir),
            "--run-id",
            job["id"],
            "--workdir",
            str(self.workdir),
            "--no-progress",
        ]
        return args + (["--resume"] if resume else [])

    def completed(self, job: dict[str, Any], progress: dict[str, Any]) -> bool:
        return progress.get("status") == "completed" and (self.runs_dir / job["id"] / "metrics.json").is_file()

    def on_completed(self, job: dict[str, Any]) -> dict[str, Any]:
        model = self.register(self.runs_dir / job["id"], job)
        return {"model_id": model["id"]}

    def resumable(self, job: dict[str, Any]) -> bool:
        return (self.runs_dir / job["id"] / "exp_plan.json").is_file()

    def remove(self, job: dict[str, Any]) -> None:
        shutil.rmtree(self.runs_dir / job["id"], ignore_errors=True)


class TrainingJobs(JobRunner):
    """The training jobs of one variant worker's state folder."""

    def __init__(
        self,
        store: Store,
        state: Path,
        workdir: Path,
        db_path: Path,
        *,
        owner: str,
        device: str,
        stop_grace_s: float,
        register: Registrar,
    ) -> None:
        self.runs_dir = state / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = db_path
        super().__init__(
            store,
            state / "jobs",
            VariantTrainingJob(self.runs_dir, workdir, register),
            owner=owner,
            device=device,
            policy=JobPolicy(1, stop_grace_s),
            cwd=state,
        )

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate ``{plan, name?}`` against the worker's store, then start the child."""
        raw = body.get("plan")
        if not isinstance(raw, dict):
            raise ApiError(ErrorCode.INVALID_REQUEST, "'plan' must be an experiment plan object")
        data = raw.get("data") or {}
        if not isinstance(data, dict):
            raise ApiError(ErrorCode.INVALID_REQUEST, "plan.data must be an object")
        if data.get("db") not in (None, "", str(self.db_path)):
            raise ApiError(ErrorCode.INVALID_REQUEST, "plan.data.db: a worker trains on its own store; leave it out")
        job_id = new_job_id("train")
        try:
            plan = validate({**raw, "data": {**data, "db": str(self.db_path)}, "run_id": job_id})
        except PlanError as exc:
            raise ApiError(ErrorCode.INVALID_REQUEST, str(exc)) from None
        fields = {"name": str(body.get("name") or job_id)[:128], "plan_json": plan}
        return self.start(job_id, fields, {"plan.json": json.dumps(plan, indent=2)})
