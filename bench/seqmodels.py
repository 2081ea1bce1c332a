"""Throughput and latency of the sequence workers over HTTP, and the gain from dynamic batching.

Each worker runs as its own process (standalone, rate limit off) with its real weights:
antiberty (embedding of a 120-residue VH), splice (a 1,000-nt DNA window, 5-model ensemble),
codon (optimising a 100-residue protein for E. coli under GC, site and homopolymer
constraints) and hf (a tiny 2-layer ESM the bench saves itself: the adapter's own overhead).
For every worker it prints sequences/s and p50/p99 latency of

* batch 1: one ``POST /predict`` at a time;
* batch 32: ``POST /predict/batch`` with 32 sequences (latency is per call);

then, for antiberty and splice, 16 concurrent clients sending ``POST /predict`` to a worker
with dynamic batching on (``--batch-size 16``) and off (``--batch-size 1``): the gain is the
ratio of the two throughputs. Figures only; it never asserts.

    python -m bench.seqmodels [--quick] [--kinds antiberty,splice,codon,hf] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from tests.support import Proc, read_json_line, spawn, wait_until
from tests.unit.seqmodels.fixtures import GFP, HBB_REGION, TRASTUZUMAB_VH

KINDS = ("antiberty", "splice", "codon", "hf")
BATCHED_KINDS = ("antiberty", "splice")


def pct(data: list[float], q: float) -> float:
    ordered = sorted(data)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def workload(kind: str, rng: random.Random) -> tuple[Callable[[], str], dict[str, Any]]:
    """A sequence generator and the task type/options every request of ``kind`` uses."""
    if kind == "antiberty":
        return lambda: _mutate(TRASTUZUMAB_VH, rng, "ACDEFGHIKLMNPQRSTVWY"), {
            "task_type": "embedding",
            "options": {"per_residue": False},
        }
    if kind == "hf":
        return lambda: _mutate(GFP[:120], rng, "ACDEFGHIKLMNPQRSTVWY"), {"task_type": "embedding"}
    if kind == "splice":
        dna = (HBB_REGION * 2)[:1000]
        return lambda: _mutate(dna, rng, "ACGT"), {"task_type": "splice", "options": {"scores": False}}
    options = {"gc_min": 0.35, "gc_max": 0.65, "avoid_sites": ["EcoRI", "BsaI"], "max_homopolymer": 6}
    return lambda: _mutate(GFP[:100], rng, "ACDEFGHIKLMNPQRSTVWY"), {"task_type": "optimize", "options": options}


def _mutate(seq: str, rng: random.Random, letters: str) -> str:
    """A few point mutations, so no two requests are byte-identical."""
    chars = list(seq)
    for _ in range(3):
        chars[rng.randrange(1, len(chars))] = rng.choice(letters)
    return "".join(chars)


def start(kind: str, folder: Path, device: str, batch_size: int, model_dir: Path | None) -> Proc:
    args = ["-m", f"seqmodels.{kind}", "--port", "0", "--rate-limit-per-min", "0", "--device", device]
    args += ["--batch-size", str(batch_size), "--max-inflight", "64", "--log-level", "WARNING"]
    if kind == "hf" and model_dir is not None:
        args += ["--model-dir", str(model_dir)]
    proc = spawn(args, folder / f"{kind}-b{batch_size}.log", base_url="")
    proc.base_url = read_json_line(proc, "event", timeout=300)["base_url"]
    wait_until(lambda: requests.get(proc.base_url + "/health/ready", timeout=2).ok, timeout=300, what=f"{kind} ready")
    return proc


def timed(fn: Callable[[], requests.Response]) -> float:
    t0 = time.perf_counter()
    resp = fn()
    elapsed = time.perf_counter() - t0
    if not resp.ok:
        raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:300]}")
    return elapsed


def single(session: requests.Session, url: str, make: Callable[[], str], extra: dict, n: int) -> list[float]:
    return [
        timed(lambda: session.post(url + "/predict", json={"sequence": make(), **extra}, timeout=600)) for _ in range(n)
    ]


def batched(session: requests.Session, url: str, make: Callable[[], str], extra: dict, n: int) -> list[float]:
    return [
        timed(
            lambda: session.post(
                url + "/predict/batch", json={"sequences": [make() for _ in range(32)], **extra}, timeout=600
            )
        )
        for _ in range(n)
    ]


def concurrent(
    url: str, make: Callable[[], str], extra: dict, clients: int, per_client: int
) -> tuple[float, list[float]]:
    """Throughput (sequences/s) and latencies of ``clients`` threads sending one request at a time."""
    bodies = [[{"sequence": make(), **extra} for _ in range(per_client)] for _ in range(clients)]

    def client(work: list[dict]) -> list[float]:
        with requests.Session() as session:
            return [timed(lambda b=b: session.post(url + "/predict", json=b, timeout=600)) for b in work]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [x for part in pool.map(client, bodies) for x in part]
    return clients * per_client / (time.perf_counter() - t0), latencies


def line(kind: str, mode: str, sequences: int, latencies: list[float], elapsed: float) -> dict[str, Any]:
    row = {
        "kind": kind,
        "mode": mode,
        "sequences_per_s": round(sequences / elapsed, 2),
        "p50_ms": round(pct(latencies, 50) * 1000, 1),
        "p99_ms": round(pct(latencies, 99) * 1000, 1),
        "calls": len(latencies),
    }
    print(
        f"{kind:<10}{mode:<22}{row['sequences_per_s']:>10.2f}{row['p50_ms']:>11.1f}{row['p99_ms']:>11.1f}", flush=True
    )
    return row


def bench_kind(kind: str, folder: Path, args: argparse.Namespace, model_dir: Path | None) -> list[dict[str, Any]]:
    rng = random.Random(0)
    make, extra = workload(kind, rng)
    n1, n32 = (6, 1) if args.quick else (40, 4)
    if kind in ("splice", "codon") and not args.quick:
        n1, n32 = 16, 2
    rows = []
    proc = start(kind, folder, args.device, 16, model_dir)
    try:
        with requests.Session() as session:
            single(session, proc.base_url, make, extra, 2)  # warm-up
            lat = single(session, proc.base_url, make, extra, n1)
            rows.append(line(kind, "batch 1", n1, lat, sum(lat)))
            lat = batched(session, proc.base_url, make, extra, n32)
            rows.append(line(kind, "batch 32", 32 * n32, lat, sum(lat)))
        if kind in BATCHED_KINDS and not args.no_concurrency:
            per_client = 2 if args.quick else 6
            on, lat_on = concurrent(proc.base_url, make, extra, 16, per_client)
            rows.append(line(kind, "16 clients, batching", 16 * per_client, lat_on, 16 * per_client / on))
    finally:
        proc.stop()
    if kind in BATCHED_KINDS and not args.no_concurrency:
        proc = start(kind, folder, args.device, 1, model_dir)
        try:
            single(requests.Session(), proc.base_url, make, extra, 2)
            off, lat_off = concurrent(proc.base_url, make, extra, 16, per_client)
            rows.append(line(kind, "16 clients, no batch", 16 * per_client, lat_off, 16 * per_client / off))
        finally:
            proc.stop()
        print(f"{kind:<10}{'dynamic batching gain':<22}{on / off:>10.2f}x", flush=True)
        rows.append({"kind": kind, "mode": "dynamic batching gain", "ratio": round(on / off, 2)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.seqmodels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few requests per figure (a smoke run)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="workers to measure (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument("--no-concurrency", action="store_true", help="skip the 16-client dynamic batching runs")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON lines")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-seqmodels-") as tmp:
        folder = Path(tmp)
        model_dir = None
        if "hf" in kinds:
            from tests.unit.seqmodels.tiny_hf import build_tiny_esm

            model_dir = build_tiny_esm(folder / "tiny-esm")
        print(f"device={args.device} quick={args.quick}")
        print(f"{'kind':<10}{'mode':<22}{'seq/s':>10}{'p50 ms':>11}{'p99 ms':>11}", flush=True)
        for kind in kinds:
            rows += bench_kind(kind, folder, args, model_dir)
    if args.json:
        args.json.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
