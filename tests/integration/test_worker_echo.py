"""A real echo worker process against a real registry: register, heartbeat load, drain, re-register."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support import (
    AUTH,
    REGISTRY_FLAGS,
    TOKEN,
    Proc,
    free_port,
    python_env,
    read_json_line,
    spawn,
    start_registry,
    wait_until,
)


@pytest.fixture
def workers() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.stop()


def start_echo(
    workers: list[Proc], tmp_path: Path, *flags: str, name: str = "echo", token: str = TOKEN
) -> dict[str, Any]:
    """Start ``python -m services.worker.echo --port 0 ...`` and return its ready line."""
    env = python_env(REGISTRY_TOKEN=token)
    proc = spawn(["-m", "services.worker.echo", "--port", "0", *flags], tmp_path / f"{name}.log", "", env=env)
    workers.append(proc)
    ready = read_json_line(proc, "event")
    assert ready["event"] == "ready" and ready["kind"] == "echo" and ready["pid"] == proc.pid
    proc.base_url = ready["base_url"]
    return ready


def find(registry: Proc, instance_id: str) -> dict[str, Any] | None:
    resp = requests.get(f"{registry.base_url}/api/v1/services", params={"name": "echo"}, timeout=2)
    resp.raise_for_status()
    return next((i for i in resp.json()["data"]["instances"] if i["instance_id"] == instance_id), None)


def post_in_background(url: str, body: dict[str, Any]) -> tuple[threading.Thread, dict[str, requests.Response]]:
    result: dict[str, requests.Response] = {}

    def call() -> None:
        result["response"] = requests.post(url, json=body, timeout=30)

    thread = threading.Thread(target=call)
    thread.start()
    return thread, result


def inflight(worker: Proc) -> int:
    return requests.get(worker.base_url + "/health", timeout=2).json()["data"]["inflight"]


def test_standalone_worker_serves_and_exits_cleanly(workers: list[Proc], tmp_path: Path) -> None:
    ready = start_echo(workers, tmp_path)
    worker = workers[0]
    assert "instance_id" not in ready
    resp = requests.post(worker.base_url + "/predict", json={"task_type": "echo", "x": 1}, timeout=5)
    data = resp.json()["data"]
    assert resp.status_code == 200 and data["echo"] == {"task_type": "echo", "x": 1}
    assert data["served_by"]["port"] == ready["port"]
    assert worker.terminate(timeout=15) == 0
    assert "running standalone" in worker.log()


def test_worker_registers_after_loading_and_heartbeats_its_load(
    registry: Proc, workers: list[Proc], tmp_path: Path
) -> None:
    ready = start_echo(workers, tmp_path, "--registry", registry.base_url, "--active-check", "--load-time-s", "1.0")
    worker = workers[0]
    iid = ready["instance_id"]
    # Bound and answering, but not ready and not registered until the model has loaded.
    not_ready = requests.get(worker.base_url + "/health/ready", timeout=2)
    assert not_ready.status_code == 503 and not_ready.json()["error"]["code"] == "MODEL_NOT_LOADED"
    assert find(registry, iid) is None
    inst = wait_until(lambda: find(registry, iid), timeout=15, what="registration")
    assert inst["status"] == "passing"
    assert (inst["host"], inst["port"], inst["base_url"]) == ("127.0.0.1", ready["port"], ready["base_url"])
    meta = inst["metadata"]
    assert meta["capabilities"] == ["echo"] and meta["models"] == ["echo-1"]
    assert (meta["pid"], meta["kind"], meta["device"]) == (worker.pid, "echo", "cpu")
    assert inst["check"]["path"] == "/health/ready"
    assert {"inflight", "queued", "cpu_percent", "rss_mb"} <= set(inst["load"])

    thread, result = post_in_background(worker.base_url + "/predict", {"sleep_ms": 2500})
    wait_until(lambda: find(registry, iid)["load"]["inflight"] == 1, timeout=10, what="a heartbeat with inflight=1")
    thread.join(30)
    assert result["response"].status_code == 200
    wait_until(lambda: find(registry, iid)["load"]["inflight"] == 0, timeout=10, what="a heartbeat with inflight=0")


def test_sigterm_drains_in_flight_work_then_deregisters(registry: Proc, workers: list[Proc], tmp_path: Path) -> None:
    ready = start_echo(workers, tmp_path, "--registry", registry.base_url)
    worker = workers[0]
    iid = ready["instance_id"]
    wait_until(lambda: find(registry, iid), timeout=15, what="registration")

    thread, result = post_in_background(worker.base_url + "/predict", {"sleep_ms": 3000, "tag": "slow"})
    wait_until(lambda: inflight(worker) == 1, what="the slow request in flight")
    worker.popen.send_signal(signal.SIGTERM)

    wait_until(lambda: find(registry, iid)["maintenance"], timeout=10, what="maintenance in the registry")
    ready_probe = requests.get(worker.base_url + "/health/ready", timeout=2)
    assert ready_probe.status_code == 503
    refused = requests.post(worker.base_url + "/predict", json={}, timeout=2)
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "OVERLOADED"
    assert "Retry-After" in refused.headers

    thread.join(30)
    slow = result["response"]
    assert slow.status_code == 200 and slow.json()["data"]["echo"]["tag"] == "slow"
    assert worker.popen.wait(timeout=30) == 0
    assert find(registry, iid) is None  # deregistered before exiting, not expired later


def test_worker_registers_again_when_the_registry_forgets_it(
    registry: Proc, workers: list[Proc], tmp_path: Path
) -> None:
    ready = start_echo(workers, tmp_path, "--registry", registry.base_url)
    iid = ready["instance_id"]
    first = wait_until(lambda: find(registry, iid), timeout=15, what="registration")
    resp = requests.delete(f"{registry.base_url}/api/v1/services/{iid}", headers=AUTH, timeout=5)
    assert resp.status_code == 200

    def back() -> bool:
        inst = find(registry, iid)
        return inst is not None and inst["registered_at"] != first["registered_at"]

    wait_until(back, timeout=15, what="re-registration after DELETE")
    assert "registering again" in workers[0].log()


def test_worker_outlives_a_registry_restart_with_an_empty_store(tmp_path: Path, workers: list[Proc]) -> None:
    port = free_port()
    old = start_registry(tmp_path, *REGISTRY_FLAGS, port=port, name="old-registry")
    try:
        ready = start_echo(workers, tmp_path, "--registry", old.base_url)
        wait_until(lambda: find(old, ready["instance_id"]), timeout=15, what="registration")
    finally:
        old.stop()
    assert requests.get(workers[0].base_url + "/health/live", timeout=2).status_code == 200
    new = start_registry(tmp_path, *REGISTRY_FLAGS, port=port, db=tmp_path / "fresh.db", name="new-registry")
    try:
        wait_until(lambda: find(new, ready["instance_id"]), timeout=20, what="registration with the new registry")
    finally:
        new.stop()


def test_worker_fails_over_to_a_registry_that_answers(registry: Proc, workers: list[Proc], tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    ready = start_echo(workers, tmp_path, "--registry", f"{dead},{registry.base_url}")
    wait_until(lambda: find(registry, ready["instance_id"]), timeout=15, what="registration via the second URL")


def test_wrong_token_never_registers_but_keeps_serving(registry: Proc, workers: list[Proc], tmp_path: Path) -> None:
    ready = start_echo(workers, tmp_path, "--registry", registry.base_url, token="wrong")
    worker = workers[0]
    wait_until(lambda: "HTTP 401" in worker.log(), timeout=15, what="the 401 in the worker log")
    assert find(registry, ready["instance_id"]) is None
    assert requests.post(worker.base_url + "/predict", json={}, timeout=5).status_code == 200
    assert worker.terminate(timeout=15) == 0
