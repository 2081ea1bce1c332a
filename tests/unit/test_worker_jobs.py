"""The worker job runtime with a kind of its own: a function in a child process, progress, cancel, failure."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from services.common.envelope import ApiError
from services.worker import child
from services.worker.jobfiles import report_progress
from services.worker.jobs import JobPolicy, JobRunner, JobType, jobs_table, new_job_id
from services.worker.procs import owner_token
from services.worker.store import Store
from tests.support import wait_until


def demo_job(args: list[str]) -> int:
    """The child: counts to ``args[0]`` reporting progress; ``hang`` waits for a signal, ``fail`` raises."""
    steps, mode = int(args[0]), args[1]
    for step in range(steps):
        report_progress({"status": "running", "step": step})
    if mode == "fail":
        raise ValueError("bad input")
    if mode == "hang":
        print("waiting", flush=True)
        while True:
            signal.pause()
    report_progress({"status": "completed", "step": steps})
    return 0


class DemoJob(JobType):
    name = "demo"
    target = f"{__name__}:demo_job"
    hidden = ("params",)
    detail = ("params",)

    def args(self, job: dict[str, Any], folder: Path, resume: bool) -> list[str]:
        return [str(job["params"]["steps"]), job["params"]["mode"]]

    def on_completed(self, job: dict[str, Any]) -> dict[str, Any]:
        return {"result_json": {"answer": 42}}


@pytest.fixture
def runner(tmp_path: Path) -> JobRunner:
    store = Store(tmp_path / "db.sqlite", jobs_table())
    policy = JobPolicy(per_device=2, stop_grace_s=5.0)
    return JobRunner(store, tmp_path / "jobs", DemoJob(), owner=owner_token(), policy=policy)


def start(runner: JobRunner, mode: str, steps: int = 3) -> str:
    job_id = new_job_id()
    runner.start(job_id, {"name": mode, "params_json": {"steps": steps, "mode": mode}})
    return job_id


def finished(runner: JobRunner, job_id: str) -> dict[str, Any]:
    wait_until(lambda: runner.get(job_id)["status"] != "running", timeout=30, what=f"job {job_id} to end")
    return runner.get(job_id)


def test_a_job_runs_reports_progress_and_hands_over_its_result(runner: JobRunner) -> None:
    job_id = start(runner, "done")
    row = finished(runner, job_id)
    assert row["status"] == "completed" and row["exit_code"] == 0 and row["result"] == {"answer": 42}
    view = runner.public(row, detail=True)
    assert view["progress"] == {"status": "completed", "step": 3} and view["params"]["mode"] == "done"
    assert "owner" not in view and "params" not in runner.public(row)
    assert runner.list(["completed"], 10, 0)[1] == 1
    runner.delete(job_id)
    assert not runner.folder(job_id).exists()
    with pytest.raises(ApiError, match="no demo task"):
        runner.get(job_id)


def test_a_failing_job_says_why_and_a_cancelled_one_says_how(runner: JobRunner) -> None:
    failed = finished(runner, start(runner, "fail"))
    assert failed["status"] == "failed"
    assert "demo process failed (exit code 1): ValueError: bad input" in failed["error"]
    job_id = start(runner, "hang")
    wait_until(lambda: b"waiting" in runner.output_log(job_id).read_bytes(), timeout=30, what="the job to wait")
    assert runner.public(runner.get(job_id))["progress"]["step"] == 2, "live progress while it runs"
    assert runner.stop(job_id)["stop_signal"] == "SIGTERM"
    cancelled = finished(runner, job_id)
    assert cancelled["status"] == "cancelled" and cancelled["exit_code"] == -signal.SIGTERM
    with pytest.raises(ApiError) as err:
        runner.stop(job_id)
    assert err.value.code.value == "CONFLICT"


def test_a_full_device_answers_overloaded(runner: JobRunner) -> None:
    runner.policy.per_device = 0
    with pytest.raises(ApiError) as err:
        start(runner, "done")
    assert err.value.code.value == "OVERLOADED" and "0 demo job(s)" in err.value.details


def test_the_child_runs_only_python_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert child.main(["1", "os; rm -rf /"]) == 2 and "usage" in capsys.readouterr().out
    assert child.main(["x", "json.tool"]) == 2, "the worker pid comes first"


def test_a_dead_workers_job_reads_failed_at_once_not_running_until_a_sweep(tmp_path: Path) -> None:
    """Issue 18: after a restart the first read already says failed (the sweep used to take ~12 s)."""
    store = Store(tmp_path / "db.sqlite", jobs_table())
    now = "2026-01-01T00:00:00Z"
    dead = {"status": "running", "created_at": now, "updated_at": now, "attempts": 0, "pid": 2**22 + 7}
    store.insert("jobs", {"id": "gone", **dead, "owner": "999999:1.000", "pid_started": 1.0})
    store.insert("jobs", {"id": "listed", **dead, "owner": "999999:1.000", "pid_started": 1.0})
    runner = JobRunner(store, tmp_path / "jobs", DemoJob(), owner=owner_token())  # no reconcile() call
    row = runner.get("gone")
    assert row["status"] == "failed" and "worker stopped" in row["error"]
    items, total = runner.list(["running"], 10, 0)
    assert (items, total) == ([], 0)
    assert runner.get("listed")["status"] == "failed"
