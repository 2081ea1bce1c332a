"""Issue 18 against a real registry process: what only a running server (and a real worker) shows.

- connections: an idle or half-sent connection is cut (header and idle timeouts), a blocking query
  waiting longer than both is not, and one client address cannot hold more than its cap (so it
  cannot lock other hosts' workers out);
- the heartbeat fast path answers recursion and a missing secret in the envelope (it gave a plain
  text 500 before);
- an active check never follows a redirect and probes only the instance's own host and port;
- made-up HTTP methods do not become metric labels (checked beside the fast path);
- a worker killed and restarted on the same address replaces its own row at once (its secret kept
  in a 0600 file), while another registrant of that id gets 409.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.integration.test_registry_process import store  # noqa: F401 - a fixture: both stores
from tests.support import Proc, free_port, python_env, read_json_line, spawn, start_registry, wait_until

OPERATOR, WORKER = "op-token", "worker-token"
TOKENS = ("--operator-token", OPERATOR, "--worker-token", WORKER)
AS_WORKER = {"Authorization": f"Bearer {WORKER}"}
AS_OPERATOR = {"Authorization": f"Bearer {OPERATOR}"}


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in reversed(started):
        proc.stop()


def connect(base_url: str, source: str = "127.0.0.1") -> socket.socket:
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10, source_address=(source, 0))
    return sock


def closed_within(sock: socket.socket, seconds: float) -> bytes | None:
    """What the server sent before closing, or None when it kept the connection open that long."""
    sock.settimeout(seconds)
    got = b""
    try:
        while chunk := sock.recv(4096):
            got += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return got


def test_idle_and_half_sent_connections_are_cut_but_a_waiting_query_is_not(tmp_path: Path, procs: list[Proc]):
    reg = start_registry(tmp_path, "--header-timeout", "1", "--idle-timeout", "1.5", "--max-wait", "10")
    procs.append(reg)
    started = time.monotonic()
    idle = connect(reg.base_url)
    half = connect(reg.base_url)
    half.sendall(b"PUT /api/v1/services/x/heartbeat HTTP/1.1\r\nHost: r\r\n")  # and never the rest
    trickle = connect(reg.base_url)
    index = requests.get(f"{reg.base_url}/api/v1/services", timeout=5).json()["data"]["index"]
    waited: dict[str, object] = {}

    def blocking_query() -> None:
        t0 = time.monotonic()
        resp = requests.get(f"{reg.base_url}/api/v1/services", params={"index": index, "wait": "4s"}, timeout=20)
        waited.update(status=resp.status_code, seconds=time.monotonic() - t0)

    query = threading.Thread(target=blocking_query)
    query.start()
    for byte in b"GET /health HTTP/1.1\r\nHost: r\r\n":  # a byte every 0.2 s: longer than 1 s in all
        try:
            trickle.sendall(bytes([byte]))
        except OSError:
            break
        time.sleep(0.2)  # the attack's own pacing (a byte every 0.2 s), not a wait for a condition
    assert closed_within(half, 3) is not None, "a half-sent request head was held open"
    assert closed_within(idle, 3) == b"", "an idle connection was held open"
    assert closed_within(trickle, 3) is not None, "a request head trickled byte by byte was held open"
    assert time.monotonic() - started < 8
    query.join(timeout=20)
    assert waited["status"] == 200 and float(waited["seconds"]) >= 3.5, f"the blocking query was cut: {waited}"


def test_one_client_address_cannot_take_every_connection(tmp_path: Path, procs: list[Proc]):
    reg = start_registry(tmp_path, "--client-connection-limit", "8", "--idle-timeout", "60")
    procs.append(reg)
    hogs = [connect(reg.base_url, source="127.0.0.2") for _ in range(8)]
    wait_until(lambda: requests.get(f"{reg.base_url}/health", timeout=2).ok, what="the registry answering")
    extra = connect(reg.base_url, source="127.0.0.2")
    extra.sendall(b"GET /health HTTP/1.1\r\nHost: r\r\n\r\n")
    answer = closed_within(extra, 5) or b""
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 429"), answer[:200]
    assert json.loads(body)["error"]["code"] == "RATE_LIMITED"
    # Another address (another host's workers) is not locked out, and freed slots are usable again.
    assert requests.get(f"{reg.base_url}/api/v1/services", timeout=5).status_code == 200
    for sock in hogs:
        sock.close()
    again = connect(reg.base_url, source="127.0.0.2")
    again.sendall(b"GET /health HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n")
    wait_until(lambda: (closed_within(again, 5) or b"").startswith(b"HTTP/1.1 200"), what="a freed slot")


def test_fast_path_errors_in_the_envelope_and_fixed_labels(tmp_path: Path, procs: list[Proc], store):  # noqa: F811
    reg = start_registry(tmp_path, *TOKENS, *store)
    procs.append(reg)
    body = {"service_name": "echo", "host": "127.0.0.1", "port": 9001}
    data = requests.post(f"{reg.base_url}/api/v1/services/register", json=body, headers=AS_WORKER, timeout=5).json()
    iid, secret = data["data"]["instance_id"], {"X-Instance-Secret": data["data"]["instance_secret"]}
    url = f"{reg.base_url}/api/v1/services/{iid}/heartbeat"
    deep = '{"load": {}, "x": ' + "[" * 30_000 + "]" * 30_000 + "}"
    for headers, payload, status, code in (
        ({**AS_WORKER, **secret}, deep, 400, "INVALID_REQUEST"),
        ({**AS_WORKER, **secret}, '{"load": {"cpu": NaN}}', 400, "INVALID_REQUEST"),
        (AS_WORKER, "{}", 401, "UNAUTHORIZED"),
        ({**AS_WORKER, "X-Instance-Secret": "forged"}, "{}", 401, "UNAUTHORIZED"),
    ):
        resp = requests.put(url, data=payload, headers={**headers, "Content-Type": "application/json"}, timeout=5)
        assert resp.status_code == status, resp.text[:300]
        assert resp.headers["Content-Type"].startswith("application/json")
        assert resp.json()["error"]["code"] == code
    assert requests.put(url, json={"load": {"inflight": 1}}, headers={**AS_WORKER, **secret}, timeout=5).ok
    assert requests.put(url, json={}, headers=AS_OPERATOR, timeout=5).ok
    listing = requests.get(f"{reg.base_url}/api/v1/services", timeout=5)
    assert listing.ok and listing.json()["data"]["instances"][0]["load"] == {"inflight": 1}
    # Made-up methods and paths do not become metric labels (one label value each, fixed).
    for i in range(20):
        requests.request(f"M{i}X", f"{reg.base_url}/api/v1/services/{i}/heartbeat", timeout=5)
        requests.request(f"BREW{i}", f"{reg.base_url}/random/{i}", timeout=5)
    text = requests.get(f"{reg.base_url}/metrics", timeout=5).text
    assert "BREW" not in text and "M1X" not in text and "/random" not in text
    assert 'method="other"' in text
    assert "Traceback" not in reg.log()


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: list[str]
    location = ""

    def do_GET(self) -> None:
        self.hits.append(self.path)
        if self.location:
            self.send_response(302)
            self.send_header("Location", self.location)
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _serve(location: str = "") -> tuple[http.server.ThreadingHTTPServer, list[str]]:
    hits: list[str] = []
    handler = type("Handler", (_Handler,), {"hits": hits, "location": location})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, hits


def test_active_checks_never_follow_a_redirect_nor_leave_the_instances_address(tmp_path: Path, procs: list[Proc]):
    target, target_hits = _serve()
    redirector, redirect_hits = _serve(location=f"http://127.0.0.1:{target.server_port}/secret?x=1")
    try:
        reg = start_registry(tmp_path, "--heartbeat-interval", "0.5")
        procs.append(reg)
        check = {"interval_s": 1.0, "timeout_s": 0.5}
        body = {
            "service_name": "probe",
            "host": "127.0.0.1",
            "port": redirector.server_port,
            "base_url": f"http://127.0.0.1:{target.server_port}",  # names another port: not probed
            "check": check,
        }
        resp = requests.post(f"{reg.base_url}/api/v1/services/register", json=body, timeout=5)
        assert resp.status_code == 201, resp.text
        wait_until(lambda: len(redirect_hits) >= 2, timeout=10, what="two probes of the instance's own port")
        assert redirect_hits[0] == "/health/ready"
        assert target_hits == [], "the registry followed a redirect or probed the base_url's other port"
        got = requests.get(f"{reg.base_url}/api/v1/services", timeout=5).json()["data"]["instances"][0]
        assert got["status"] == "passing"  # a 3xx answers the check; it is not followed
    finally:
        redirector.shutdown()
        target.shutdown()


def _start_echo(procs: list[Proc], tmp_path: Path, registry: str, port: int, name: str, home: Path) -> Proc:
    env = python_env(REGISTRY_TOKEN=WORKER, HOME=str(home))
    args = ["-m", "services.worker.echo", "--port", str(port), "--registry", registry]
    proc = spawn(args, tmp_path / f"{name}.log", "", env=env)
    procs.append(proc)
    proc.base_url = read_json_line(proc, "event")["base_url"]
    return proc


def test_a_restarted_worker_replaces_its_own_row_and_nobody_else_can(tmp_path: Path, procs: list[Proc]):
    """SQLite only: the etcd catalog's ownership (and its survival of a restart) is covered on a real
    etcd by tests/unit/test_registry_ownership.py; here the point is the worker's side."""
    reg = start_registry(tmp_path, *TOKENS, "--heartbeat-interval", "0.5", "--deregister-after", "30")
    procs.append(reg)
    port = free_port()
    home = tmp_path / "home"
    first = _start_echo(procs, tmp_path, reg.base_url, port, "echo-first", home)
    iid = read_json_line(first, "instance_id")["instance_id"]

    def row() -> dict | None:
        resp = requests.get(f"{reg.base_url}/api/v1/services/{iid}", timeout=5)
        return resp.json()["data"] if resp.ok else None

    wait_until(lambda: row() and row()["metadata"]["pid"] == first.pid, what="the first worker's row")
    secret_file = home / ".local/state/compass-mesh/instance-secrets" / f"{iid}.secret"
    assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(secret_file.parent).st_mode) == 0o700
    # Another registrant cannot take the live id (not even the same worker kind without the file).
    body = {"service_name": "echo", "host": "127.0.0.1", "port": port, "base_url": "http://127.0.0.1:1"}
    hijack = requests.post(f"{reg.base_url}/api/v1/services/register", json=body, headers=AS_WORKER, timeout=5)
    assert hijack.status_code == 409, hijack.text
    first.kill9()
    restarted_at = time.monotonic()
    second = _start_echo(procs, tmp_path, reg.base_url, port, "echo-second", home)
    wait_until(lambda: (row() or {}).get("metadata", {}).get("pid") == second.pid, timeout=10, what="the new pid")
    took = time.monotonic() - restarted_at
    assert "registration failed" not in second.log(), "the restarted worker was refused its own row"
    instances = requests.get(f"{reg.base_url}/api/v1/services", timeout=5).json()["data"]["instances"]
    assert [i["instance_id"] for i in instances] == [iid]
    assert row()["status"] == "passing"
    print(f"restarted worker replaced its row in {took:.2f}s (TTL 1.5 s, removal after 30 s)")
    second.terminate()
    wait_until(lambda: row() is None, what="the drained worker's deregistration")
    assert not secret_file.exists(), "a clean deregistration left the secret behind"
