"""How long clients and workers take to route around a lost registry replica (etcd store).

Two registry replicas share one etcd; three echo workers and a client know both URLs and
prefer the first. While a Router keeps calling the workers, the first replica is lost in one
of two ways: killed (``kill -9``: connections are refused at once) or hung (``SIGSTOP``: the
port accepts and nothing answers, as with a frozen VM, so only timeouts help). Printed:

* discovery: from the loss to the client's cached snapshot showing an instance registered
  through the surviving replica, against the same propagation with both replicas up (baseline);
* heartbeats: from the loss to every worker's next heartbeat recorded by the survivor;
* the Router's calls: failures, and latency p50/p99 before and in the seconds after the loss.

    .venv/bin/python -m bench.registry_failover [--mode kill,hang] [--client-timeout 1.0]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from services.client import RegistryClient, Router
from services.client.registry_api import RegistryApi
from tests.etcd_support import EtcdCluster, etcd_binary, unique_prefix
from tests.support import Proc, start_registry, start_workers, wait_until

FLAGS = ("--heartbeat-interval", "0.5", "--critical-after", "3", "--deregister-after", "10")


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Load:
    """A closed loop of Router calls recording (start time, latency, ok)."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.samples: list[tuple[float, float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                self.router.call("echo", "POST", "/predict", json={"x": 1})
                ok = True
            except Exception:
                ok = False
            self.samples.append((start, time.monotonic() - start, ok))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        inside = [s for s in self.samples if t0 <= s[0] < t1]
        lat = [s[1] * 1000 for s in inside if s[2]]
        return {
            "calls": len(inside),
            "failed": sum(1 for s in inside if not s[2]),
            "p50": pct(lat, 0.5),
            "p99": pct(lat, 0.99),
        }


def register_probe(registry: RegistryApi, port: int) -> None:
    resp = registry.register({"service_name": "probe", "host": "127.0.0.1", "port": port})
    if resp is None:
        raise RuntimeError(f"no registry answered at {registry.url}")
    resp.raise_for_status()


def propagation(client: RegistryClient, registry: RegistryApi, port: int, timeout: float = 30.0) -> float:
    """Seconds from a registration through ``registry`` to the client's cache holding it."""
    start = time.monotonic()
    register_probe(registry, port)
    wait_until(
        lambda: any(i.port == port for i in client.instances(name="probe").instances),
        timeout=timeout,
        interval=0.002,
        what=f"probe :{port} in the client's cache",
    )
    return time.monotonic() - start


def heartbeats(registry: RegistryApi) -> dict[str, str | None]:
    instances, _, _ = registry.list_instances({"name": "echo"})
    return {i.instance_id: i.last_heartbeat for i in instances}


def first_beats(registry: RegistryApi, before: dict[str, str | None], since: float) -> float:
    """Seconds from ``since`` until every worker in ``before`` has beaten again through ``registry``."""
    wait_until(
        lambda: all(heartbeats(registry).get(i) != b for i, b in before.items()),
        timeout=30,
        interval=0.01,
        what="every worker to beat through the survivor",
    )
    return time.monotonic() - since


def run_mode(mode: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    cluster = EtcdCluster(tmp / mode, size=1)
    (tmp / mode).mkdir(parents=True, exist_ok=True)
    cluster.start()
    procs: list[Proc] = []
    try:
        store = ("--store", "etcd", "--etcd-endpoints", cluster.endpoints[0], "--etcd-prefix", unique_prefix())
        replicas = [start_registry(tmp / mode, *FLAGS, *store, name=f"registry{i}") for i in range(2)]
        procs += replicas
        urls = ",".join(r.base_url for r in replicas)
        procs += start_workers(tmp / mode, 3, "--registry", urls, "--registry-timeout", str(args.worker_timeout))
        survivor = RegistryApi(replicas[1].base_url, timeout_s=5)  # only this replica: no failover
        wait_until(lambda: len(heartbeats(survivor)) == 3, timeout=30, what="3 workers")
        client = RegistryClient(
            [r.base_url for r in replicas], wait_s=5, timeout_s=args.client_timeout, backoff_base_s=0.05
        )
        client.instances(name="probe")  # start its watch on the first replica
        baseline = [propagation(client, survivor, 20000 + i) for i in range(args.repeats)]
        with Router(client, deadline_s=30) as router, Load(router) as load:
            time.sleep(args.settle)
            before = heartbeats(survivor)
            lost_at = time.monotonic()
            victim = replicas[0].popen
            victim.send_signal(signal.SIGKILL if mode == "kill" else signal.SIGSTOP)
            beats_seen: list[float] = []
            watcher = threading.Thread(target=lambda: beats_seen.append(first_beats(survivor, before, lost_at)))
            watcher.start()  # heartbeats and discovery fail over independently: time both at once
            discovery = propagation(client, survivor, 21000)
            watcher.join(timeout=60)
            beats = beats_seen[0] if beats_seen else float("nan")
            time.sleep(args.after)
        if mode == "hang":
            victim.send_signal(signal.SIGCONT)
        client.close()
        survivor.close()
        return {
            "mode": mode,
            "baseline_ms": statistics.median(baseline) * 1000,
            "discovery_ms": discovery * 1000,
            "heartbeats_ms": beats * 1000,
            "before": load.window(lost_at - args.settle, lost_at),
            "after": load.window(lost_at, lost_at + args.after),
        }
    finally:
        for proc in procs:
            proc.stop()
        cluster.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.registry_failover", description=__doc__.splitlines()[0])
    p.add_argument("--mode", default="kill,hang", help="kill, hang or both (default %(default)s)")
    p.add_argument("--client-timeout", type=float, default=1.0, help="RegistryClient timeout_s (default 1.0)")
    p.add_argument("--worker-timeout", type=float, default=1.0, help="worker --registry-timeout (default 1.0)")
    p.add_argument("--repeats", type=int, default=5, help="baseline propagations (default 5)")
    p.add_argument("--settle", type=float, default=2.0, help="seconds of load before the loss")
    p.add_argument("--after", type=float, default=3.0, help="seconds of load measured after the loss")
    p.add_argument("--keep", help="keep every log under this folder instead of a temporary one")
    args = p.parse_args(argv)
    if etcd_binary() is None:
        print("etcd is not installed (apt-get install etcd-server)", file=sys.stderr)
        return 1
    rows = []
    with tempfile.TemporaryDirectory(prefix="registry-failover-") as scratch:
        tmp = args.keep or scratch
        for mode in [m.strip() for m in args.mode.split(",") if m.strip()]:
            print(f"[{mode}] measuring…", file=sys.stderr, flush=True)
            rows.append(run_mode(mode, args, Path(tmp)))

    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    timeouts = f"client timeout {args.client_timeout:g}s, worker {args.worker_timeout:g}s"
    print(f"registry replica lost under load ({timeouts}); latencies in ms")
    print("mode   baseline  discovery  ratio  heartbeats  calls before/after  failed  p50 bef./after  p99 bef./after")
    for r in rows:
        b, a = r["before"], r["after"]
        print(
            f"{r['mode']:<5}  {f(r['baseline_ms']):>8}  {f(r['discovery_ms']):>9}  "
            f"{r['discovery_ms'] / r['baseline_ms']:5.1f}  {f(r['heartbeats_ms']):>10}  "
            f"{b['calls']:>8}/{a['calls']:<9}  {b['failed'] + a['failed']:>6}  "
            f"{f(b['p50']):>7}/{f(a['p50']):<8}  {f(b['p99']):>7}/{f(a['p99']):<8}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
