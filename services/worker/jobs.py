"""Jobs of any worker kind: each one a child process in its own process group, watched by the worker.

A kind registers a :class:`JobType` (what the child runs, where it reports progress, what
"completed" means and what happens then) and serves it through a :class:`JobRunner`, which
owns the rest: records in the worker's SQLite store, one slot per device, the output log,
cancel and kill -9 adoption. A job's status is what its process did, never what was asked:
``running`` while the process lives, then ``completed`` (exit 0 and the type says its work is
done), ``cancelled`` (stopped through the API, or ended by SIGTERM), or ``failed`` with the
error from its output. Stop sends SIGTERM (the child saves and exits) and SIGKILL after the
grace period; the record keeps which signal ended it. Jobs carry their owner worker: when a
worker is gone, the next worker to start or sweep adopts its jobs, and a job whose process is
gone becomes ``failed`` (or is started again when resuming is on), never a ghost ``running``.
"""

from __future__ import annotations

import logging
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.common.envelope import ApiError, ErrorCode
from services.worker.jobfiles import DEFAULT_ERROR_LINE, PROGRESS_ENV, failure_reason, read_json
from services.worker.procs import (
    child_command,
    child_env,
    ended_by,
    owner_alive,
    process_alive,
    process_started,
    signal_group,
)
from services.worker.store import Store, now_iso

log = logging.getLogger(__name__)

STATUSES = ("running", "completed", "failed", "cancelled")
_OVERLOADED_RETRY_S = 30.0
_POLL_S = 0.1
# Columns the runtime reads and writes; a kind's table may add its own (see :func:`jobs_table`).
_CORE_COLUMNS = """id TEXT PRIMARY KEY, status TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    started_at TEXT, finished_at TEXT, name TEXT, device TEXT, owner TEXT, pid INTEGER, pid_started REAL,
    exit_code INTEGER, error TEXT, stop_requested_at TEXT, stop_signal TEXT, attempts INTEGER DEFAULT 0,
    progress_json TEXT"""


def jobs_table(table: str = "jobs", extra_columns: str = "params_json TEXT, result_json TEXT") -> str:
    """The DDL of a job table: the runtime's columns plus the kind's own (its parameters and result)."""
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (\n    {_CORE_COLUMNS},\n    {extra_columns}\n);\n"
        f"CREATE INDEX IF NOT EXISTS {table}_status ON {table}(status, created_at);\n"
    )


def new_job_id(prefix: str = "job") -> str:
    """A sortable, unguessable id: ``job-20260101-120000-a1b2c3``."""
    return f"{prefix}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def visible_devices(device: str) -> list[str]:
    """The devices jobs may use: the one named, or every GPU for a bare ``cuda``."""
    if device == "cpu" or device.startswith("cuda:"):
        return [device]
    import torch

    return [f"cuda:{i}" for i in range(max(1, torch.cuda.device_count()))]


class JobType:
    """What a kind registers: override the attributes and hooks that differ from these defaults.

    ``target`` is what the child runs: a module (``python -m``) or ``module:function`` called with
    the :meth:`args` (see :mod:`services.worker.child`). The child reports progress with
    :func:`services.worker.jobfiles.report_progress` (or writes :meth:`progress_file` itself),
    and should end promptly on SIGTERM (cancel), exiting with ``cancelled_exit_code``.
    """

    name = "job"  # in messages: "no {name} task", "{name} process failed"
    target = ""
    cancelled_exit_code = 143
    error_line: re.Pattern[str] = DEFAULT_ERROR_LINE
    hidden: tuple[str, ...] = ()  # the kind's columns kept out of the API view
    detail: tuple[str, ...] = ()  # hidden columns shown when one job is asked for

    def args(self, job: dict[str, Any], folder: Path, resume: bool) -> list[str]:
        """The child's arguments; ``folder`` holds the files given at :meth:`JobRunner.start`."""
        return []

    def progress_file(self, job: dict[str, Any], folder: Path) -> Path:
        """Where the child reports progress (told to it as ``$WORKER_JOB_PROGRESS``)."""
        return folder / "progress.json"

    def completed(self, job: dict[str, Any], progress: dict[str, Any]) -> bool:
        """Whether a process that exited 0 (or was adopted) did its work."""
        return progress.get("status") == "completed"

    def on_completed(self, job: dict[str, Any]) -> dict[str, Any]:
        """Hand the result over (register a model...); the fields to record. Runs before ``completed``."""
        return {}

    def resumable(self, job: dict[str, Any]) -> bool:
        """Whether a restarted job can continue where it stopped (``resume=True`` in :meth:`args`)."""
        return False

    def remove(self, job: dict[str, Any]) -> None:
        """Delete what the job wrote outside its folder (the runtime removes the folder)."""


@dataclass
class JobPolicy:
    """How many jobs a device runs, how long a stop waits before SIGKILL, whether orphans restart."""

    per_device: int = 1
    stop_grace_s: float = 30.0
    resume: bool = False
    max_resumes: int = 3


class JobRunner:
    """Starts, watches, stops and reconciles the processes of one job type; records live in ``table``."""

    def __init__(
        self,
        store: Store,
        jobs_dir: Path,
        job_type: JobType,
        *,
        owner: str,
        device: str = "cpu",
        policy: JobPolicy | None = None,
        table: str = "jobs",
        cwd: Path | None = None,
    ) -> None:
        self.store, self.jobs_dir, self.job_type, self.table = store, jobs_dir, job_type, table
        self.owner = owner
        self.device = device
        self.policy = policy or JobPolicy()
        self.cwd = cwd or jobs_dir
        self._lock = threading.Lock()
        self._procs: dict[str, subprocess.Popen] = {}
        self.jobs_dir.mkdir(parents=True, exist_ok=True)

    # -- paths and views ---------------------------------------------------------------------

    def folder(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def output_log(self, job_id: str) -> Path:
        return self.folder(job_id) / "output.log"

    def progress(self, row: dict[str, Any]) -> dict[str, Any] | None:
        return read_json(self.job_type.progress_file(row, self.folder(row["id"])))

    def get(self, job_id: str) -> dict[str, Any]:
        """The record, settled first when its worker is gone (a read never shows a ghost ``running``)."""
        row = self.store.require(self.table, job_id, f"{self.job_type.name} task")
        if self._orphaned(row):
            self._reconcile_row(row)
            row = self.store.require(self.table, job_id, f"{self.job_type.name} task")
        return row

    def public(self, row: dict[str, Any], detail: bool = False) -> dict[str, Any]:
        """The API view: live progress while running, the stop request, no internals."""
        hidden = ("owner", "pid_started", "progress", "stop_requested_at", "stop_signal", *self.job_type.hidden)
        out = {k: v for k, v in row.items() if k not in hidden}
        live = self.progress(row) if row["status"] == "running" else None
        out["progress"] = live or row.get("progress")
        out["stop"] = {"requested_at": row.get("stop_requested_at"), "signal": row.get("stop_signal")}
        if detail:
            out.update({k: row.get(k) for k in self.job_type.detail})
        return out

    def list(self, status: list[str] | None, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        where = {"status": status} if status else None
        rows, total = self.store.list(self.table, where=where, limit=limit, offset=offset)
        if any(self._orphaned(r) for r in rows):  # settle them, then read the page again
            self.reconcile()
            rows, total = self.store.list(self.table, where=where, limit=limit, offset=offset)
        return [self.public(r) for r in rows], total

    # -- start -------------------------------------------------------------------------------

    def _pick_device(self) -> str:
        """The least busy device with a free slot, or 503 OVERLOADED."""
        rows, _ = self.store.list(self.table, where={"status": "running"})
        busy = {d: sum(1 for r in rows if r["device"] == d) for d in visible_devices(self.device)}
        device, count = min(busy.items(), key=lambda kv: kv[1])
        if count >= self.policy.per_device:
            raise ApiError(
                ErrorCode.OVERLOADED,
                f"every device runs {self.policy.per_device} {self.job_type.name} job(s) already: try again later",
                retry_after=_OVERLOADED_RETRY_S,
            )
        return device

    def start(self, job_id: str, fields: dict[str, Any], files: dict[str, str] | None = None) -> dict[str, Any]:
        """Record a job with the kind's ``fields``, write ``files`` into its folder and start its process."""
        with self._lock:  # one slot check + insert at a time (per worker; replicas may race briefly)
            device = self._pick_device()
            folder = self.folder(job_id)
            folder.mkdir(parents=True)
            for name, text in (files or {}).items():
                (folder / name).write_text(text)
            now = now_iso()
            row = {"id": job_id, "status": "running", "created_at": now, "updated_at": now, "attempts": 0}
            self.store.insert(self.table, {**row, **fields, "device": device, "owner": self.owner})
            try:
                self._spawn(job_id, device, resume=False)
            except OSError as exc:
                self.store.update(self.table, job_id, status="failed", error=f"could not start: {exc}", finished_at=now)
                what = self.job_type.name
                raise ApiError(ErrorCode.INTERNAL_ERROR, f"could not start the {what} process: {exc}") from exc
        log.info("%s job %s started on %s", self.job_type.name, job_id, device)
        return self.get(job_id)

    def _spawn(self, job_id: str, device: str, resume: bool) -> None:
        row = self.get(job_id)
        folder = self.folder(job_id)
        args = self.job_type.args(row, folder, resume)
        env = {PROGRESS_ENV: str(self.job_type.progress_file(row, folder))}
        if device.startswith("cuda:"):
            env["CUDA_VISIBLE_DEVICES"] = device.split(":", 1)[1]
        with open(self.output_log(job_id), "ab") as out:
            proc = subprocess.Popen(
                child_command(self.job_type.target, args),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stop reaches every process it starts
                env=child_env(**env),
                cwd=self.cwd,
            )
        self._procs[job_id] = proc
        pid_started = process_started(proc.pid)
        self.store.update(
            self.table, job_id, pid=proc.pid, pid_started=pid_started, started_at=now_iso(), owner=self.owner
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
        """Record how the process ended; hand over the result of a completed job."""
        row = self.store.get(self.table, job_id)
        if row is None or row["status"] != "running":
            return
        if row.get("pid"):
            signal_group(row["pid"], signal.SIGKILL)  # anything the job left behind in its group
        kind = self.job_type
        prog = self.progress(row) or {}
        reported = prog.get("status")
        sig = ended_by(code)
        fields: dict[str, Any] = {"exit_code": code, "finished_at": now_iso(), "progress_json": prog or None}
        if (code == 0 or code is None) and kind.completed(row, prog):
            fields["status"] = "completed"
        elif row.get("stop_requested_at"):
            fields["status"] = "cancelled"
        elif code is None:
            fields["status"] = "failed"
            ended = reported or "no status"
            fields["error"] = f"its worker stopped while the job ran; the process then ended ({ended})"
        elif code == kind.cancelled_exit_code or sig == "SIGTERM":
            fields["status"] = "cancelled"
            fields["error"] = "ended by a SIGTERM that did not come through the API (worker shutdown?)"
        else:
            fields["status"] = "failed"
            log_path = self.output_log(job_id)
            fields["error"] = failure_reason(log_path, code, sig, what=kind.name, error_line=kind.error_line)
        if fields["status"] == "completed":  # handed over before the record says completed
            fields.update(self._complete(row))
        self.store.update(self.table, job_id, **fields)
        log.info("job %s %s (exit %s)", job_id, fields["status"], code)

    def _complete(self, row: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.job_type.on_completed(row)
        except Exception as exc:  # the job completed; say that the hand-over did not
            log.exception("job %s: hand-over failed", row["id"])
            return {"error": f"completed, but the result could not be handed over: {exc}"[:1000]}

    # -- stop and delete ---------------------------------------------------------------------

    def stop(self, job_id: str) -> dict[str, Any]:
        """Cancel: SIGTERM to the job's process group now, SIGKILL after the grace period."""
        row = self.get(job_id)
        if row["status"] != "running":
            raise ApiError(ErrorCode.CONFLICT, f"task {job_id} is {row['status']}, not running")
        pid, started = row.get("pid"), row.get("pid_started")
        first = self.store.update_where(
            self.table, job_id, {"status": "running", "stop_requested_at": None},
            stop_requested_at=now_iso(), stop_signal="SIGTERM",
        )  # fmt: skip
        if first and process_alive(pid, started):
            signal_group(pid, signal.SIGTERM)
            grace = self.policy.stop_grace_s
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
            self.store.update(self.table, job_id, stop_signal="SIGKILL")
            signal_group(pid, signal.SIGKILL)
            log.warning("job %s: still running %.1fs after SIGTERM; SIGKILL sent", job_id, grace)

    def delete(self, job_id: str) -> None:
        row = self.get(job_id)
        if row["status"] == "running":
            raise ApiError(ErrorCode.CONFLICT, f"task {job_id} is running: stop it first")
        self.store.delete(self.table, job_id)
        shutil.rmtree(self.folder(job_id), ignore_errors=True)
        self.job_type.remove(row)

    # -- restart reconciliation --------------------------------------------------------------

    def reconcile(self) -> None:
        """Adopt running jobs whose worker is gone: watch a live process, fail (or resume) a dead one."""
        rows, _ = self.store.list(self.table, where={"status": "running"})
        for row in rows:
            if self._orphaned(row):
                self._reconcile_row(row)

    def _orphaned(self, row: dict[str, Any]) -> bool:
        """A running job whose owner worker is gone (one psutil look-up: cheap enough for every read)."""
        return row["status"] == "running" and row["owner"] != self.owner and not owner_alive(row["owner"])

    def _reconcile_row(self, row: dict[str, Any]) -> None:
        if not self.store.update_where(self.table, row["id"], {"owner": row["owner"]}, owner=self.owner):
            return  # another worker adopted it first
        pid, started = row.get("pid"), row.get("pid_started")
        if process_alive(pid, started):
            log.info("job %s: adopting its live process %s", row["id"], pid)
            threading.Thread(target=self._adopt, args=(row["id"], pid, started), daemon=True).start()
        elif self._resumable(row):
            self._resume(row)
        else:
            what = self.job_type.name
            error = f"the {what} process was gone after its worker stopped (restart or crash while it ran)"
            fields = {"status": "failed", "error": error, "finished_at": now_iso()}
            self.store.update(self.table, row["id"], **fields, progress_json=self.progress(row))
            log.warning("job %s marked failed: %s", row["id"], error)

    def _resumable(self, row: dict[str, Any]) -> bool:
        """Restart an orphan when the policy says so, it was not being stopped and has attempts left."""
        return self.policy.resume and not row.get("stop_requested_at") and row["attempts"] < self.policy.max_resumes

    def _resume(self, row: dict[str, Any]) -> None:
        resume = self.job_type.resumable(row)
        attempt = row["attempts"] + 1
        self.store.update(self.table, row["id"], attempts=attempt)
        log.info("job %s: process gone; %s (attempt %d)", row["id"], "resuming" if resume else "restarting", attempt)
        try:
            self._spawn(row["id"], row["device"] or visible_devices(self.device)[0], resume=resume)
        except OSError as exc:
            fields = {"status": "failed", "error": f"could not resume: {exc}", "finished_at": now_iso()}
            self.store.update(self.table, row["id"], **fields)
