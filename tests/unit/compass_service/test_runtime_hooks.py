"""The runtime hooks the COMPASS worker needs: kind metadata, publishing it now, kind metrics, upload limits."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import responses
from prometheus_client import CollectorRegistry, Counter

from services.common.settings import WorkerSettings
from services.worker.agent import RegistryAgent
from services.worker.app import create_worker_app
from services.worker.echo import EchoModel
from services.worker.serve import WorkerServer

A = "http://reg:8500"
REGISTER = A + "/api/v1/services/register"


class MetaEcho(EchoModel):
    """An echo worker that advertises an active model and counts something in /metrics."""

    def __init__(self) -> None:
        super().__init__()
        self.active = "m1"
        self.max_upload_bytes = 64 << 20
        self.counter: Counter | None = None

    def metadata(self) -> dict[str, Any]:
        return {"active_model": {"id": self.active}}

    def add_metrics(self, registry: CollectorRegistry) -> None:
        self.counter = Counter("echo_things", "Things counted.", registry=registry)


def settings() -> WorkerSettings:
    return WorkerSettings(registry_urls=[A], max_body_bytes=4096, port=0)


def test_registration_carries_the_kind_metadata_under_the_runtime_keys() -> None:
    model = MetaEcho()
    server = WorkerServer(model, settings())
    meta = server.registration()["metadata"]
    assert meta["active_model"] == {"id": "m1"} and meta["capabilities"] == ["echo"] and meta["kind"] == "echo"
    model.active = "m2"
    assert server.registration()["metadata"]["active_model"] == {"id": "m2"}  # rebuilt at every registration


def test_kind_metrics_are_served_and_the_upload_limit_raises_the_server_limit() -> None:
    model = MetaEcho()
    client = create_worker_app(model, settings()).test_client()
    assert model.counter is not None
    model.counter.inc(3)
    assert "echo_things_total 3.0" in client.get("/metrics").get_data(as_text=True)
    server = WorkerServer(model, settings())
    server.bind()
    try:
        assert server._server.adj.max_request_body_size == 64 << 20
    finally:
        server._server.close()


@pytest.fixture
def fake() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def registered(interval: float = 0.05) -> dict[str, Any]:
    body = {"success": True, "data": {"instance_id": "echo-1", "ttl_s": 3 * interval, "heartbeat_interval_s": interval}}
    return {"json": body, "status": 201}


def test_refresh_re_registers_at_the_next_step_and_retries_until_it_succeeds(fake: Any) -> None:
    bodies = iter([{"v": 1}, {"v": 2}, {"v": 3}])
    agent = RegistryAgent(
        [A], lambda: next(bodies), status=lambda: "passing", load=lambda: {}, rng=random.Random(0), timeout=0.5
    )
    fake.post(REGISTER, **registered())
    fake.put(A + "/api/v1/services/echo-1/heartbeat", json={"success": True, "data": {}})
    agent.step()
    agent.step()  # a heartbeat
    agent.refresh()
    fake.replace(responses.POST, REGISTER, status=503)
    agent.step()  # the re-registration fails: the agent keeps the instance and tries again
    assert agent.instance_id == "echo-1" and agent.registrations == 1
    fake.replace(responses.POST, REGISTER, **registered())
    agent.step()
    assert agent.registrations == 2
    posts = [json.loads(c.request.body) for c in fake.calls if c.request.method == "POST"]
    assert posts[0] == {"v": 1} and posts[-1] == {"v": 3}
    agent.step()
    assert fake.calls[-1].request.method == "PUT"  # back to heartbeats


def test_publish_metadata_calls_the_listener_the_server_installs() -> None:
    model = MetaEcho()
    model.publish_metadata()  # standalone: nothing to tell, no error
    calls: list[int] = []
    model.metadata_listener = lambda: calls.append(1)
    model.publish_metadata()
    assert calls == [1]
