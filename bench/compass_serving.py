"""/predict throughput and latency through the Router: 1 and 2 COMPASS workers, micro-batching on and off.

Each scenario starts its workers (``python -m compass.service.worker``, the real process) under
one registry, warms them up, then ``--clients`` threads sharing one Router send ``--requests``
JSON /predict calls (complexes of ../shared/data/casf2016 in turn). Printed per scenario:
requests/s, p50/p99 latency, failures and the mean micro-batch size (from the workers'
``compass_batch_size`` histograms); then 2-worker/1-worker and batching on/off ratios.
Goals (issue 6): 2 workers ≥ 1.6× one, batching raises throughput at 16 clients. On a CPU-only
host featurisation (RDKit, per request) dominates and both workers share the same cores.

    python -m bench.compass_serving [--model compass-lite|compass] [--clients 16] [--requests 400]
                                    [--max-workers 1|2] [--quick]

The model is the shipped checkpoint when present, else one built here (compass-lite trained on
the benchmark complexes; compass: the default ViSNet architecture, untrained — same compute).
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from services.client import Router
from tests.support import (
    REGISTRY_FLAGS,
    SHARED_DATA,
    TOKEN,
    Proc,
    python_env,
    read_json_line,
    spawn,
    start_registry,
    wait_until,
)

IDS_LIMIT = 32


def complexes(limit: int) -> list[tuple[str, dict[str, str]]]:
    root = SHARED_DATA / "casf2016"
    rows = list(csv.DictReader((root / "index.csv").open()))[:limit]
    out = []
    for row in rows:
        folder = root / row["pdb_id"]
        body = {
            "protein_pdb": (folder / f"{row['pdb_id']}_pocket.pdb").read_text(),
            "ligand_sdf": (folder / f"{row['pdb_id']}_ligand.sdf").read_text(),
        }
        out.append((row["pdb_id"], body))
    return out


def checkpoint(kind: str, folder: Path) -> Path:
    """The shipped weights, else a checkpoint of the same architecture built here."""
    from compass.predict import SHIPPED
    from compass.settings import weights_dir

    shipped = weights_dir() / SHIPPED[kind]
    if shipped.is_file():
        return shipped
    from compass.data import FeatureSettings, featurize_files

    settings = FeatureSettings()
    if kind == "compass":
        from compass.model import CompassViSNet, ViSNetConfig, save_checkpoint

        return save_checkpoint(
            CompassViSNet(ViSNetConfig(y_mean=6.0)), folder / "c.safetensors", feature_settings=settings
        )
    from compass.data.graph import ComplexRecord
    from compass.model.lite import save_lite, train_lite

    root = SHARED_DATA / "casf2016"
    graphs, records = [], []
    for row in list(csv.DictReader((root / "index.csv").open()))[:IDS_LIMIT]:
        pdb = row["pdb_id"]
        graph, _ = featurize_files(root / pdb / f"{pdb}_pocket.pdb", [root / pdb / f"{pdb}_ligand.sdf"], settings)
        graphs.append(graph)
        records.append(ComplexRecord(pdb, "", [], float(row["pK"]), pdb))
    return save_lite(train_lite(graphs, records, {"max_iter": 100}, 0, settings), folder / "lite.skops")


def start_worker(tmp: Path, registry: str, kind: str, weights: Path, batching: bool, index: int) -> Proc:
    batch = ["--max-batch", "32", "--max-wait-ms", "5"] if batching else ["--max-batch", "1"]
    args = ["-m", "compass.service.worker", "--model", kind, "--port", "0", "--registry", registry, "--weights"]
    name = f"worker{index}-{'batching' if batching else 'single'}"  # a fresh log: its first ready line is ours
    args += [str(weights), "--state-dir", str(tmp / name), "--log-level", "WARNING", *batch]
    proc = spawn(args, tmp / f"{name}.log", "", env=python_env(REGISTRY_TOKEN=TOKEN))
    try:
        proc.base_url = read_json_line(proc, "event", timeout=120)["base_url"]
        wait_until(lambda: requests.get(proc.base_url + "/health/ready", timeout=2).ok, timeout=120, what="ready")
    except BaseException:
        proc.stop()  # never leave a half-started worker behind
        raise
    return proc


def passing(registry: Proc, kind: str) -> int:
    params = {"name": kind, "status": "passing"}
    resp = requests.get(registry.base_url + "/api/v1/services", params=params, timeout=5)
    return len(resp.json()["data"]["instances"])


def batch_totals(workers: list[Proc]) -> tuple[float, float]:
    count = total = 0.0
    for worker in workers:
        text = requests.get(worker.base_url + "/metrics", timeout=5).text
        count += float(re.search(r"^compass_batch_size_count (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
        total += float(re.search(r"^compass_batch_size_sum (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
    return count, total


def load(router: Router, kind: str, bodies: list[dict[str, str]], clients: int, total: int) -> dict[str, Any]:
    latencies: list[float] = []
    failures: list[str] = []
    served: dict[str, int] = {}
    lock = threading.Lock()
    counter = iter(range(total))

    def client() -> None:
        for i in counter:
            t0 = time.perf_counter()
            try:
                result = router.call(kind, "POST", "/predict", json=bodies[i % len(bodies)], deadline=60)
            except Exception as exc:  # counted, not raised: a benchmark reports failures
                with lock:
                    failures.append(type(exc).__name__)
                continue
            with lock:
                latencies.append(time.perf_counter() - t0)
                served[result.instance] = served.get(result.instance, 0) + 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": 1e3 * statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": 1e3 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else float("nan"),
        "failures": len(failures),
        "per_instance": sorted(served.values()),
    }


def scenario(tmp: Path, registry: Proc, args: argparse.Namespace, weights: Path, batching: bool) -> list[dict]:
    bodies = [b for _, b in complexes(IDS_LIMIT)]
    workers: list[Proc] = []
    results = []
    try:
        for n in range(1, args.max_workers + 1):
            while len(workers) < n:
                workers.append(start_worker(tmp, registry.base_url, args.model, weights, batching, len(workers)))
            wait_until(lambda n=n: passing(registry, args.model) == n, timeout=30, what=f"{n} workers registered")
            with Router(registry.base_url, balancer="least_connections") as router:
                load(router, args.model, bodies, args.clients, 2 * args.clients)  # warm-up
                before = batch_totals(workers)
                row = load(router, args.model, bodies, args.clients, args.requests)
                after = batch_totals(workers)
            passes = after[0] - before[0]
            row.update(workers=n, batching=batching, mean_batch=(after[1] - before[1]) / passes if passes else 0.0)
            results.append(row)
            print(
                f"workers={n} batching={'on ' if batching else 'off'} {row['rps']:7.1f} req/s  "
                f"p50 {row['p50_ms']:7.1f} ms  p99 {row['p99_ms']:7.1f} ms  mean batch {row['mean_batch']:5.2f}  "
                f"failures {row['failures']}  per instance {row['per_instance']}",
                flush=True,
            )
    finally:
        for worker in workers:
            worker.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compass_serving", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("compass-lite", "compass"), default="compass-lite")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--max-workers", type=int, choices=(1, 2), default=2, help="fleet sizes 1..N")
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests = min(args.requests, 96)
    if not (SHARED_DATA / "casf2016").is_dir():
        print(f"needs {SHARED_DATA / 'casf2016'}")
        return 2
    with tempfile.TemporaryDirectory(prefix="compass-serving-") as name:
        tmp = Path(name)
        weights = checkpoint(args.model, tmp)
        registry = start_registry(tmp, *REGISTRY_FLAGS)
        try:
            rows = scenario(tmp, registry, args, weights, batching=True)
            rows += scenario(tmp, registry, args, weights, batching=False)
        finally:
            registry.stop()
    by = {(r["workers"], r["batching"]): r["rps"] for r in rows}
    for batching in (True, False):
        if (2, batching) in by:
            ratio = by[2, batching] / by[1, batching]
            print(f"2 workers / 1 worker, batching {'on' if batching else 'off'}: {ratio:.2f}×")
    for n in range(1, args.max_workers + 1):
        print(f"batching on / off, {n} worker(s), {args.clients} clients: {by[n, True] / by[n, False]:.2f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
