"""WorkerServer in-process on loopback: the ready line, the registration body, stop paths and exit codes."""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import requests

from services.common.instance import derive_instance_id
from services.common.settings import WorkerSettings
from services.worker.echo import EchoModel
from services.worker.serve import WorkerServer
from tests.support import wait_until


def settings(**overrides: Any) -> WorkerSettings:
    base = WorkerSettings(registry_urls=[], port=0, host="127.0.0.1", drain_timeout=10.0)
    for key, value in overrides.items():
        setattr(base, key, value)
    return base


class FailingLoad(EchoModel):
    def load(self) -> None:
        raise RuntimeError("weights missing")


def test_registration_body_and_ready_line_follow_the_contract() -> None:
    out = io.StringIO()
    config = settings(
        registry_urls=["http://127.0.0.1:9"], advertise_host="node-7", active_check=True, tags=["gpu"], weight=3
    )
    server = WorkerServer(EchoModel(), config, out=out)
    server.bind()
    port = server.identity.port
    assert port > 0
    body = server.registration()
    assert body["instance_id"] == derive_instance_id("echo", "node-7", port)
    assert (body["service_name"], body["host"], body["port"]) == ("echo", "node-7", port)
    assert body["base_url"] == f"http://node-7:{port}"
    assert (body["version"], body["tags"], body["weight"]) == ("1.0.0", ["gpu"], 3)
    assert body["check"] == {"path": "/health/ready"}
    assert body["metadata"]["capabilities"] == ["echo"] and body["metadata"]["models"] == ["echo-1"]
    assert {"device", "pid", "kind"} <= set(body["metadata"])
    assert {"inflight", "queued"} <= set(body["load"])

    server.request_stop("test over")  # before run(): the loop closes as soon as it starts
    assert server.run(install_signals=False) == 0
    ready = json.loads(out.getvalue())
    assert ready == {
        "event": "ready",
        "kind": "echo",
        "service": "echo",
        "pid": server.identity.pid,
        "port": port,
        "base_url": f"http://node-7:{port}",
        "instance_id": body["instance_id"],
    }


def test_a_model_that_cannot_load_exits_1() -> None:
    server = WorkerServer(FailingLoad(), settings(), out=io.StringIO())
    assert server.run(install_signals=False) == 1
    assert server.state.load_error == "RuntimeError: weights missing"


def test_stop_waits_for_the_in_flight_request_and_its_bytes() -> None:
    server = WorkerServer(EchoModel(), settings(), out=io.StringIO())
    server.bind()
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(server.run(install_signals=False)))
    runner.start()
    url = server.identity.base_url
    wait_until(lambda: requests.get(url + "/health/ready", timeout=2).status_code == 200, what="ready")
    answers: list[requests.Response] = []
    caller = threading.Thread(
        target=lambda: answers.append(requests.post(url + "/predict", json={"sleep_ms": 800, "n": 1}, timeout=10))
    )
    caller.start()
    wait_until(lambda: server.state.limiter.inflight == 1, what="the request in flight")
    server.request_stop("test")
    server.request_stop("again")  # idempotent
    caller.join(10)
    runner.join(15)
    assert codes == [0]
    assert answers[0].status_code == 200 and answers[0].json()["data"]["echo"]["n"] == 1
