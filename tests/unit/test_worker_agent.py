"""The registry agent against a fake registry (``responses``): backoff, failover, re-register, leave."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import requests
import responses

from services.client.registry_api import normalize_urls
from services.common.backoff import Backoff
from services.worker.agent import RegistryAgent
from tests.support import wait_until

A = "http://reg-a:8500"
B = "http://reg-b:8500"
REGISTER = "/api/v1/services/register"


def registered(instance_id: str = "echo-1", interval: float = 0.05, status: int = 201) -> dict[str, Any]:
    body = {
        "success": True,
        "data": {"instance_id": instance_id, "ttl_s": 3 * interval, "heartbeat_interval_s": interval},
    }
    return {"json": body, "status": status}


def make_agent(urls: list[str] | None = None, **kwargs: Any) -> RegistryAgent:
    return RegistryAgent(
        urls or [A],
        lambda: {"service_name": "echo", "host": "127.0.0.1", "port": 9000},
        status=lambda: "passing",
        load=lambda: {"inflight": 3, "queued": 1},
        timeout=0.5,
        rng=random.Random(0),
        **kwargs,
    )


@pytest.fixture
def fake() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def test_backoff_grows_exponentially_to_the_cap_with_full_jitter() -> None:
    backoff = Backoff(base=0.2, multiplier=2.0, cap=10.0)
    assert [backoff.ceiling(n) for n in range(8)] == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0])
    assert backoff.ceiling(10_000) == 10.0
    rng = random.Random(1)
    delays = [backoff.delay(5, rng) for _ in range(200)]
    assert all(0.0 <= d <= 6.4 for d in delays)
    assert len(set(delays)) > 150  # jittered, not synchronised across workers


def test_urls_are_normalised() -> None:
    assert normalize_urls(["reg-a:8500, http://reg-b:8500/", "reg-a:8500", ""]) == [A, B]
    with pytest.raises(ValueError):
        make_agent(urls=[" "])


def test_register_sends_the_body_and_token_then_heartbeats_load(fake: Any) -> None:
    fake.post(A + REGISTER, **registered(interval=0.25))
    fake.put(A + "/api/v1/services/echo-1/heartbeat", json={"success": True, "data": {}})
    agent = make_agent(token="s3cret")
    assert agent.step() == 0.25
    assert agent.instance_id == "echo-1" and agent.registered.is_set()
    assert agent.step() == 0.25
    register, beat = fake.calls
    assert json.loads(register.request.body) == {"service_name": "echo", "host": "127.0.0.1", "port": 9000}
    assert register.request.headers["Authorization"] == "Bearer s3cret"
    assert json.loads(beat.request.body) == {"status": "passing", "load": {"inflight": 3, "queued": 1}}
    assert beat.request.headers["Authorization"] == "Bearer s3cret"


def test_registration_retries_with_growing_jittered_backoff(fake: Any) -> None:
    fake.post(A + REGISTER, body=requests.ConnectionError("refused"))
    agent = make_agent(backoff=Backoff(base=0.2, multiplier=2.0, cap=1.0))
    delays = [agent.step() for _ in range(6)]
    ceilings = [0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert all(0.0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert agent.instance_id is None
    fake.replace(responses.POST, A + REGISTER, **registered())
    assert agent.step() == 0.05
    assert agent.instance_id == "echo-1"


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 400, "json": {"error": {"code": "INVALID_REQUEST", "details": "bad host"}}},
        {"status": 200, "body": "<html>"},
    ],
)
def test_refused_or_garbled_registration_is_retried_not_raised(fake: Any, answer: dict[str, Any]) -> None:
    fake.post(A + REGISTER, **answer)
    agent = make_agent()
    assert 0.0 <= agent.step() <= 0.2
    assert agent.instance_id is None


def test_fails_over_to_the_next_registry(fake: Any) -> None:
    fake.post(A + REGISTER, body=requests.ConnectionError("down"))
    fake.post(B + REGISTER, **registered("echo-b"))
    fake.put(B + "/api/v1/services/echo-b/heartbeat", json={"success": True})
    agent = make_agent(urls=[A, B])
    agent.step()
    assert agent.instance_id == "echo-b" and agent.registry_url == B
    agent.step()
    assert fake.calls[-1].request.url == B + "/api/v1/services/echo-b/heartbeat"


def test_503_from_one_registry_fails_over_too(fake: Any) -> None:
    fake.post(A + REGISTER, status=503, json={"error": {"code": "OVERLOADED", "details": "restarting"}})
    fake.post(B + REGISTER, **registered("echo-b"))
    agent = make_agent(urls=[A, B])
    agent.step()
    assert agent.instance_id == "echo-b"


def test_heartbeat_404_means_register_again(fake: Any) -> None:
    fake.post(A + REGISTER, **registered())
    fake.put(A + "/api/v1/services/echo-1/heartbeat", status=404, json={"error": {"code": "NOT_FOUND", "details": "?"}})
    agent = make_agent()
    agent.step()
    assert agent.step() == 0.0
    assert agent.instance_id is None and not agent.registered.is_set()
    agent.step()
    assert agent.instance_id == "echo-1" and agent.registrations == 2


def test_heartbeat_errors_keep_the_registration_and_retry_within_the_interval(fake: Any) -> None:
    fake.post(A + REGISTER, **registered(interval=0.5))
    fake.put(A + "/api/v1/services/echo-1/heartbeat", body=requests.ConnectTimeout("slow"))
    agent = make_agent(backoff=Backoff(base=5.0, cap=60.0))
    agent.step()
    for _ in range(5):
        assert 0.0 <= agent.step() <= 0.5
    assert agent.instance_id == "echo-1"


def test_leaving_sets_maintenance_deregisters_and_never_reregisters(fake: Any) -> None:
    fake.post(A + REGISTER, **registered())
    fake.put(A + "/api/v1/services/echo-1/maintenance", json={"success": True})
    fake.delete(A + "/api/v1/services/echo-1", json={"success": True})
    agent = make_agent(token="t")
    agent.step()
    assert agent.set_maintenance(True, "draining") is True
    assert json.loads(fake.calls[-1].request.body) == {"enabled": True, "reason": "draining"}
    assert agent.deregister() is True
    assert fake.calls[-1].request.method == "DELETE"
    assert fake.calls[-1].request.headers["Authorization"] == "Bearer t"
    calls = len(fake.calls)
    agent.step()
    assert len(fake.calls) == calls and agent.instance_id is None


def test_deregister_treats_404_as_gone_and_outage_as_failure(fake: Any) -> None:
    fake.post(A + REGISTER, **registered())
    fake.delete(A + "/api/v1/services/echo-1", status=404, json={})
    agent = make_agent()
    agent.step()
    assert agent.deregister() is True
    agent = make_agent()
    fake.replace(responses.DELETE, A + "/api/v1/services/echo-1", body=requests.ConnectionError("down"))
    agent.step()
    assert agent.deregister() is False
    assert agent.set_maintenance(True, "x") is False


def test_thread_registers_heartbeats_and_stops(fake: Any) -> None:
    fake.post(A + REGISTER, **registered(interval=0.05))
    beat = fake.put(A + "/api/v1/services/echo-1/heartbeat", json={"success": True})
    agent = make_agent()
    agent.start()
    try:
        assert agent.registered.wait(5)
        wait_until(lambda: beat.call_count >= 3, timeout=5, what="three heartbeats")
    finally:
        agent.stop()
    count = beat.call_count
    assert not agent.running
    assert beat.call_count == count


def test_thread_survives_a_crashing_load_callback(fake: Any) -> None:
    fake.post(A + REGISTER, **registered(interval=0.05))
    fake.put(A + "/api/v1/services/echo-1/heartbeat", json={"success": True})
    calls = {"n": 0}

    def load() -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] < 3:
            raise RuntimeError("psutil hiccup")
        return {"inflight": 0}

    agent = RegistryAgent([A], lambda: {}, status=lambda: "passing", load=load, backoff=Backoff(base=0.01))
    agent.start()
    try:
        wait_until(lambda: calls["n"] >= 4, timeout=5, what="heartbeats after load errors")
    finally:
        agent.stop()
