"""The batch runner's command line against a real registry and echo workers, one killed midway."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from services.client import RegistryClient
from tests.support import REPO, Proc, python_env, start_registry, start_workers, wait_until

TASKS = 200


def write_tasks(folder: Path) -> None:
    folder.mkdir()
    for i in range(TASKS):
        task = {"task": "echo", "input": {"i": i}, "metadata": {"request_id": f"task-{i:03d}"}}
        (folder / f"task{i:03d}.json").write_text(json.dumps(task))


def batch_command(registry: str, tmp_path: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "services.client.batch",
        "--registry",
        registry,
        "--service",
        "echo",
        "--input-dir",
        str(tmp_path / "in"),
        "--output-dir",
        str(tmp_path / "out"),
        "--concurrency",
        "4",
        "--no-progress",
    ]


def test_batch_over_200_tasks_survives_a_killed_worker_and_a_rerun_does_nothing(tmp_path: Path) -> None:
    registry = start_registry(tmp_path, "--heartbeat-interval", "0.5")
    workers: list[Proc] = []
    try:
        workers = start_workers(tmp_path, 3, "--registry", registry.base_url, "--latency-ms", "20")
        with RegistryClient(registry.base_url, watch=False, max_age_s=0) as client:
            wait_until(lambda: len(client.instances(name="echo").instances) == 3, timeout=15, what="3 workers")
        write_tasks(tmp_path / "in")
        out = tmp_path / "out"
        run = subprocess.Popen(
            batch_command(registry.base_url, tmp_path),
            cwd=REPO,
            env=python_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(lambda: out.is_dir() and len(list(out.glob("*.json"))) >= 50, timeout=30, interval=0.01)
        workers[0].kill9()
        assert len(list(out.glob("*.json"))) < TASKS, "the worker must die while the batch runs"
        stdout, stderr = run.communicate(timeout=60)
        assert run.returncode == 0, stdout + stderr
        assert f"total={TASKS} succeeded={TASKS} failed=0 skipped=0" in stdout

        results = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
        assert len(results) == TASKS and not list(out.glob(".*.tmp"))
        assert {r["status"] for r in results.values()} == {"success"}
        sample = results["task007"]
        assert sample["output"]["echo"] == {"i": 7, "task_type": "echo"}
        assert sample["metadata"]["request_id"] == "task-007" and sample["metadata"]["service"] == "echo"
        instances = {r["metadata"]["instance"] for r in results.values()}
        assert len(instances) == 3, "every worker served some tasks, the killed one before it died"

        mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")}
        again = subprocess.run(
            batch_command(registry.base_url, tmp_path),
            cwd=REPO,
            env=python_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"total={TASKS} succeeded=0 failed=0 skipped={TASKS}" in again.stdout
        assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")} == mtimes, "a re-run rewrote results"
    finally:
        for w in workers:
            w.stop()
        registry.stop()
