"""Batch runner throughput with 1, 2, 4 and 8 fixed-latency echo workers.

Each worker sleeps a fixed time per request and admits ``--slots`` requests at once (503
OVERLOADED beyond: a worker's real capacity, as a GPU worker has one). The runner
(``python -m services.client.batch``, the real command line) gets ``slots × workers``
concurrency and ``--tasks-per-worker × workers`` tasks, so perfect scaling is
``workers × slots / latency`` tasks/s. Printed: throughput, its ratio to linear (the
1-worker run × n), tasks that needed a retry, and failures. Goal: ≥ 0.8 × linear up to 8.

    python -m bench.batch_scaling [--latency-ms 100] [--slots 2] [--balancers least_connections,p2c] [--quick]

Workers are added as the fleet grows (1 → 2 → 4 → 8) under one registry; everything is
stopped on exit (Ctrl-C included).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType

from services.client import RegistryClient
from tests.support import REPO, Proc, python_env, start_registry, wait_until
from tests.support import start_workers as support_start_workers


def start_workers(tmp: Path, registry: str, count: int, first: int, args: argparse.Namespace) -> list[Proc]:
    flags = ("--registry", registry, "--latency-ms", str(args.latency_ms), "--max-inflight", str(args.slots))
    return support_start_workers(tmp, count, *flags, "--log-level", "WARNING", first=first)


def write_tasks(folder: Path, count: int) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for i in range(count):
        (folder / f"t{i:05d}.json").write_text(json.dumps({"task": "bench", "input": {"i": i}, "metadata": {}}))


def run_batch(tmp: Path, registry: str, workers: int, balancer: str, args: argparse.Namespace) -> dict:
    tasks, out = tmp / "tasks", tmp / "out"
    write_tasks(tasks, args.tasks_per_worker * workers)
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "services.client.batch",
        "--registry",
        registry,
        "--service",
        "echo",
        "--input-dir",
        str(tasks),
        "--output-dir",
        str(out),
        "--concurrency",
        str(args.slots * workers),
        "--balancer",
        balancer,
        "--no-progress",
    ]
    done = subprocess.run(cmd, cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=300)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    results = [json.loads(p.read_text()) for p in out.glob("*.json")]
    summary["retried"] = sum(1 for r in results if (r["metadata"].get("attempts") or 0) > 1)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.batch_scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-ms", type=float, default=100.0, help="fixed service time (default: %(default)s)")
    parser.add_argument("--slots", type=int, default=2, help="requests a worker admits at once (default: %(default)s)")
    parser.add_argument("--tasks-per-worker", type=int, default=60, help="(default: %(default)s)")
    parser.add_argument("--sizes", default="1,2,4,8", help="fleet sizes, ascending (default: %(default)s)")
    parser.add_argument("--balancers", default="least_connections,p2c", help="(default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="smoke run: sizes 1,2 and 20 tasks per worker")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.tasks_per_worker = "1,2", 20
    sizes = [int(s) for s in args.sizes.split(",")]
    balancers = [b.strip() for b in args.balancers.split(",")]
    signal.signal(signal.SIGTERM, _exit_on_signal)

    rows: list[tuple[str, int, dict]] = []
    procs: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="batch_scaling_") as tmpdir:
        tmp = Path(tmpdir)
        try:
            registry = start_registry(tmp, "--heartbeat-interval", "1", "--log-level", "WARNING")
            procs.append(registry)
            workers: list[Proc] = []
            with RegistryClient(registry.base_url, watch=False, max_age_s=0) as client:
                for size in sizes:
                    added = start_workers(tmp, registry.base_url, size - len(workers), len(workers), args)
                    workers += added
                    procs += added
                    wait_until(lambda n=size: len(client.instances(name="echo").instances) == n, timeout=30)
                    for balancer in balancers:
                        rows.append((balancer, size, run_batch(tmp, registry.base_url, size, balancer, args)))
        finally:
            for proc in reversed(procs):
                proc.stop()

    ideal = 1000.0 * args.slots / args.latency_ms
    print(
        f"echo workers: fixed {args.latency_ms:g} ms, {args.slots} slot(s) each (ideal {ideal:g} tasks/s per "
        f"worker); concurrency = slots × workers; {args.tasks_per_worker} tasks per worker"
    )
    print(
        f"{'balancer':<20}{'workers':>8}{'tasks':>7}{'tasks/s':>9}{'× linear':>10}{'÷ ideal':>9}"
        f"{'retried':>9}{'failed':>8}"
    )
    one = {b: s["throughput"] for b, n, s in rows if n == sizes[0]}
    for balancer, size, s in rows:
        linear = one[balancer] * size / sizes[0]
        print(
            f"{balancer:<20}{size:>8}{s['total']:>7}{s['throughput']:>9.1f}{s['throughput'] / linear:>10.2f}"
            f"{s['throughput'] / (ideal * size):>9.2f}{s['retried']:>9}{s['failed']:>8}"
        )
    return 0


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
