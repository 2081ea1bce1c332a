"""The registry as a real process, on both stores: crash safety (kill -9), restart grace, token, fuzzing."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from tests.etcd_support import unique_prefix
from tests.support import REPO, free_port, start_registry, wait_until

TOKEN = "integration-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(params=["sqlite", "etcd"])
def store(request) -> tuple[str, ...]:
    """Registry flags choosing the store; every test here runs on SQLite and on a real etcd."""
    if request.param == "sqlite":
        return ()
    endpoints = ",".join(request.getfixturevalue("etcd_server").endpoints)
    return ("--store", "etcd", "--etcd-endpoints", endpoints, "--etcd-prefix", unique_prefix())


def register(
    base: str, port: int, name: str = "echo", headers: dict | None = None, secrets: dict[str, str] | None = None
) -> str:
    """Register; the instance's secret is kept in ``secrets`` by name:port, and sent from there next time."""
    body = {"service_name": name, "host": "127.0.0.1", "port": port, "metadata": {"capabilities": ["echo"]}}
    headers = dict(headers or {})
    if secrets and f"{name}:{port}" in secrets:
        headers["X-Instance-Secret"] = secrets[f"{name}:{port}"]
    resp = requests.post(f"{base}/api/v1/services/register", json=body, headers=headers, timeout=5)
    assert resp.status_code in (200, 201), resp.text
    data = resp.json()["data"]
    if secrets is not None:
        secrets[f"{name}:{port}"] = data["instance_secret"]
    return data["instance_id"]


def instances(base: str, **params) -> list[dict]:
    return requests.get(f"{base}/api/v1/services", params=params, timeout=5).json()["data"]["instances"]


def test_kill9_loses_no_registration_and_restart_gives_grace(tmp_path: Path, store: tuple[str, ...]):
    db = tmp_path / "registry.db"
    port = free_port()
    flags = ("--heartbeat-interval", "0.5", "--critical-after", "3", "--deregister-after", "30")
    reg = start_registry(tmp_path, *flags, *store, port=port, db=db)
    try:
        secrets: dict[str, str] = {}
        ids = [register(reg.base_url, 10_000 + i, secrets=secrets) for i in range(40)]
        dead = register(reg.base_url, 20_000, name="dead")

        # Let "dead" go critical while the 40 others keep beating.
        def dead_critical() -> bool:
            for iid in ids:
                requests.put(
                    f"{reg.base_url}/api/v1/services/{iid}/heartbeat", json={"load": {"inflight": 1}}, timeout=5
                )
            return (
                requests.get(f"{reg.base_url}/api/v1/services/{dead}", timeout=5).json()["data"]["status"] == "critical"
            )

        wait_until(dead_critical, timeout=10, interval=0.2, what="the silent instance to turn critical")
        index_before = requests.get(f"{reg.base_url}/api/v1/services", timeout=5).json()["data"]["index"]
        reg.kill9()

        reg2 = start_registry(tmp_path, *flags, *store, port=port, db=db, name="registry2")
        try:
            after = {i["instance_id"]: i for i in instances(reg2.base_url)}
            assert set(after) == {*ids, dead}, "a registration was lost across kill -9"
            assert all(after[i]["status"] == "passing" for i in ids), "restart expired live instances at once"
            assert after[dead]["status"] == "critical", "a dead instance came back falsely passing"
            index_after = requests.get(f"{reg2.base_url}/api/v1/services", timeout=5).json()["data"]["index"]
            assert index_after > index_before, "the index went backwards across a restart"
            # Workers re-register after the restart with the secrets they kept: replaced, never
            # duplicated; the secrets survived kill -9 with the rows.
            again = [register(reg2.base_url, 10_000 + i, secrets=secrets) for i in range(40)]
            assert again == ids
            assert len(instances(reg2.base_url)) == 41
            # Nobody beats now: the grace period ends and they all turn critical on time.
            wait_until(
                lambda: all(i["status"] == "critical" for i in instances(reg2.base_url)),
                timeout=1.5 + 0.5 + 0.25 + 3,
                what="every instance to expire after the grace TTL",
            )
        finally:
            reg2.stop()
    finally:
        reg.stop()


def test_sigterm_flushes_heartbeat_timestamps(tmp_path: Path, store: tuple[str, ...]):
    db = tmp_path / "registry.db"
    port = free_port()
    reg = start_registry(tmp_path, "--flush-interval", "60", *store, port=port, db=db)
    iid = register(reg.base_url, 9000)
    requests.put(f"{reg.base_url}/api/v1/services/{iid}/heartbeat", timeout=5)
    beat = requests.get(f"{reg.base_url}/api/v1/services/{iid}", timeout=5).json()["data"]["last_heartbeat"]
    registered = requests.get(f"{reg.base_url}/api/v1/services/{iid}", timeout=5).json()["data"]["registered_at"]
    assert reg.terminate() == 0
    reg2 = start_registry(tmp_path, *store, port=port, db=db, name="registry2")
    try:
        got = requests.get(f"{reg2.base_url}/api/v1/services/{iid}", timeout=5).json()["data"]
        assert got["last_heartbeat"] == beat and got["registered_at"] == registered
    finally:
        reg2.stop()


def test_sigterm_answers_waiting_blocking_queries_instead_of_cutting_them(tmp_path: Path, store: tuple[str, ...]):
    """A replica going down must hand its watchers a clean answer, so they move on at once."""
    reg = start_registry(tmp_path, *store)
    register(reg.base_url, 9000)
    index = requests.get(f"{reg.base_url}/api/v1/services", timeout=5).json()["data"]["index"]
    answers: list[requests.Response] = []
    threads = [
        threading.Thread(
            target=lambda: answers.append(
                requests.get(f"{reg.base_url}/api/v1/services", params={"index": index, "wait": "30s"}, timeout=40)
            )
        )
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    wait_until(lambda: 'registry_blocking_queries 3.0' in requests.get(f"{reg.base_url}/metrics", timeout=5).text,
               timeout=10, what="3 blocking queries waiting")  # fmt: skip
    assert reg.terminate() == 0
    for t in threads:
        t.join(timeout=10)
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all(a.json()["data"]["index"] == index for a in answers)


def test_token_enforced_by_the_real_server(tmp_path: Path, store: tuple[str, ...]):
    reg = start_registry(tmp_path, "--token", TOKEN, *store)
    try:
        body = {"service_name": "echo", "host": "127.0.0.1", "port": 1}
        resp = requests.post(f"{reg.base_url}/api/v1/services/register", json=body, timeout=5)
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "UNAUTHORIZED"
        iid = register(reg.base_url, 1, headers=AUTH)
        assert requests.delete(f"{reg.base_url}/api/v1/services/{iid}", timeout=5).status_code == 401
        assert requests.delete(f"{reg.base_url}/api/v1/services/{iid}", headers=AUTH, timeout=5).status_code == 200
    finally:
        reg.stop()


def test_schemathesis_finds_no_server_error_or_contract_break(tmp_path: Path, store: tuple[str, ...]):
    """Fuzz every route from /openapi.json (bounded examples, fixed seed) against the real server.

    positive_data_acceptance is left out: the spec cannot say "a valid IP or host name" exactly,
    so some schema-valid strings are rightly refused with 400.
    """
    pytest.importorskip("schemathesis")
    reg = start_registry(tmp_path, "--token", TOKEN, "--max-wait", "0.2", "--heartbeat-interval", "0.5", *store)
    try:
        st = Path(sys.executable).with_name("st")
        cmd = [
            str(st),
            "run",
            f"{reg.base_url}/openapi.json",
            "-H",
            f"Authorization: Bearer {TOKEN}",
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "25",
            "--seed",
            "7",
            "--request-timeout",
            "5",
            "--no-color",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=REPO)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
        assert "Traceback" not in reg.log()
    finally:
        reg.stop()


def test_active_check_marks_an_unreachable_instance_critical_despite_heartbeats(tmp_path: Path, store: tuple[str, ...]):
    reg = start_registry(tmp_path, "--heartbeat-interval", "0.5", *store)
    try:
        check = {"interval_s": 1.0, "timeout_s": 0.5, "failures_before_critical": 2, "successes_before_passing": 1}
        dead_port = free_port()  # nothing listens here
        body = {"service_name": "probe", "host": "127.0.0.1", "port": dead_port, "check": check}
        dead = requests.post(f"{reg.base_url}/api/v1/services/register", json=body, timeout=5).json()["data"]
        # The registry itself answers /health: an instance "served" there passes its check.
        live_body = {**body, "port": int(reg.base_url.rsplit(":", 1)[1]), "check": {**check, "path": "/health"}}
        live = requests.post(f"{reg.base_url}/api/v1/services/register", json=live_body, timeout=5).json()["data"]

        def states() -> dict[str, str]:
            for iid in (dead["instance_id"], live["instance_id"]):
                requests.put(f"{reg.base_url}/api/v1/services/{iid}/heartbeat", timeout=5)
            return {i["instance_id"]: i["status"] for i in instances(reg.base_url, name="probe")}

        wait_until(lambda: states()[dead["instance_id"]] == "critical", timeout=10, what="the failing check")
        got = requests.get(f"{reg.base_url}/api/v1/services/{dead['instance_id']}", timeout=5).json()["data"]
        assert got["status_reason"] == "active check failing"
        assert states()[live["instance_id"]] == "passing"
    finally:
        reg.stop()
