"""The Router's per-try timeout against real loopback sockets: a hung instance costs one try.

Failure tried: an instance that accepts connections and never answers (a frozen process), as
the first choice of an idempotent call, as the only instance of a service with a fallback, and
under a non-idempotent call (which must not be repeated elsewhere).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.client import AllAttemptsFailed, DeadlineExceeded, Router, StaticDiscovery
from services.common.instance import Instance


class First:
    """Always the first candidate by id, so the hung instance ('a-…') is tried first."""

    name = "first"

    def choose(self, instances, loads):
        return sorted(instances, key=lambda i: i.instance_id)[0]


class _Answer(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"success": True, "message": "ok", "data": {"served": True}, "error": None}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def hung() -> Iterator[int]:
    """A port whose listener accepts (the kernel completes the handshake) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.fixture
def answering() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def inst(iid: str, service: str, port: int) -> Instance:
    return Instance(iid, service, "127.0.0.1", port, f"http://127.0.0.1:{port}", metadata={"models": [service]})


def test_a_hung_instance_costs_one_try_timeout_then_another_instance_answers(hung, answering) -> None:
    found = StaticDiscovery([inst("a-hung", "echo", hung), inst("b-live", "echo", answering)])
    with Router(found, balancer=First(), try_timeout_s=0.3, deadline_s=5) as router:
        result = router.call("echo", "POST", "/predict", json={"x": 1})
    assert result.data == {"served": True} and result.instance == "b-live"
    assert result.attempts == 2 and [a.outcome for a in result.tried] == ["read-timeout", "ok"]


def test_without_a_try_timeout_the_hung_instance_takes_the_whole_deadline(hung, answering) -> None:
    found = StaticDiscovery([inst("a-hung", "echo", hung), inst("b-live", "echo", answering)])
    with Router(found, balancer=First(), deadline_s=1.0) as router, pytest.raises(DeadlineExceeded):
        router.call("echo", "POST", "/predict", json={"x": 1})


def test_a_hung_only_instance_falls_back_to_the_next_service(hung, answering) -> None:
    found = StaticDiscovery([inst("a-hung", "compass", hung), inst("b-lite", "compass-lite", answering)])
    with Router(found, balancer=First(), fallbacks={"compass": ["compass-lite"]}, deadline_s=5) as router:
        result = router.call("compass", "POST", "/predict", json={"x": 1}, try_timeout=0.3)
    assert result.fallback_used and result.service == "compass-lite"


def test_a_non_idempotent_call_is_not_repeated_after_a_try_timeout(hung, answering) -> None:
    found = StaticDiscovery([inst("a-hung", "echo", hung), inst("b-live", "echo", answering)])
    router = Router(found, balancer=First(), try_timeout_s=0.3, deadline_s=5)
    with router, pytest.raises(AllAttemptsFailed, match="not idempotent") as err:
        router.call("echo", "POST", "/api/v1/jobs", json={"x": 1})
    assert [a.outcome for a in err.value.attempts] == ["read-timeout"]


def test_try_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="try_timeout"):
        Router(StaticDiscovery([]), try_timeout_s=0)
