"""The worker agent's side of instance ownership, against a fake registry (``responses``).

The real-process version (a worker killed and restarted on its address) is in
tests/integration/test_registry_guards.py; these cover the edge cases one at a time.
"""

from __future__ import annotations

import json
import os
import random
import stat
from pathlib import Path
from typing import Any

import pytest
import responses

from services.worker.agent import RegistryAgent

A = "http://reg-a:8500"
REGISTER = A + "/api/v1/services/register"
BEAT = A + "/api/v1/services/echo-1/heartbeat"
BODY = {"instance_id": "echo-1", "service_name": "echo", "host": "10.0.0.7", "port": 9000}


def answer(secret: str | None = "s1", status: int = 201) -> dict[str, Any]:
    data = {"instance_id": "echo-1", "ttl_s": 0.3, "heartbeat_interval_s": 0.1}
    if secret is not None:
        data["instance_secret"] = secret
    return {"json": {"success": True, "data": data}, "status": status}


def agent(folder: Path) -> RegistryAgent:
    return RegistryAgent(
        [A], lambda: dict(BODY), status=lambda: "passing", load=lambda: {}, rng=random.Random(0), secret_dir=folder
    )


@pytest.fixture
def fake() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def test_the_secret_is_kept_private_and_sent_by_the_next_life(fake: Any, tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    fake.post(REGISTER, **answer("s1"))
    fake.put(BEAT, json={"success": True, "data": {}})
    first = agent(folder)
    first.step()
    first.step()
    assert fake.calls[1].request.headers["X-Instance-Secret"] == "s1"
    path = folder / "echo-1.secret"
    assert path.read_text() == "s1"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    restarted = agent(folder)  # a new process on the same address: same id, same folder
    restarted.step()
    assert fake.calls[2].request.headers["X-Instance-Secret"] == "s1"


def test_a_conflict_is_retried_with_backoff_and_explained(fake: Any, tmp_path: Path, caplog) -> None:
    conflict = {"success": False, "error": {"code": "CONFLICT", "details": "instance 'echo-1' is live"}}
    fake.post(REGISTER, json=conflict, status=409)
    a = agent(tmp_path)
    delay = a.step()
    assert delay > 0 and a.instance_id is None and not a.registered.is_set()
    assert "is live" in caplog.text and "no secret for that id" in caplog.text
    assert "X-Instance-Secret" not in fake.calls[0].request.headers  # it had none to send


def test_a_refused_heartbeat_stops_beating_and_registers_again(fake: Any, tmp_path: Path) -> None:
    fake.post(REGISTER, **answer("s1"))
    fake.put(BEAT, json={"success": False, "error": {"code": "UNAUTHORIZED", "details": "not yours"}}, status=401)
    a = agent(tmp_path)
    a.step()
    assert a.step() > 0  # backoff, not a hot loop
    assert a.instance_id is None and not a.registered.is_set()
    a.step()
    assert fake.calls[-1].request.url == REGISTER
    assert fake.calls[-1].request.headers["X-Instance-Secret"] == "s1"  # proves it, if it is still its own


def test_clean_deregistration_deletes_the_secret(fake: Any, tmp_path: Path) -> None:
    fake.post(REGISTER, **answer("s1"))
    fake.put(A + "/api/v1/services/echo-1/maintenance", json={"success": True, "data": {}})
    fake.delete(A + "/api/v1/services/echo-1", json={"success": True, "data": {}})
    a = agent(tmp_path)
    a.step()
    assert a.set_maintenance(True, "draining")
    assert a.deregister()
    assert [c.request.headers.get("X-Instance-Secret") for c in fake.calls[1:]] == ["s1", "s1"]
    assert not (tmp_path / "echo-1.secret").exists()


def test_a_registry_without_ownership_works_as_before(fake: Any, tmp_path: Path) -> None:
    fake.post(REGISTER, **answer(secret=None))
    fake.put(BEAT, json={"success": True, "data": {}})
    a = agent(tmp_path)
    a.step()
    a.step()
    assert "X-Instance-Secret" not in fake.calls[1].request.headers
    assert list(tmp_path.iterdir()) == []
    assert json.loads(fake.calls[0].request.body)["instance_id"] == "echo-1"
