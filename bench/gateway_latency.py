"""The agent gateway's added latency over a direct Router call to the same worker, in the same run.

One registry, one codon worker and one gateway on loopback (rate limits off). The same work, a
``codon_verification`` of a short coding DNA, is sent N times as ``Router.call("codon", "POST",
"/predict/batch")`` from this process, and N times as ``POST /api/v1/analyze`` to the gateway
(which checks the input, ranks the models from its registry cache and makes the same Router call),
in alternating blocks so drift hits both alike. The difference is the gateway's cost: one more HTTP
hop on loopback, its envelope and its checks.

    python -m bench.gateway_latency [--requests 1000] [--quick]
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

import requests
from flask.testing import FlaskClient
from tqdm import tqdm

from gateway.settings import GatewaySettings
from gateway.worker import GatewayModel
from services.client import Router
from services.client.transport import make_session
from services.common.settings import WorkerSettings
from services.worker import create_worker_app
from tests.support import Proc, python_env, read_json_line, spawn, start_registry, stop_all, wait_until

DNA = "ATGGTGAGCAAGGGCGAGGAGCTGTTCACCGGGGTGGTGCCCATCCTGGTCGAGCTGGACGGCGACGTAAACTAA"
ITEM = {"sequence": DNA, "task_type": "verify", "options": {}}
GATEWAY_BODY = {"task_type": "codon_verification", "sequences": [DNA], "model_name": "codon"}


def pct(data: list[float], q: float) -> float:
    ordered = sorted(data)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def row(label: str, data_ms: list[float]) -> str:
    figures = [pct(data_ms, 50), pct(data_ms, 90), pct(data_ms, 99), statistics.fmean(data_ms)]
    return f"{label:<30}" + "".join(f"{x:9.2f}" for x in figures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="calls per path (default: %(default)s)")
    parser.add_argument("--block", type=int, default=50, help="calls per alternating block")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 calls per path")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests = 200
    signal.signal(signal.SIGTERM, _exit_on_signal)

    procs: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="gateway_latency_") as tmpdir:
        tmp = Path(tmpdir)
        try:
            registry = start_registry(tmp, "--heartbeat-interval", "1", "--log-level", "WARNING")
            procs.append(registry)
            common = [
                "--port",
                "0",
                "--registry",
                registry.base_url,
                "--rate-limit-per-min",
                "0",
                "--log-level",
                "WARNING",
            ]
            env = python_env(OMP_NUM_THREADS="1")
            codon = spawn(["-m", "seqmodels.codon", *common], tmp / "codon.log", "", env=env)
            gateway = spawn(["-m", "gateway", *common], tmp / "gateway.log", "", env=env)
            procs += [codon, gateway]
            for proc in (codon, gateway):
                proc.base_url = read_json_line(proc, "event", timeout=120)["base_url"]
            session = make_session()
            analyze = f"{gateway.base_url}/api/v1/analyze"
            wait_until(lambda: session.post(analyze, json=GATEWAY_BODY, timeout=10).ok, timeout=60, what="gateway")
            model, local = in_process_gateway(registry.base_url)
            with Router(registry.base_url, deadline_s=30) as router:
                wait_until(lambda: router.call("codon", "POST", "/predict/batch", json={"items": [ITEM]}), timeout=30)
                direct, through, inproc = measure(router, session, analyze, local, args.requests, args.block)
            session.close()
            if model.gateway is not None:
                model.gateway.close()
        finally:
            stop_all(procs)

    print(f"\n{'path (ms per call)':<30}{'p50':>9}{'p90':>9}{'p99':>9}{'mean':>9}")
    print(row("Router.call -> codon", direct))
    print(row("gateway /analyze -> codon", through))
    print(row("  same, gateway in-process", inproc))
    added50, added99 = pct(through, 50) - pct(direct, 50), pct(through, 99) - pct(direct, 99)
    print(
        f"\ngateway added latency: p50 {added50:+.2f} ms, p99 {added99:+.2f} ms "
        f"(x{pct(through, 50) / pct(direct, 50):.2f} at p50, {args.requests} calls per path); "
        f"its code alone (no HTTP hop to it): p50 {pct(inproc, 50) - pct(direct, 50):+.2f} ms"
    )
    return 0


def in_process_gateway(registry_url: str) -> tuple[GatewayModel, FlaskClient]:
    """The gateway's app in this process (Flask's test client): its own code with no HTTP hop to it."""
    model = GatewayModel(GatewaySettings(), WorkerSettings(registry_urls=[registry_url]))
    model.load()
    return model, create_worker_app(model, WorkerSettings(rate_limit_per_min=0)).test_client()


def measure(
    router: Router, session: requests.Session, analyze: str, local: FlaskClient, n: int, block: int
) -> tuple[list[float], list[float], list[float]]:
    """``n`` timed calls per path (wall time, answer parsed), alternating blocks of ``block``; every answer checked."""
    direct: list[float] = []
    through: list[float] = []
    inproc: list[float] = []
    with tqdm(total=3 * n, desc="calls", unit="call", mininterval=2) as bar:
        while len(direct) < n:
            for _ in range(min(block, n - len(direct))):
                t0 = time.perf_counter()
                result = router.call("codon", "POST", "/predict/batch", json={"items": [ITEM]})
                direct.append((time.perf_counter() - t0) * 1000.0)
                assert result.data["succeeded"] == 1
                bar.update()
            for _ in range(min(block, n - len(through))):
                t0 = time.perf_counter()
                resp = session.post(analyze, json=GATEWAY_BODY, timeout=30)
                answer = resp.json()  # parsed, as the Router parses its answer
                through.append((time.perf_counter() - t0) * 1000.0)
                assert resp.ok and answer["data"]["succeeded"] == 1, resp.text
                bar.update()
            for _ in range(min(block, n - len(inproc))):
                t0 = time.perf_counter()
                local_resp = local.post("/api/v1/analyze", json=GATEWAY_BODY)
                local_answer = local_resp.get_json()
                inproc.append((time.perf_counter() - t0) * 1000.0)
                assert local_answer["data"]["succeeded"] == 1, local_resp.text
                bar.update()
    return direct, through, inproc


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    sys.exit(128 + signum)


if __name__ == "__main__":
    raise SystemExit(main())
