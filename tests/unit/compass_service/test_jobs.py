"""COMPASS training jobs on the job runtime: exit → status, stop → SIGTERM then SIGKILL, orphans → failed or adopted.

No training runs here: run folders are written by hand and the "processes" are small sleepers.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from compass.service.archives import ArchiveLimits
from compass.service.datasets import DatasetManager
from compass.service.jobs import JobManager
from compass.service.settings import ServiceSettings
from compass.service.store import Store, now_iso
from services.common.envelope import ApiError
from services.worker.procs import owner_token, process_alive, process_started
from tests.support import wait_until

DEAD_OWNER = "999999999:1.000"


@pytest.fixture
def manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> JobManager:
    shared = tmp_path / "shared"
    (shared / "root").mkdir(parents=True)
    monkeypatch.setenv("COMPASS_DATA_DIR", str(shared))
    store = Store(tmp_path / "state" / "db.sqlite")
    datasets = DatasetManager(store, tmp_path / "state", ArchiveLimits(), owner_token())
    settings = ServiceSettings(state_dir=tmp_path / "state", stop_grace_s=0.5, jobs_per_device=1)
    return JobManager(
        store,
        tmp_path / "state",
        datasets,
        settings,
        device="cpu",
        owner=owner_token(),
        register_model=lambda ckpt, job: {"id": f"model-of-{job['id']}"},
    )


def add_job(manager: JobManager, job_id: str, **fields: Any) -> dict[str, Any]:
    now = now_iso()
    row = {"id": job_id, "status": "running", "created_at": now, "updated_at": now, "device": "cpu", "attempts": 0}
    (manager.jobs_dir / job_id).mkdir(parents=True, exist_ok=True)
    return manager.store.insert("jobs", {**row, "owner": manager.owner, **fields})


def write_run(
    manager: JobManager, job_id: str, status: str | None, checkpoint: str | None = None, log: str = ""
) -> None:
    run = manager.run_dir(job_id)
    run.mkdir(parents=True, exist_ok=True)
    if status:
        (run / "progress.json").write_text(json.dumps({"status": status, "step": 4, "total_steps": 4}))
    if checkpoint:
        (run / checkpoint).write_bytes(b"weights")
    manager.output_log(job_id).write_text(log)


@pytest.mark.parametrize(
    ("code", "reported", "checkpoint", "stop", "status", "error"),
    [
        (0, "completed", "best.skops", False, "completed", None),
        (0, "completed", None, False, "failed", "exit code 0"),
        (143, "cancelled", "last.safetensors", True, "cancelled", None),
        (-9, "running", None, True, "cancelled", None),
        (143, "cancelled", None, False, "cancelled", "did not come through the API"),
        (1, "failed", None, False, "failed", "ValueError: bad plan value"),
        (-9, "running", None, False, "failed", "killed by SIGKILL"),
        (None, "completed", "best.safetensors", False, "completed", None),
        (None, "cancelled", None, False, "failed", "its worker stopped"),
    ],
)
def test_the_exit_decides_the_status(manager: JobManager, code, reported, checkpoint, stop, status, error) -> None:
    add_job(manager, "j", stop_requested_at=now_iso() if stop else None)
    log = "Traceback (most recent call last):\n  File x\nValueError: bad plan value\n"
    write_run(manager, "j", reported, checkpoint, log if code == 1 else "")
    manager._finish("j", code)
    row = manager.store.get("jobs", "j")
    assert row["status"] == status and row["exit_code"] == code
    assert (error is None and row["error"] is None) or (error is not None and error in row["error"]), row["error"]
    assert row["model_id"] == ("model-of-j" if status == "completed" else None)
    assert row["progress"]["status"] == reported


def test_a_registration_failure_is_reported_on_the_completed_job(manager: JobManager) -> None:
    def broken(ckpt: Path, job: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("unreadable checkpoint")

    manager.training.register_model = broken
    add_job(manager, "j")
    write_run(manager, "j", "completed", "best.skops")
    manager._finish("j", 0)
    row = manager.store.get("jobs", "j")
    assert row["status"] == "completed" and "could not be registered" in row["error"] and row["model_id"] is None


def sleeper(ignore_term: bool = False) -> subprocess.Popen:
    code = "import signal\n"
    if ignore_term:
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "print('ready', flush=True)\nwhile True:\n    signal.pause()\n"  # a long job: runs until a signal ends it
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    return proc


def test_stop_escalates_to_sigkill_after_the_grace_period(manager: JobManager) -> None:
    proc = sleeper(ignore_term=True)
    try:
        add_job(manager, "j", pid=proc.pid, pid_started=process_started(proc.pid))
        answer = manager.stop("j")
        assert answer["status"] == "running" and answer["stop_signal"] == "SIGTERM"
        assert proc.wait(timeout=10) == -signal.SIGKILL
        wait_until(lambda: manager.store.get("jobs", "j")["stop_signal"] == "SIGKILL", timeout=5)
    finally:
        proc.kill()
    manager.store.update("jobs", "j", status="cancelled")
    with pytest.raises(ApiError) as err:
        manager.stop("j")
    assert err.value.code.value == "CONFLICT"


def test_orphaned_jobs_fail_or_are_adopted_while_their_process_lives(manager: JobManager) -> None:
    add_job(manager, "gone", owner=DEAD_OWNER, pid=999999999, pid_started=1.0)
    add_job(manager, "mine", pid=999999998, pid_started=1.0)  # ours: its watcher thread decides
    proc = sleeper()
    add_job(manager, "alive", owner=DEAD_OWNER, pid=proc.pid, pid_started=process_started(proc.pid))
    write_run(manager, "alive", "running")
    manager.reconcile()
    gone = manager.store.get("jobs", "gone")
    assert gone["status"] == "failed" and "worker" in gone["error"]
    assert manager.store.get("jobs", "mine")["status"] == "running"
    adopted = manager.store.get("jobs", "alive")
    assert adopted["status"] == "running" and adopted["owner"] == manager.owner
    proc.kill()
    proc.wait()
    assert not process_alive(proc.pid, adopted["pid_started"])
    wait_until(lambda: manager.store.get("jobs", "alive")["status"] == "failed", timeout=5)


def test_plans_use_only_datasets_or_shared_data(manager: JobManager, tmp_path: Path) -> None:
    plan = {"model": {"kind": "compass-lite"}, "split": {"kind": "none"}}
    full, dataset = manager.build_plan("job-1", {"plan": {**plan, "data": {"roots": ["root"]}}})
    assert full["run_id"] == "job-1" and full["runs_dir"] == str(manager.runs_dir) and dataset is None
    assert full["data"]["roots"] == [str((tmp_path / "shared" / "root").resolve())]
    for body, code in [
        ({"plan": {**plan, "data": {"roots": ["/etc"]}}}, "INVALID_REQUEST"),
        ({"plan": {**plan, "data": {"roots": ["../state"]}}}, "INVALID_REQUEST"),
        ({"plan": plan}, "INVALID_REQUEST"),
        ({"plan": {**plan, "dataset_id": "x"}, "dataset_id": "ds-missing"}, "NOT_FOUND"),
        ({"plan": {**plan, "data": {"roots": ["root"]}, "optim": {"epochs": 0}}}, "INVALID_REQUEST"),
        ({"plan": "not a plan"}, "INVALID_REQUEST"),
    ]:
        with pytest.raises(ApiError) as err:
            manager.build_plan("job-2", body)
        assert err.value.code.value == code, body
    now = now_iso()
    manager.store.insert(
        "datasets", {"id": "ds-1", "name": "d", "status": "validating", "created_at": now, "updated_at": now}
    )
    with pytest.raises(ApiError) as err:
        manager.build_plan("job-3", {"plan": plan, "dataset_id": "ds-1"})
    assert err.value.code.value == "CONFLICT"


def test_a_full_device_answers_overloaded(manager: JobManager) -> None:
    add_job(manager, "busy")
    with pytest.raises(ApiError) as err:
        manager.create({"plan": {"data": {"roots": ["root"]}, "model": {"kind": "compass-lite"}}})
    assert err.value.code.value == "OVERLOADED" and err.value.status == 503 and err.value.retry_after


def test_resume_restarts_an_orphan_from_its_last_checkpoint(
    manager: JobManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned: list[tuple[str, str, bool]] = []
    monkeypatch.setattr(manager, "_spawn", lambda job_id, device, resume: spawned.append((job_id, device, resume)))
    manager.policy.resume = True
    add_job(manager, "fresh", owner=DEAD_OWNER, pid=999999999, pid_started=1.0)
    add_job(manager, "midway", owner=DEAD_OWNER, pid=999999999, pid_started=1.0)
    (manager.run_dir("midway")).mkdir(parents=True)
    (manager.run_dir("midway") / "metrics.jsonl").write_text('{"epoch": 1}\n')
    add_job(manager, "worn", owner=DEAD_OWNER, pid=999999999, pid_started=1.0, attempts=3)
    manager.reconcile()
    assert sorted(spawned) == [("fresh", "cpu", False), ("midway", "cpu", True)]
    assert manager.store.get("jobs", "midway")["attempts"] == 1
    assert manager.store.get("jobs", "worn")["status"] == "failed"  # out of attempts


def test_delete_refuses_a_running_job_and_removes_a_finished_one(manager: JobManager) -> None:
    add_job(manager, "j")
    write_run(manager, "j", "failed")
    with pytest.raises(ApiError) as err:
        manager.delete("j")
    assert err.value.code.value == "CONFLICT"
    manager.store.update("jobs", "j", status="failed")
    manager.delete("j")
    assert manager.store.get("jobs", "j") is None and not manager.run_dir("j").exists()
    assert not (manager.jobs_dir / "j").exists()


def test_validations_of_a_dead_worker_are_taken_over(manager: JobManager) -> None:
    datasets = manager.datasets
    now = now_iso()
    row = {"name": "d", "status": "validating", "created_at": now, "updated_at": now}
    datasets.store.insert("datasets", {**row, "id": "ds-dead", "owner": DEAD_OWNER})
    datasets.store.insert("datasets", {**row, "id": "ds-mine", "owner": datasets.owner})
    datasets.reconcile()
    assert datasets._queue.get_nowait() == "ds-dead" and datasets._queue.empty()
    assert datasets.store.get("datasets", "ds-dead")["owner"] == datasets.owner
    with pytest.raises(ApiError) as err:
        datasets.delete("ds-mine", [])
    assert err.value.code.value == "CONFLICT"
    datasets.store.update("datasets", "ds-mine", status="ready")
    with pytest.raises(ApiError):
        datasets.delete("ds-mine", ["job-1"])
    (datasets.folder("ds-mine") / "files").mkdir(parents=True)
    datasets.delete("ds-mine", [])
    assert datasets.store.get("datasets", "ds-mine") is None and not datasets.folder("ds-mine").exists()
