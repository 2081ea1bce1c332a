"""The launcher with real echo replicas and a real registry: start, restart after kill -9, stop cleanly."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from tests.support import TOKEN, Proc, spawn, wait_until


@pytest.fixture
def launchers() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.stop()
        for line in replica_lines(proc):  # never leak a replica, whatever the test did
            if psutil.pid_exists(line["pid"]):
                os.kill(line["pid"], signal.SIGKILL)


def launch(launchers: list[Proc], tmp_path: Path, *args: str) -> Proc:
    proc = spawn(["-m", "services.worker.launch", *args], tmp_path / "launcher.log", "")
    launchers.append(proc)
    return proc


def replica_lines(proc: Proc) -> list[dict[str, Any]]:
    lines = []
    for raw in proc.log().splitlines():
        if raw.startswith("{"):
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if obj.get("event") == "replica":
                lines.append(obj)
    return lines


def current_pids(proc: Proc) -> dict[int, int]:
    """replica index → pid of its latest process."""
    return {line["replica"]: line["pid"] for line in replica_lines(proc)}


def registered_pids(registry: Proc) -> dict[int, dict[str, Any]]:
    resp = requests.get(f"{registry.base_url}/api/v1/services", params={"name": "echo"}, timeout=2)
    return {i["metadata"]["pid"]: i for i in resp.json()["data"]["instances"]}


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_replicas_register_restart_after_kill_and_stop_cleanly(
    registry: Proc, launchers: list[Proc], tmp_path: Path
) -> None:
    launcher = launch(
        launchers, tmp_path, "echo", "--replicas", "3", "--registry", registry.base_url, "--token", TOKEN,
        "--restart-backoff", "0.2", "--grace-period", "20", "--latency-ms", "1",
    )  # fmt: skip
    pids = wait_until(
        lambda: len(current_pids(launcher)) == 3 and current_pids(launcher), timeout=30, what="3 replicas"
    )
    lines = replica_lines(launcher)
    assert {line["kind"] for line in lines} == {"echo"}
    assert len({line["port"] for line in lines}) == 3
    for line in lines:
        assert line["base_url"].endswith(f":{line['port']}")
        assert requests.get(line["base_url"] + "/health/ready", timeout=2).status_code == 200

    def all_passing(expected: set[int]) -> bool:
        found = registered_pids(registry)
        return expected <= set(found) and all(found[pid]["status"] == "passing" for pid in expected)

    wait_until(lambda: all_passing(set(pids.values())), timeout=20, what="3 registered replicas")

    victim_index, victim_pid = next(iter(pids.items()))
    os.kill(victim_pid, signal.SIGKILL)

    def restarted() -> int | None:
        new_pid = current_pids(launcher)[victim_index]
        return new_pid if new_pid != victim_pid else None

    new_pid = wait_until(restarted, timeout=30, what="the killed replica restarted")
    assert replica_lines(launcher)[-1]["restarts"] == 1
    assert "restarting in" in launcher.log()
    wait_until(lambda: all_passing({new_pid}), timeout=20, what="the restarted replica registered")

    final = set(current_pids(launcher).values())
    assert len(final) == 3
    launcher.popen.send_signal(signal.SIGTERM)
    assert launcher.popen.wait(timeout=60) == 0
    assert not any(alive(pid) for pid in final)
    assert not final & set(registered_pids(registry))  # each replica deregistered on its way out


def test_sigint_stops_a_standalone_replica(launchers: list[Proc], tmp_path: Path) -> None:
    launcher = launch(launchers, tmp_path, "echo", "--replicas", "1")
    pids = wait_until(lambda: current_pids(launcher), timeout=30, what="the replica")
    launcher.popen.send_signal(signal.SIGINT)
    assert launcher.popen.wait(timeout=30) == 0
    assert not alive(pids[0])
    assert "run standalone" in launcher.log()


def test_crash_looping_replicas_are_given_up(launchers: list[Proc], tmp_path: Path) -> None:
    launcher = launch(
        launchers, tmp_path, "echo", "--replicas", "2", "--restart-backoff", "0.05", "--max-fast-crashes", "2",
        "--", "--failure-rate", "5",
    )  # fmt: skip
    assert launcher.popen.wait(timeout=60) == 1
    log = launcher.log()
    assert log.count("crash loop, giving up") == 2
    assert "failure rate must be between 0 and 1" in log
    assert replica_lines(launcher) == []


def test_kind_without_a_module_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from services.worker import launch

    # Every shipped kind has its module now; a kind whose package is not installed must still fail clearly.
    monkeypatch.setitem(launch.KINDS, "antiberty", ("seqmodels.not_installed", ()))
    assert launch.main(["antiberty", "--registry", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "seqmodels.not_installed" in err and "cannot be found" in err
