"""The vector worker's figures: insert throughput, search latency, recall, REST vs gRPC, GenerateEmbedding.

Everything runs as real processes on loopback (a vectors worker on a fresh Milvus Lite file; a
registry and antiberty workers for the embedding part) and is measured from a client here:

* float vectors (N × 512, the AntiBERTy size, cosine): insert throughput over gRPC (batches of
  1,000); the same 200 queries searched with the exact index (FLAT) and then, after
  ``PUT /index``, the approximate one (HNSW, M=16, efConstruction=200, ef=128); p50/p99 of one
  query at a time; recall@10 of HNSW against FLAT in the same run (FLAT itself is checked against
  numpy brute force). The vectors are a mixture of 1,000 Gaussian clusters (embeddings cluster;
  i.i.d. noise in 512-d is the worst case of every ANN index and no model's output).
* fingerprints (N molecules, 2,048 bits, Tanimoto): the 5,142 Morgan fingerprints of COMPASS's
  training ligands, each expanded into ~20 neighbours by dropping and adding bits (real bit
  densities and correlations); insert throughput; p50/p99 and recall@10 against numpy Tanimoto.
* the same search over REST and over gRPC: p50 of each and their ratio.
* ``GenerateEmbedding`` (antibody → AntiBERTy through the Router) with 1 and 2 antiberty workers,
  4 concurrent callers: sequences/s.

    OMP_NUM_THREADS=1 python -m bench.vectors_bench [--quick] [--n 100000] [--skip-embedding]

Figures only; it never asserts. On a shared CPU read the ratios first.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import requests

from services.client.discovery import StaticDiscovery
from services.client.grpc_router import GrpcRouter
from tests.support import REGISTRY_FLAGS, TOKEN, Proc, python_env, read_json_line, spawn, start_registry, wait_until
from tests.unit.seqmodels.fixtures import TRASTUZUMAB_VH
from vectors.client import MODELS, VectorClient
from vectors.proto import vectors_pb2 as pb

DIM = 512
TOP_K = 10
BATCH = 1000
ENV = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def pct(data: list[float], q: float) -> float:
    ordered = sorted(data)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def ms(data: list[float]) -> str:
    return f"p50 {1000 * pct(data, 50):.1f} ms, p99 {1000 * pct(data, 99):.1f} ms"


def clustered(n: int, dim: int, rng: np.random.Generator, centers: np.ndarray) -> np.ndarray:
    picks = rng.integers(0, len(centers), n)
    data = centers[picks] + 0.35 * rng.standard_normal((n, dim)).astype(np.float32)
    return data.astype(np.float32)


def start_worker(tmp: Path, *extra: str) -> tuple[Proc, GrpcRouter]:
    args = [
        "-m",
        "vectors.worker",
        "--port",
        "0",
        "--milvus-uri",
        str(tmp / "bench.db"),
        "--max-items",
        "2000",
        "--max-body-bytes",
        str(64 * 1024 * 1024),
        "--max-grpc-message-bytes",
        str(64 * 1024 * 1024),
        *extra,
    ]
    proc = spawn(args, tmp / "vectors.log", "", env=python_env(**ENV))
    proc.base_url = read_json_line(proc, "event", timeout=120)["base_url"]
    info = wait_until(lambda: requests.get(proc.base_url + "/model/info", timeout=5).json()["data"], timeout=60)
    wait_until(lambda: requests.get(proc.base_url + "/health/ready", timeout=5).ok, timeout=120)
    host, port = proc.base_url.rsplit("//", 1)[1].rsplit(":", 1)
    instance = {
        "instance_id": "bench",
        "service_name": "vectors",
        "host": host,
        "port": int(port),
        "base_url": proc.base_url,
        "status": "passing",
        "metadata": {"grpc_port": info["grpc_port"], "capabilities": ["vector-search"]},
    }
    router = GrpcRouter(
        StaticDiscovery([instance]),
        deadline_s=600,
        grpc_options=[
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ],
    )
    return proc, router


def insert_all(client: VectorClient, name: str, items: Callable[[int, int], list[dict]], n: int) -> float:
    t0 = time.perf_counter()
    for start in range(0, n, BATCH):
        client.insert(name, items(start, min(n, start + BATCH)))
    return n / (time.perf_counter() - t0)


def timed_searches(client: VectorClient, name: str, bodies: list[dict]) -> tuple[list[float], list[list[str]]]:
    latencies, ids = [], []
    for body in bodies:
        t0 = time.perf_counter()
        answer = client.search(name, body)
        latencies.append(time.perf_counter() - t0)
        ids.append([h["id"] for h in answer["results"][0]])
    return latencies, ids


def recall(found: list[list[str]], truth: list[list[str]]) -> float:
    return statistics.mean(len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True))


def bench_float(router: GrpcRouter, n: int, queries: int, report: dict[str, Any]) -> None:
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((1000, DIM)).astype(np.float32)
    data = clustered(n, DIM, rng, centers)
    qs = clustered(queries, DIM, rng, centers)
    grpc_client = VectorClient(router, transport="grpc")
    rest_client = VectorClient(router, transport="rest")
    grpc_client.create_collection({"name": "floats", "dim": DIM, "metric": "cosine", "index": "exact"})
    rate = insert_all(
        grpc_client,
        "floats",
        lambda a, b: [{"id": str(i), "vector": data[i].tolist()} for i in range(a, b)],
        n,
    )
    print(f"float insert: {n} x {DIM} at {rate:,.0f} vectors/s (gRPC, batches of {BATCH})", flush=True)
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    qunit = qs / np.linalg.norm(qs, axis=1, keepdims=True)
    truth = [[str(i) for i in np.argsort(-(unit @ q))[:TOP_K]] for q in qunit]
    bodies = [{"vectors": [q.tolist()], "top_k": TOP_K} for q in qs]
    timed_searches(grpc_client, "floats", bodies[:5])  # warm: first searches load segments
    exact_lat, exact_ids = timed_searches(grpc_client, "floats", bodies)
    print(f"float exact (FLAT) search, gRPC: {ms(exact_lat)}; recall@10 vs numpy {recall(exact_ids, truth):.4f}")
    t0 = time.perf_counter()
    grpc_client.create_index("floats", "approximate")
    build_s = time.perf_counter() - t0
    timed_searches(grpc_client, "floats", bodies[:5])
    approx_lat, approx_ids = timed_searches(grpc_client, "floats", bodies)
    rest_lat, _ = timed_searches(rest_client, "floats", bodies)
    r = recall(approx_ids, exact_ids)
    print(f"float HNSW: built in {build_s:.1f} s; search gRPC {ms(approx_lat)}; recall@10 vs FLAT {r:.4f}")
    ratio = pct(rest_lat, 50) / pct(approx_lat, 50)
    print(f"float HNSW search over REST: {ms(rest_lat)}; REST/gRPC p50 ratio {ratio:.2f}")
    report["float"] = {
        "n": n,
        "dim": DIM,
        "insert_per_s": rate,
        "exact_p50_ms": 1000 * pct(exact_lat, 50),
        "exact_p99_ms": 1000 * pct(exact_lat, 99),
        "hnsw_build_s": build_s,
        "hnsw_p50_ms": 1000 * pct(approx_lat, 50),
        "hnsw_p99_ms": 1000 * pct(approx_lat, 99),
        "recall_at_10": r,
        "exact_recall_vs_numpy": recall(exact_ids, truth),
        "rest_p50_ms": 1000 * pct(rest_lat, 50),
        "rest_p99_ms": 1000 * pct(rest_lat, 99),
        "rest_over_grpc_p50": pct(rest_lat, 50) / pct(approx_lat, 50),
    }


def fingerprint_library(n: int, rng: random.Random) -> list[list[int]]:
    """``n`` fingerprints: COMPASS's training ligands and perturbed copies of them (drop 15 %, add 1-3 bits)."""
    from compass.model.lite_format import load_lite

    domain = load_lite(Path(__file__).resolve().parents[1] / "compass" / "weights" / "compass-lite.skops").domain
    seeds = [np.flatnonzero(row).tolist() for row in np.unpackbits(domain.fps, axis=1)]
    out = [s for s in seeds if s][:n]
    while len(out) < n:
        base = rng.choice(seeds)
        kept = [b for b in base if rng.random() > 0.15]
        kept += rng.sample(range(2048), rng.randint(1, 3))
        if kept:
            out.append(sorted(set(kept)))
    return out


def bench_fingerprints(router: GrpcRouter, n: int, queries: int, report: dict[str, Any]) -> None:
    rng = random.Random(1)
    library = fingerprint_library(n, rng)
    client = VectorClient(router, transport="grpc")
    client.create_collection({"name": "fps", "dim": 2048, "vector_type": "binary"})
    rate = insert_all(
        client, "fps", lambda a, b: [{"id": str(i), "vector": {"on_bits": library[i]}} for i in range(a, b)], n
    )
    print(f"fingerprint insert: {n} x 2048 bits at {rate:,.0f} fingerprints/s (gRPC)", flush=True)
    qs = [
        sorted(set(b for b in rng.choice(library) if rng.random() > 0.2) | {rng.randrange(2048)})
        for _ in range(queries)
    ]
    dense = np.zeros((n, 2048), dtype=np.uint8)
    for i, bits in enumerate(library):
        dense[i, bits] = 1
    counts = dense.sum(axis=1)
    truth_scores = []
    for q in qs:
        common = dense[:, q].sum(axis=1)
        tan = common / (counts + len(q) - common)
        truth_scores.append(sorted(tan, reverse=True)[:TOP_K])
    bodies = [{"vectors": [{"on_bits": q}], "top_k": TOP_K} for q in qs]
    timed_searches(client, "fps", bodies[:3])
    latencies, exact_flags, hit_scores = [], [], []
    for body in bodies:
        t0 = time.perf_counter()
        answer = client.search("fps", body)
        latencies.append(time.perf_counter() - t0)
        exact_flags.append(answer["exact"])
        hit_scores.append([h["score"] for h in answer["results"][0]])
    # Ties make ids ambiguous: recall compares the top-10 Tanimoto values with numpy's.
    agree = statistics.mean(np.allclose(h, t, atol=1e-6) for h, t in zip(hit_scores, truth_scores, strict=True))
    print(
        f"fingerprint Tanimoto search (sparse cosine + exact re-rank): {ms(latencies)}; "
        f"top-10 Tanimoto equal to numpy in {agree:.1%} of queries; exact flag {sum(exact_flags)}/{len(bodies)}"
    )
    report["fingerprints"] = {
        "n": n,
        "insert_per_s": rate,
        "p50_ms": 1000 * pct(latencies, 50),
        "p99_ms": 1000 * pct(latencies, 99),
        "top10_equal_numpy": agree,
    }


def bench_embedding(tmp: Path, report: dict[str, Any], calls: int) -> None:
    registry = start_registry(tmp, *REGISTRY_FLAGS)
    env = python_env(**ENV, REGISTRY_TOKEN=TOKEN)
    procs = [registry]
    try:
        vec = spawn(
            [
                "-m",
                "vectors.worker",
                "--port",
                "0",
                "--registry",
                registry.base_url,
                "--milvus-uri",
                str(tmp / "emb.db"),
            ],
            tmp / "emb-vectors.log",
            "",
            env=env,
        )
        procs.append(vec)
        read_json_line(vec, "event", timeout=120)
        ab_args = [
            "-m",
            "seqmodels.antiberty",
            "--port",
            "0",
            "--registry",
            registry.base_url,
            "--torch-threads",
            "1",
            "--rate-limit-per-min",
            "0",
        ]
        results = {}
        for workers in (1, 2):
            ab = spawn(ab_args, tmp / f"antiberty{workers}.log", "", env=env)
            procs.append(ab)
            read_json_line(ab, "event", timeout=300)
            with GrpcRouter(registry.base_url, deadline_s=300) as router:
                wait_until(
                    lambda w=workers: (
                        sum(i.status == "passing" for i in router.discovery.lookup("antiberty").instances) >= w
                    ),
                    timeout=300,
                    what="antiberty workers",
                )
                wait_until(lambda: router.discovery.lookup("vector-search").instances, timeout=60)
                rng = random.Random(workers)

                def one(_: int, r: GrpcRouter = router, rng: random.Random = rng) -> str:
                    seq = list(TRASTUZUMAB_VH)
                    seq[rng.randrange(len(seq))] = rng.choice("ACDEFGHIKLMNPQRSTVWY")
                    req = pb.EmbeddingRequest(kind="antibody", sequence="".join(seq))
                    res = r.unary(
                        "vector-search", MODELS + "GenerateEmbedding", req, response_type=pb.Embedding, idempotent=True
                    )
                    return res.data.served_by

                one(0)
                t0 = time.perf_counter()
                with ThreadPoolExecutor(4) as pool:
                    served = list(pool.map(one, range(calls)))
                rate = calls / (time.perf_counter() - t0)
            results[workers] = rate
            print(
                f"GenerateEmbedding (antibody, AntiBERTy) with {workers} antiberty worker(s), 4 callers: "
                f"{rate:.2f} sequences/s over {len(set(served))} worker(s)",
                flush=True,
            )
        print(f"GenerateEmbedding scaling 2 vs 1 workers: {results[2] / results[1]:.2f}x")
        report["generate_embedding"] = {"per_s_1_worker": results[1], "per_s_2_workers": results[2]}
    finally:
        for p in reversed(procs):
            p.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k vectors and fingerprints, 50 queries")
    parser.add_argument("--n", type=int, default=100_000, help="float vectors")
    parser.add_argument("--fp-n", type=int, default=100_000, help="fingerprints")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--calls", type=int, default=24, help="GenerateEmbedding calls per configuration")
    parser.add_argument("--skip-embedding", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.quick:
        args.n, args.fp_n, args.queries, args.calls = 10_000, 10_000, 50, 12
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="vectors-bench-") as tmp_name:
        tmp = Path(tmp_name)
        proc, router = start_worker(tmp)
        try:
            bench_float(router, args.n, args.queries, report)
            bench_fingerprints(router, args.fp_n, args.queries, report)
        finally:
            router.close()
            proc.stop()
        if not args.skip_embedding:
            bench_embedding(tmp, report, args.calls)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
