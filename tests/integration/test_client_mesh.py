"""The Router against a real registry and real echo workers on loopback.

Failures tried: kill -9 of a worker under load (no request may fail), every primary stopped
(the fallback serves, and says so), the registry killed (traffic continues from the cache,
marked stale, and turns fresh again once a registry is back).
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from services.client import RegistryClient, Router
from tests.support import Proc, free_port, start_registry, wait_until
from tests.support import start_workers as support_start_workers

FLAGS = ("--heartbeat-interval", "0.5", "--critical-after", "3", "--deregister-after", "3")

# An echo worker under another service name: the fallback of a chain needs a second service.
_RENAMED_ECHO = """
from services.worker.cli import run_worker_cli
from services.worker.echo import ECHO_OPTIONS, make_echo_model

def make(args, settings):
    model = make_echo_model(args, settings)
    model.service_name, model.models = {name!r}, [{name!r} + "-1"]
    return model

raise SystemExit(run_worker_cli(make, prog={name!r}, options=ECHO_OPTIONS))
"""


def start_workers(tmp_path: Path, registry: str, count: int, *extra: str, service: str = "echo") -> list[Proc]:
    """Start ``count`` echo workers (renamed to ``service``) registered with ``registry``."""
    module = "services.worker.echo" if service == "echo" else ("-c", _RENAMED_ECHO.format(name=service))
    flags = ("--registry", registry, "--drain-timeout", "5", *extra)
    return support_start_workers(tmp_path, count, *flags, module=module, name=service)


def registered(client: RegistryClient, name: str, count: int) -> bool:
    snap = client.refresh(name=name)
    return sum(1 for i in snap.instances if i.status == "passing") == count


@pytest.fixture
def mesh(tmp_path: Path):
    procs: list[Proc] = []
    registry = start_registry(tmp_path, *FLAGS)
    procs.append(registry)
    client = RegistryClient(registry.base_url, wait_s=2, backoff_base_s=0.05, backoff_cap_s=0.5)
    state = {"registry": registry, "client": client, "procs": procs, "tmp": tmp_path}
    try:
        yield state
    finally:
        client.close()
        for proc in state["procs"]:
            proc.stop()


def hammer(router: Router, total: int, threads: int, **call) -> tuple[list, list, list]:
    """Send ``total`` calls from ``threads`` threads; returns (results, failures, progress counter)."""
    results: list = []
    failures: list = []
    done = [0]
    lock = threading.Lock()
    per_thread = total // threads

    def run(t: int) -> None:
        for k in range(per_thread):
            try:
                res = router.call(**call, json={"t": t, "k": k})
            except Exception as exc:  # every failure is recorded, none may happen
                with lock:
                    failures.append(exc)
            else:
                with lock:
                    results.append(res)
            with lock:
                done[0] += 1

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    return results, failures, [workers, done]


def test_kill9_of_one_worker_under_load_fails_no_request(mesh) -> None:
    registry, client = mesh["registry"], mesh["client"]
    workers = start_workers(mesh["tmp"], registry.base_url, 3, "--latency-ms", "3")
    mesh["procs"] += workers
    wait_until(lambda: registered(client, "echo", 3), timeout=15, what="3 workers registered")
    victim = workers[0]
    victim_port = int(victim.base_url.rsplit(":", 1)[1])
    with Router(client, deadline_s=10) as router:
        results, failures, (threads, done) = hammer(router, 1000, 8, target="echo", method="POST", path="/predict")
        wait_until(lambda: done[0] >= 250, timeout=30, interval=0.005, what="a quarter of the requests")
        victim.kill9()
        killed_at = done[0]
        for t in threads:
            t.join(timeout=60)
    assert not failures, f"{len(failures)} failed: {failures[:3]}"
    assert len(results) == 1000
    served = Counter(r.data["served_by"]["port"] for r in results)
    assert len(served) == 3 and served[victim_port] <= killed_at + 8
    retried = [r for r in results if r.attempts > 1]
    assert all(r.instance != r.tried[0].instance_id for r in retried), "a retry never reuses an instance"


def test_every_primary_stopped_the_fallback_serves_and_says_so(mesh) -> None:
    registry, client = mesh["registry"], mesh["client"]
    primaries = start_workers(mesh["tmp"], registry.base_url, 2)
    lite = start_workers(mesh["tmp"], registry.base_url, 1, service="echo-lite")
    mesh["procs"] += primaries + lite
    wait_until(lambda: registered(client, "echo", 2) and registered(client, "echo-lite", 1), timeout=15)
    with Router(client, fallbacks={"echo": ["echo-lite"]}, deadline_s=10) as router:
        before = [router.call("echo", "POST", "/predict", json={"i": i}) for i in range(20)]
        assert {(r.service, r.fallback_used) for r in before} == {("echo", False)}
        primaries[0].kill9()  # one dies,
        primaries[1].terminate()  # the other drains and deregisters
        after = [router.call("echo", "POST", "/predict", json={"i": i}) for i in range(50)]
    assert {(r.service, r.fallback_used, r.model) for r in after} == {("echo-lite", True, "echo-lite-1")}
    assert after[-1].data["served_by"]["base_url"] == lite[0].base_url


def test_registry_killed_traffic_continues_from_the_cache_marked_stale(mesh, tmp_path: Path) -> None:
    registry, client = mesh["registry"], mesh["client"]
    workers = start_workers(mesh["tmp"], registry.base_url, 2)
    mesh["procs"] += workers
    wait_until(lambda: registered(client, "echo", 2), timeout=15)
    with Router(client, balancer="round_robin", deadline_s=10) as router:
        assert not router.call("echo", "GET", "/health").stale
        registry.kill9()
        wait_until(lambda: client.stale, timeout=10, what="the cache to turn stale")
        during = [router.call("echo", "POST", "/predict", json={"i": i}) for i in range(100)]
        assert all(r.stale for r in during) and len({r.instance for r in during}) == 2
        port = int(registry.base_url.rsplit(":", 1)[1])
        restarted = start_registry(tmp_path, *FLAGS, port=port, db=tmp_path / "registry.db", name="registry2")
        mesh["procs"].append(restarted)
        wait_until(lambda: not client.stale, timeout=10, what="the cache to turn fresh again")
        assert not router.call("echo", "POST", "/predict", json={}).stale


def test_registry_failover_to_a_second_registry(tmp_path: Path) -> None:
    """Workers register with both registries; the client lists a dead one first and still finds them."""
    dead = f"http://127.0.0.1:{free_port()}"
    registry = start_registry(tmp_path, *FLAGS)
    workers: list[Proc] = []
    client = RegistryClient([dead, registry.base_url], wait_s=2)
    try:
        workers = start_workers(tmp_path, registry.base_url, 1)
        wait_until(lambda: registered(client, "echo", 1), timeout=15)
        with Router(client) as router:
            assert router.call("echo", "GET", "/health").instance
        assert client.instances(name="echo").source == registry.base_url
    finally:
        client.close()
        for proc in [*workers, registry]:
            proc.stop()
