"""Training jobs: each one is ``python -m compass.train`` in its own process group, watched by the worker.

A job's status is what its process did, never what was asked: ``running`` while the process
lives, then ``completed`` (exit 0 and a checkpoint: the model is registered), ``cancelled``
(stopped through the API, or ended by SIGTERM), or ``failed`` with the error from its output.
Stop sends SIGTERM (the trainer saves and exits) and SIGKILL after the grace period; the record
keeps which signal ended it. Jobs carry their owner worker: when a worker is gone, the next
worker to start or sweep adopts its jobs, and a job whose process is gone becomes ``failed``
(or is resumed from its last checkpoint when configured), never a ghost ``running``.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from compass.service import runfiles
from compass.service.datasets import DatasetManager
from compass.service.procs import (
    child_command,
    child_env,
    ended_by,
    owner_alive,
    process_alive,
    process_started,
    signal_group,
)
from compass.service.settings import ServiceSettings
from compass.service.store import Store, now_iso
from compass.settings import data_dir
from compass.train.loop import CANCELLED_EXIT_CODE
from compass.train.plan import ExperimentPlan, PlanError
from services.common.envelope import ApiError, ErrorCode

log = logging.getLogger(__name__)

STATUSES = ("running", "completed", "failed", "cancelled")
_MAX_RESUMES = 3
_OVERLOADED_RETRY_S = 30.0
_POLL_S = 0.1

Registrar = Callable[[Path, dict[str, Any]], dict[str, Any]]  # (checkpoint, job) -> model record


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


class JobManager:
    """Starts, watches, stops and reconciles training processes; records live in the store."""

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
        self.store = store
        self.state_dir = state_dir
        self.runs_dir = state_dir / "runs"
        self.jobs_dir = state_dir / "jobs"
        self.datasets = datasets
        self.settings = settings
        self.device = device
        self.owner = owner
        self._register_model = register_model
        self._lock = threading.Lock()
        self._procs: dict[str, subprocess.Popen] = {}
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.jobs_dir.mkdir(parents=True, exist_ok=True)

    # -- paths and views ---------------------------------------------------------------------

    def run_dir(self, job_id: str) -> Path:
        return self.runs_dir / job_id

    def output_log(self, job_id: str) -> Path:
        return self.jobs_dir / job_id / "output.log"

    def get(self, job_id: str) -> dict[str, Any]:
        row = self.store.get("jobs", job_id)
        if row is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"no training task {job_id!r}")
        return row

    def public(self, row: dict[str, Any], detail: bool = False) -> dict[str, Any]:
        hidden = ("owner", "plan", "pid_started", "progress", "run_dir", "stop_requested_at", "stop_signal")
        out = {k: v for k, v in row.items() if k not in hidden}
        live = runfiles.progress(self.run_dir(row["id"])) if row["status"] == "running" else None
        out["progress"] = live or row.get("progress")
        out["stop"] = {"requested_at": row.get("stop_requested_at"), "signal": row.get("stop_signal")}
        if detail:
            out["plan"] = row.get("plan")
        return out

    def list(self, status: list[str] | None, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        rows, total = self.store.list("jobs", where={"status": status} if status else None, limit=limit, offset=offset)
        return [self.public(r) for r in rows], total

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

    def _devices(self) -> list[str]:
        if self.device == "cpu" or self.device.startswith("cuda:"):
            return [self.device]
        import torch

        return [f"cuda:{i}" for i in range(max(1, torch.cuda.device_count()))]

    def _pick_device(self) -> str:
        """The least busy device with a free slot, or 503 OVERLOADED."""
        rows, _ = self.store.list("jobs", where={"status": "running"})
        busy = {d: sum(1 for r in rows if r["device"] == d) for d in self._devices()}
        device, count = min(busy.items(), key=lambda kv: kv[1])
        if count >= self.settings.jobs_per_device:
            raise ApiError(
                ErrorCode.OVERLOADED,
                f"every device runs {self.settings.jobs_per_device} training job(s) already: try again later",
                retry_after=_OVERLOADED_RETRY_S,
            )
        return device

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        job_id = f"job-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        plan, dataset = self.build_plan(job_id, body)
        name = str(body.get("name") or job_id)[:128]
        with self._lock:  # one slot check + insert at a time (per worker; replicas may race briefly)
            device = self._pick_device()
            folder = self.jobs_dir / job_id
            folder.mkdir(parents=True)
            (folder / "plan.json").write_text(json.dumps(plan, indent=2, sort_keys=True))
            now = now_iso()
            self.store.insert(
                "jobs",
                {
                    "id": job_id,
                    "status": "running",
                    "created_at": now,
                    "updated_at": now,
                    "dataset_id": dataset["id"] if dataset else None,
                    "model_kind": (plan.get("model") or {}).get("kind", "compass"),
                    "name": name,
                    "plan_json": plan,
                    "device": device,
                    "owner": self.owner,
                    "run_dir": str(self.run_dir(job_id)),
                    "attempts": 0,
                },
            )
            try:
                self._spawn(job_id, device, resume=False)
            except OSError as exc:
                self.store.update("jobs", job_id, status="failed", error=f"could not start: {exc}", finished_at=now)
                raise ApiError(ErrorCode.INTERNAL_ERROR, f"could not start the training process: {exc}") from exc
        log.info("job %s started on %s", job_id, device)
        return self.get(job_id)

    def _spawn(self, job_id: str, device: str, resume: bool) -> None:
        args = [str(self.jobs_dir / job_id / "plan.json"), "--runs-dir", str(self.runs_dir), "--run-id", job_id]
        args += ["--device", "cpu" if device == "cpu" else "cuda", "--no-progress"] + (["--resume"] if resume else [])
        env = child_env(CUDA_VISIBLE_DEVICES=device.split(":", 1)[1]) if device.startswith("cuda:") else child_env()
        with open(self.output_log(job_id), "ab") as out:
            proc = subprocess.Popen(
                child_command("compass.train", args),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stop reaches every process it starts
                env=env,
                cwd=self.state_dir,
            )
        self._procs[job_id] = proc
        self.store.update(
            "jobs", job_id, pid=proc.pid, pid_started=process_started(proc.pid), started_at=now_iso(), owner=self.owner
        )
        threading.Thread(target=self._watch, args=(job_id, proc), name=f"job-{job_id}", daemon=True).start()

    # -- watching and finishing --------------------------------------------------------------

    def _watch(self, job_id: str, proc: subprocess.Popen) -> None:
        code = proc.wait()
        self._procs.pop(job_id, None)
        self._finish(job_id, code)

    def _adopt(self, job_id: str, pid: int, started: float) -> None:
        """Watch a process another (dead) worker started: it is not our child, so poll until it is gone."""
        while process_alive(pid, started):
            time.sleep(0.5)
        self._finish(job_id, None)

    def _finish(self, job_id: str, code: int | None) -> None:
        """Record how the process ended; register the model of a completed run."""
        row = self.store.get("jobs", job_id)
        if row is None or row["status"] != "running":
            return
        if row.get("pid"):
            signal_group(row["pid"], signal.SIGKILL)  # anything the run left behind in its group
        run_dir = self.run_dir(job_id)
        prog = runfiles.progress(run_dir) or {}
        reported = prog.get("status")
        sig = ended_by(code)
        fields: dict[str, Any] = {"exit_code": code, "finished_at": now_iso(), "progress_json": prog or None}
        if (code == 0 or code is None) and reported == "completed" and runfiles.checkpoint(run_dir):
            fields["status"] = "completed"
        elif row.get("stop_requested_at"):
            fields["status"] = "cancelled"
        elif code is None:
            fields["status"] = "failed"
            fields["error"] = (
                f"its worker stopped while the job ran; the process then ended ({reported or 'no status'})"
            )
        elif code == CANCELLED_EXIT_CODE or sig == "SIGTERM":
            fields["status"] = "cancelled"
            fields["error"] = "ended by a SIGTERM that did not come through the API (worker shutdown?)"
        else:
            fields["status"] = "failed"
            fields["error"] = runfiles.failure_reason(self.output_log(job_id), code, sig)
        if fields["status"] == "completed":  # registered before the record says completed
            fields.update(self._register(job_id, row))
        self.store.update("jobs", job_id, **fields)
        log.info("job %s %s (exit %s)", job_id, fields["status"], code)

    def _register(self, job_id: str, row: dict[str, Any]) -> dict[str, Any]:
        ckpt = runfiles.checkpoint(self.run_dir(job_id))
        try:
            model = self._register_model(ckpt, row)  # type: ignore[arg-type]
        except Exception as exc:  # the run completed; say that the hand-over did not
            log.exception("job %s: model registration failed", job_id)
            return {"error": f"completed, but the model could not be registered: {exc}"[:1000]}
        return {"model_id": model["id"]}

    # -- stop and delete ---------------------------------------------------------------------

    def stop(self, job_id: str) -> dict[str, Any]:
        row = self.get(job_id)
        if row["status"] != "running":
            raise ApiError(ErrorCode.CONFLICT, f"task {job_id} is {row['status']}, not running")
        pid, started = row.get("pid"), row.get("pid_started")
        first = self.store.update_where(
            "jobs", job_id, {"status": "running", "stop_requested_at": None},
            stop_requested_at=now_iso(), stop_signal="SIGTERM",
        )  # fmt: skip
        if first and process_alive(pid, started):
            signal_group(pid, signal.SIGTERM)
            grace = self.settings.stop_grace_s
            threading.Thread(target=self._escalate, args=(job_id, pid, started, grace), daemon=True).start()
            log.info("job %s: SIGTERM sent, SIGKILL in %.1fs if still running", job_id, grace)
        return self.get(job_id)

    def _escalate(self, job_id: str, pid: int, started: float, grace: float) -> None:
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not process_alive(pid, started):
                return
            time.sleep(_POLL_S)
        if process_alive(pid, started):
            self.store.update("jobs", job_id, stop_signal="SIGKILL")
            signal_group(pid, signal.SIGKILL)
            log.warning("job %s: still running %.1fs after SIGTERM; SIGKILL sent", job_id, grace)

    def delete(self, job_id: str) -> None:
        row = self.get(job_id)
        if row["status"] == "running":
            raise ApiError(ErrorCode.CONFLICT, f"task {job_id} is running: stop it first")
        self.store.delete("jobs", job_id)
        shutil.rmtree(self.jobs_dir / job_id, ignore_errors=True)
        shutil.rmtree(self.run_dir(job_id), ignore_errors=True)

    # -- restart reconciliation --------------------------------------------------------------

    def reconcile(self) -> None:
        """Adopt running jobs whose worker is gone: watch a live process, fail (or resume) a dead one."""
        rows, _ = self.store.list("jobs", where={"status": "running"})
        for row in rows:
            if row["owner"] == self.owner or owner_alive(row["owner"]):
                continue
            if not self.store.update_where("jobs", row["id"], {"owner": row["owner"]}, owner=self.owner):
                continue  # another worker adopted it first
            pid, started = row.get("pid"), row.get("pid_started")
            if process_alive(pid, started):
                log.info("job %s: adopting its live process %s", row["id"], pid)
                threading.Thread(target=self._adopt, args=(row["id"], pid, started), daemon=True).start()
            elif self.settings.resume_jobs and not row.get("stop_requested_at") and row["attempts"] < _MAX_RESUMES:
                self._resume(row)
            else:
                error = "the training process was gone after its worker stopped (restart or crash while it ran)"
                prog = runfiles.progress(self.run_dir(row["id"]))
                self.store.update(
                    "jobs", row["id"], status="failed", error=error, finished_at=now_iso(), progress_json=prog
                )
                log.warning("job %s marked failed: %s", row["id"], error)

    def _resume(self, row: dict[str, Any]) -> None:
        run_dir = self.run_dir(row["id"])
        resume = (run_dir / "metrics.jsonl").is_file()
        self.store.update("jobs", row["id"], attempts=row["attempts"] + 1)
        log.info(
            "job %s: process gone; %s (attempt %d)",
            row["id"],
            "resuming" if resume else "restarting",
            row["attempts"] + 1,
        )
        try:
            self._spawn(row["id"], row["device"] or self._devices()[0], resume=resume)
        except OSError as exc:
            self.store.update(
                "jobs", row["id"], status="failed", error=f"could not resume: {exc}", finished_at=now_iso()
            )
