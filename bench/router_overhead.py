"""The Router's added latency over a direct pooled `requests` call to the same worker.

One registry and one echo worker (no added latency) on loopback. The same ``POST /predict``
is sent N times directly (a keep-alive ``requests.Session``, as the Router's own) and N times
through ``Router.call`` (discovery from the RegistryClient cache, balancer, in-flight
tracking, ejection bookkeeping, result object), in alternating blocks so drift hits both
alike. A third row times the Router with the network cut out (a session stub answering at
once): its own CPU cost per call. Goal: added p50 < 1 ms (Ray Serve publishes 1.8–4 ms).

    python -m bench.router_overhead [--requests 3000] [--balancer p2c] [--quick]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

import requests

from services.client import RegistryClient, Router
from services.client.transport import make_session
from tests.support import Proc, start_registry, start_workers, wait_until

BODY = {"input": {"smiles": "CCO"}, "task_type": "bench"}


class _InstantSession:
    """Stands in for the network: every request gets the same canned 200 envelope."""

    def __init__(self) -> None:
        self._content = b'{"success": true, "message": "ok", "data": {"echo": {}}, "error": null}'

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        resp = requests.Response()
        resp.status_code = 200
        resp._content = self._content
        resp.headers["Content-Type"] = "application/json"
        return resp

    def close(self) -> None:
        pass


def pct(data: list[float], q: float) -> float:
    ordered = sorted(data)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def row(label: str, data_ms: list[float]) -> str:
    return (
        f"{label:<28}{pct(data_ms, 50):9.3f}{pct(data_ms, 90):9.3f}{pct(data_ms, 99):9.3f}"
        f"{statistics.fmean(data_ms):9.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.router_overhead", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="calls per path (default: %(default)s)")
    parser.add_argument("--block", type=int, default=100, help="calls per alternating block")
    parser.add_argument("--balancer", default="p2c")
    parser.add_argument("--quick", action="store_true", help="smoke run: 300 calls per path")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests = 300
    signal.signal(signal.SIGTERM, _exit_on_signal)

    procs: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="router_overhead_") as tmpdir:
        tmp = Path(tmpdir)
        try:
            registry = start_registry(tmp, "--heartbeat-interval", "1", "--log-level", "WARNING")
            procs.append(registry)
            (worker,) = start_workers(tmp, 1, "--registry", registry.base_url, "--log-level", "WARNING")
            procs.append(worker)
            discovery = RegistryClient(registry.base_url, wait_s=30)
            wait_until(lambda: discovery.refresh(name="echo").instances, timeout=15, what="the worker registered")
            direct_ms, routed_ms, cpu_ms = run(args, discovery, worker.base_url)
            discovery.close()
        finally:
            for proc in reversed(procs):
                proc.stop()

    print(
        f"{args.requests} x POST /predict per path on loopback, echo worker with no added latency, "
        f"balancer {args.balancer}"
    )
    print(f"{'path (ms)':<28}{'p50':>9}{'p90':>9}{'p99':>9}{'mean':>9}")
    print(row("direct requests.Session", direct_ms))
    print(row("Router.call", routed_ms))
    print(row("Router.call, no network", cpu_ms))
    added_p50 = pct(routed_ms, 50) - pct(direct_ms, 50)
    added_mean = statistics.fmean(routed_ms) - statistics.fmean(direct_ms)
    print(
        f"added by the Router: p50 {added_p50:+.3f} ms, mean {added_mean:+.3f} ms; "
        f"its own CPU per call (p50, no network) {pct(cpu_ms, 50):.3f} ms"
    )
    return 0


def run(
    args: argparse.Namespace, discovery: RegistryClient, base_url: str
) -> tuple[list[float], list[float], list[float]]:
    session = make_session()
    router = Router(discovery, balancer=args.balancer)
    offline = Router(discovery, balancer=args.balancer, session=_InstantSession())  # type: ignore[arg-type]
    url = base_url + "/predict"

    def direct() -> None:
        resp = session.post(url, json=BODY, headers={"X-Request-ID": "bench"}, timeout=(2.0, 30.0))
        resp.raise_for_status()
        resp.json()

    def routed() -> None:
        router.call("echo", "POST", "/predict", json=BODY)

    def cpu_only() -> None:
        offline.call("echo", "POST", "/predict", json=BODY)

    samples: dict[Any, list[float]] = {direct: [], routed: [], cpu_only: []}
    for fn in samples:  # warm-up: connections, caches, code paths
        for _ in range(min(200, args.requests)):
            fn()
    done = 0
    while done < args.requests:
        n = min(args.block, args.requests - done)
        for fn, out in samples.items():
            for _ in range(n):
                t0 = time.perf_counter()
                fn()
                out.append((time.perf_counter() - t0) * 1000)
        done += n
    router.close()
    session.close()
    return samples[direct], samples[routed], samples[cpu_only]


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
