"""Tail latency per balancer with one slow worker (after Linkerd's 2016 experiment: 11 backends, one stalled).

Six real echo workers on loopback with a lognormal service time; one of them is 10× slower. An
open-loop generator sends a fixed request rate through the Router (latency is measured from
each request's *scheduled* send time, so a stalled client cannot hide queueing: no coordinated
omission). For every strategy it prints p50/p95/p99/p99.9 and the success rate at a fixed
timeout, then the p99 with the slow worker removed (round robin over the five fast ones) as the
baseline. Goal: p2c and least_connections p99 ≤ 1.5× baseline, round_robin ≥ 3×.

    python -m bench.lb_tail [--rate 100] [--duration 30] [--timeout 1.0] [--quick]

Workers run standalone (no registry): discovery is a fixed list, so only balancing is measured.
Figures, never pass/fail; all processes are stopped on exit (Ctrl-C included).
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from services.client import BALANCERS, ClientError, EjectionPolicy, Router, StaticDiscovery
from services.common.instance import Instance
from tests.support import Proc, read_json_line, spawn


@dataclass
class Run:
    """Samples of one configuration, pooled over its rounds."""

    label: str
    latencies_ms: list[float] = field(default_factory=list)
    sent: int = 0
    ok: int = 0
    slow: int = 0

    @property
    def slow_share(self) -> float:
        return self.slow / max(1, self.ok)

    def pct(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        if not data:
            return float("nan")
        return data[min(len(data) - 1, int(q / 100 * len(data)))]


def start_echo(tmp: Path, name: str, mean_ms: float, jitter_ms: float, seed: int) -> Proc:
    args = [
        "-m",
        "services.worker.echo",
        "--port",
        "0",
        "--latency-ms",
        str(mean_ms),
        "--latency-jitter-ms",
        str(jitter_ms),
        "--latency-dist",
        "lognormal",
        "--seed",
        str(seed),
        "--threads",
        "32",
        "--max-inflight",
        "64",
        "--log-level",
        "WARNING",
    ]
    proc = spawn(args, tmp / f"{name}.log", base_url="")
    return proc


def as_instance(proc: Proc, n: int) -> Instance:
    port = int(proc.base_url.rsplit(":", 1)[1])
    return Instance(f"echo-{n}", "echo", "127.0.0.1", port, proc.base_url)


def drive(router: Router, rate: float, duration: float, timeout: float, slow_id: str, into: Run) -> None:
    """Open loop: request i is due at start + i/rate and is timed from then."""
    count = int(rate * duration)
    lock = threading.Lock()

    def one(i: int, due: float) -> None:
        try:
            res = router.call("echo", "POST", "/predict", json={"i": i}, deadline=timeout)
        except ClientError:
            return
        elapsed = (time.perf_counter() - due) * 1000
        with lock:
            into.ok += 1
            into.slow += res.instance == slow_id
            into.latencies_ms.append(elapsed)

    into.sent += count
    with ThreadPoolExecutor(max_workers=256, thread_name_prefix="load") as pool:
        start = time.perf_counter() + 0.05
        for i in range(count):
            due = start + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            pool.submit(one, i, due)


def measure(configs: list[tuple[str, list[Instance], str]], args: argparse.Namespace, slow_id: str) -> list[Run]:
    """Every configuration in ``args.rounds`` interleaved rounds, so background noise hits all alike."""
    routers = [
        # Ejection stays on (it is part of the Router); the slow worker never fails, so it never fires.
        Router(
            StaticDiscovery(fleet),
            balancer=strategy,
            rng=random.Random(args.seed),
            ejection=EjectionPolicy(),
            pool_maxsize=256,
            deadline_s=args.timeout,
        )
        for _, fleet, strategy in configs
    ]
    runs = [Run(label) for label, _, _ in configs]
    try:
        for router in routers:
            drive(router, args.rate, args.warmup, args.timeout, slow_id, Run("warm-up"))
        for r in range(args.rounds):
            order = list(range(len(configs)))
            order = order[r % len(order) :] + order[: r % len(order)]
            for k in order:
                drive(routers[k], args.rate, args.duration / args.rounds, args.timeout, slow_id, runs[k])
    finally:
        for router in routers:
            router.close()
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lb_tail", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds measured per strategy")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured traffic first")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds the duration is split into")
    parser.add_argument("--timeout", type=float, default=1.0, help="deadline per request in seconds")
    parser.add_argument("--mean-ms", type=float, default=10.0, help="mean service time of a fast worker")
    parser.add_argument("--jitter-ms", type=float, default=5.0, help="its standard deviation (lognormal)")
    parser.add_argument("--slow-factor", type=float, default=10.0, help="how much slower the slow worker is")
    parser.add_argument("--strategies", default=",".join(BALANCERS), help="comma-separated balancers")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 s per strategy")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.rounds = 3.0, 0.5, 1

    signal.signal(signal.SIGTERM, _exit_on_signal)
    procs: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="lb_tail_") as tmpdir:
        tmp = Path(tmpdir)
        try:
            for n in range(6):
                factor = args.slow_factor if n == 0 else 1.0
                procs.append(start_echo(tmp, f"echo{n}", args.mean_ms * factor, args.jitter_ms * factor, args.seed + n))
            for proc in procs:
                proc.base_url = read_json_line(proc, "event")["base_url"]
            fleet = [as_instance(p, n) for n, p in enumerate(procs)]
            slow_id = fleet[0].instance_id
            print(
                f"6 echo workers, lognormal {args.mean_ms:g}±{args.jitter_ms:g} ms, "
                f"echo-0 {args.slow_factor:g}× slower; "
                f"{args.rate:g} req/s open loop, {args.duration:g} s per strategy in {args.rounds} interleaved rounds, "
                f"timeout {args.timeout:g} s",
                flush=True,
            )
            configs = [("baseline (5 fast, round_robin)", fleet[1:], "round_robin")]
            configs += [(s.strip(), fleet, s.strip()) for s in args.strategies.split(",")]
            base, *runs = measure(configs, args, slow_id)
        finally:
            for proc in procs:
                proc.stop()
    header = f"{'strategy':<32}{'p50':>8}{'p95':>8}{'p99':>8}{'p99.9':>8}{'ok %':>8}{'slow %':>8}{'p99/base':>9}"
    print(header)
    print("-" * len(header))
    for run in [base, *runs]:
        print(
            f"{run.label:<32}{run.pct(50):8.1f}{run.pct(95):8.1f}{run.pct(99):8.1f}{run.pct(99.9):8.1f}"
            f"{100 * run.ok / max(1, run.sent):8.2f}{100 * run.slow_share:8.2f}{run.pct(99) / base.pct(99):9.2f}"
        )
    print(
        f"(latency in ms from the scheduled send time; n={base.sent} per row; "
        f"mean of baseline {statistics.fmean(base.latencies_ms or [0]):.1f} ms)"
    )
    return 0


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that stops the workers


if __name__ == "__main__":
    sys.exit(main())
