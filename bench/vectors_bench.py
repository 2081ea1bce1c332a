"""The vector worker's figures: insert throughput, search latency, recall, REST vs gRPC, GenerateEmbedding.

Everything runs as real processes on loopback (a vectors worker on a fresh Milvus Lite file; a
registry and antiberty workers for the embedding part) and is measured from a client here:

* float vectors (N × 512, the AntiBERTy size, cosine): insert throughput over gRPC (batches of
  1,000); the same queries searched with the exact index (FLAT) and then, after ``PUT /index``,
  the approximate one (HNSW, M=16, efConstruction=200, ef=128), each over gRPC and over REST;
  p50/p99 of one query at a time; recall@10 of both against numpy brute force in the same run.
  The vectors are a mixture of 1,000 Gaussian clusters (embeddings cluster; i.i.d. noise in
  512-d is the worst case of every ANN index and no model's output).
* fingerprints (N molecules, 2,048 bits, Tanimoto): the 5,142 Morgan fingerprints of COMPASS's
  training ligands, each expanded into ~20 neighbours by dropping and adding bits (real bit
  densities and correlations); insert throughput; p50/p99 over gRPC and REST, and the top-10
  Tanimoto values against numpy's.
* start-up: the worker is stopped (SIGTERM: it saves its in-process indexes beside the file) and
  started again on the same file: time to ready (it loads the saved indexes) and the same
  answers; then once more with the saved indexes deleted (it rebuilds from the Lite file: ready
  once FLAT answers, and the time until HNSW answers again).
* searches during ``PUT /index``: one client searching in a loop while HNSW builds (the old FLAT
  index keeps answering). The HNSW figures are taken once the worker has saved the new index
  (searches during saves: ``bench/vectors_saves.py``).
* baseline: with the worker gone, the same file is opened here with pymilvus and searched
  directly (``MilvusClient.search``: the Milvus Lite cost the in-process index removes; for
  fingerprints the Milvus path of :mod:`vectors.search`, sparse cosine + exact re-ranking); the
  ratio is Lite direct p50 / service p50 (gRPC, HNSW for floats).
* ``GenerateEmbedding`` (antibody → AntiBERTy through the Router) with 1 and 2 antiberty workers,
  4 concurrent callers: sequences/s.

    OMP_NUM_THREADS=1 python -m bench.vectors_bench --quick --skip-embedding          # 10k
    OMP_NUM_THREADS=1 python -m bench.vectors_bench --n 100000 --fp-n 100000 --skip-embedding

Figures only; it never asserts. On a shared CPU read the ratios first.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import tempfile
import threading
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


def start_worker(tmp: Path, *extra: str, log_name: str = "vectors.log") -> tuple[Proc, GrpcRouter]:
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
    proc = spawn(args, tmp / log_name, "", env=python_env(**ENV))
    proc.base_url = read_json_line(proc, "event", timeout=600)["base_url"]
    wait_until(lambda: requests.get(proc.base_url + "/health/ready", timeout=5).ok, timeout=1800)
    info = wait_until(lambda: requests.get(proc.base_url + "/model/info", timeout=5).json()["data"], timeout=60)
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


def both(router: GrpcRouter, name: str, bodies: list[dict]) -> tuple[list[float], list[float], list[list[str]]]:
    """The same searches over gRPC, then over REST (after a warm-up): latencies of each, gRPC's ids."""
    grpc_client = VectorClient(router, transport="grpc")
    rest_client = VectorClient(router, transport="rest")
    timed_searches(grpc_client, name, bodies[:5])
    timed_searches(rest_client, name, bodies[:5])
    grpc_lat, ids = timed_searches(grpc_client, name, bodies)
    rest_lat, _ = timed_searches(rest_client, name, bodies)
    return grpc_lat, rest_lat, ids


def lat_report(grpc_lat: list[float], rest_lat: list[float]) -> dict[str, float]:
    return {
        "grpc_p50_ms": 1000 * pct(grpc_lat, 50),
        "grpc_p99_ms": 1000 * pct(grpc_lat, 99),
        "rest_p50_ms": 1000 * pct(rest_lat, 50),
        "rest_p99_ms": 1000 * pct(rest_lat, 99),
        "rest_over_grpc_p50": pct(rest_lat, 50) / pct(grpc_lat, 50),
    }


class FloatCase:
    """The float-vector data, queries and numpy truth, kept for the restart and the baseline."""

    def __init__(self, n: int, queries: int) -> None:
        rng = np.random.default_rng(0)
        centers = rng.standard_normal((1000, DIM)).astype(np.float32)
        self.n = n
        self.data = clustered(n, DIM, rng, centers)
        self.qs = clustered(queries, DIM, rng, centers)
        unit = self.data / np.linalg.norm(self.data, axis=1, keepdims=True)
        qunit = self.qs / np.linalg.norm(self.qs, axis=1, keepdims=True)
        self.truth = [[str(i) for i in np.argsort(-(unit @ q))[:TOP_K]] for q in qunit]
        self.bodies = [{"vectors": [q.tolist()], "top_k": TOP_K} for q in self.qs]


class SearchesDuring:
    """One client searching in a loop while the block runs (a rebuild): do searches stall?"""

    def __init__(self, router: GrpcRouter, bodies: list[dict]) -> None:
        self.client = VectorClient(router, transport="grpc")
        self.bodies = bodies
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        i = 0
        while not self._stop.is_set():
            lat, _ = timed_searches(self.client, "floats", [self.bodies[i % len(self.bodies)]])
            self.latencies += lat
            i += 1

    def __enter__(self) -> SearchesDuring:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def figures(self) -> dict[str, float]:
        if not self.latencies:
            return {}
        lat = self.latencies
        return {"p50_ms": 1000 * pct(lat, 50), "p99_ms": 1000 * pct(lat, 99), "max_ms": 1000 * max(lat)}

    def summary(self) -> str:
        f = self.figures()
        return f"p50 {f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms, max {f['max_ms']:.1f} ms" if f else "none"


def bench_float(router: GrpcRouter, case: FloatCase, report: dict[str, Any], snapshots: Path | None = None) -> None:
    grpc_client = VectorClient(router, transport="grpc")
    grpc_client.create_collection({"name": "floats", "dim": DIM, "metric": "cosine", "index": "exact"})
    data = case.data
    rate = insert_all(
        grpc_client,
        "floats",
        lambda a, b: [{"id": str(i), "vector": data[i].tolist()} for i in range(a, b)],
        case.n,
    )
    print(f"float insert: {case.n} x {DIM} at {rate:,.0f} vectors/s (gRPC, batches of {BATCH})", flush=True)
    exact_grpc, exact_rest, exact_ids = both(router, "floats", case.bodies)
    exact_recall = recall(exact_ids, case.truth)
    print(
        f"float exact (FLAT) search: gRPC {ms(exact_grpc)}; REST {ms(exact_rest)}; "
        f"recall@10 vs numpy {exact_recall:.4f}",
        flush=True,
    )
    t0 = time.perf_counter()  # HNSW builds single-threaded: minutes at 100k, beyond the client's default deadline
    during = SearchesDuring(router, case.bodies)
    with during:  # the old (FLAT) index keeps answering while HNSW builds beside it
        VectorClient(router, transport="grpc", deadline=3600).create_index("floats", "approximate")
    build_s = time.perf_counter() - t0
    print(f"during the HNSW build: {len(during.latencies)} searches answered (FLAT), {during.summary()}", flush=True)
    if snapshots is not None:  # the worker saves the new index right after the build: measure after that
        manifest = snapshots / "floats" / "manifest.json"
        wait_until(manifest.exists, timeout=1800, interval=0.2, what="the HNSW index saved after its build")
    approx_grpc, approx_rest, approx_ids = both(router, "floats", case.bodies)
    r = recall(approx_ids, case.truth)
    print(
        f"float HNSW (built in {build_s:.1f} s): gRPC {ms(approx_grpc)}; REST {ms(approx_rest)}; "
        f"recall@10 vs numpy {r:.4f}, vs FLAT {recall(approx_ids, exact_ids):.4f}; "
        f"REST/gRPC p50 {pct(approx_rest, 50) / pct(approx_grpc, 50):.2f}",
        flush=True,
    )
    report["float"] = {
        "n": case.n,
        "dim": DIM,
        "queries": len(case.bodies),
        "insert_per_s": rate,
        "exact": {**lat_report(exact_grpc, exact_rest), "recall_at_10_vs_numpy": exact_recall},
        "hnsw_build_s": build_s,
        "searches_during_build": {"count": len(during.latencies), **during.figures()},
        "hnsw": {
            **lat_report(approx_grpc, approx_rest),
            "recall_at_10_vs_numpy": r,
            "recall_at_10_vs_flat": recall(approx_ids, exact_ids),
        },
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


class FingerprintCase:
    """The fingerprint library, queries and numpy's top-10 Tanimoto values."""

    def __init__(self, n: int, queries: int) -> None:
        rng = random.Random(1)
        self.n = n
        self.library = fingerprint_library(n, rng)
        self.qs = [
            sorted(set(b for b in rng.choice(self.library) if rng.random() > 0.2) | {rng.randrange(2048)})
            for _ in range(queries)
        ]
        dense = np.zeros((n, 2048), dtype=np.uint8)
        for i, bits in enumerate(self.library):
            dense[i, bits] = 1
        counts = dense.sum(axis=1)
        self.truth_scores = []
        for q in self.qs:
            common = dense[:, q].sum(axis=1)
            tan = common / (counts + len(q) - common)
            self.truth_scores.append(sorted(tan, reverse=True)[:TOP_K])
        self.bodies = [{"vectors": [{"on_bits": q}], "top_k": TOP_K} for q in self.qs]


def fp_agreement(client: VectorClient, case: FingerprintCase) -> tuple[list[float], float, int]:
    """Latencies, share of queries whose top-10 Tanimoto values equal numpy's, and how many said exact."""
    latencies, exact_flags, hit_scores = [], [], []
    for body in case.bodies:
        t0 = time.perf_counter()
        answer = client.search("fps", body)
        latencies.append(time.perf_counter() - t0)
        exact_flags.append(answer["exact"])
        hit_scores.append([h["score"] for h in answer["results"][0]])
    # Ties make ids ambiguous: recall compares the top-10 Tanimoto values with numpy's.
    agree = statistics.mean(np.allclose(h, t, atol=1e-6) for h, t in zip(hit_scores, case.truth_scores, strict=True))
    return latencies, agree, sum(exact_flags)


def bench_fingerprints(router: GrpcRouter, case: FingerprintCase, report: dict[str, Any]) -> None:
    client = VectorClient(router, transport="grpc")
    rest = VectorClient(router, transport="rest")
    client.create_collection({"name": "fps", "dim": 2048, "vector_type": "binary"})
    library = case.library
    rate = insert_all(
        client, "fps", lambda a, b: [{"id": str(i), "vector": {"on_bits": library[i]}} for i in range(a, b)], case.n
    )
    print(f"fingerprint insert: {case.n} x 2048 bits at {rate:,.0f} fingerprints/s (gRPC)", flush=True)
    timed_searches(client, "fps", case.bodies[:3])
    latencies, agree, exact = fp_agreement(client, case)
    timed_searches(rest, "fps", case.bodies[:3])
    rest_lat, _ = timed_searches(rest, "fps", case.bodies)
    print(
        f"fingerprint exact Tanimoto search: gRPC {ms(latencies)}; REST {ms(rest_lat)}; "
        f"top-10 Tanimoto equal to numpy in {agree:.1%} of queries; exact flag {exact}/{len(case.bodies)}",
        flush=True,
    )
    report["fingerprints"] = {
        "n": case.n,
        "insert_per_s": rate,
        **lat_report(latencies, rest_lat),
        "top10_equal_numpy": agree,
    }


def restart_once(tmp: Path, fc: FloatCase | None, fpc: FingerprintCase | None, label: str) -> dict[str, Any]:
    """Start a worker on the same file: time to ready, what it loaded or rebuilt, then the same answers.

    With a float collection it also waits until HNSW answers again (a start from Lite serves FLAT
    first and builds HNSW beside it) and measures the searches then.
    """
    t0 = time.perf_counter()
    proc, router = start_worker(tmp, log_name=f"vectors-restart-{label}.log")
    ready_s = time.perf_counter() - t0
    try:
        text = proc.log()
        loaded = re.findall(r"loaded (\w+) from its saved index: (\d+) rows in ([\d.]+) s", text)
        rebuilt = re.findall(r"rebuilt (\w+) from Milvus Lite: (\d+) rows in ([\d.]+) s", text)
        out: dict[str, Any] = {
            "ready_s": ready_s,
            "loaded_from_snapshot": {n: float(sec) for n, _, sec in loaded},
            "rebuilt_from_lite": {n: float(sec) for n, _, sec in rebuilt},
        }
        client = VectorClient(router, transport="grpc")
        if fc is not None:
            url = proc.base_url + "/api/v1/vectors/collections/floats"
            serving = lambda: requests.get(url, timeout=30).json()["data"]["index_info"].get("serving")  # noqa: E731
            wait_until(lambda: serving() == "HNSW", timeout=3600, interval=0.5, what="HNSW serving")
            out["hnsw_serving_s"] = time.perf_counter() - t0
            timed_searches(client, "floats", fc.bodies[:3])
            lat, ids = timed_searches(client, "floats", fc.bodies)
            out["float_recall_at_10_vs_numpy"] = recall(ids, fc.truth)
            out["float_grpc_p50_ms"], out["float_grpc_p99_ms"] = 1000 * pct(lat, 50), 1000 * pct(lat, 99)
        if fpc is not None:
            _, agree, _ = fp_agreement(client, fpc)
            out["fingerprints_top10_equal_numpy"] = agree
        parts = ", ".join(
            [f"{n} loaded {float(sec):.1f} s" for n, _, sec in loaded]
            + [f"{n} rebuilt from Lite {float(sec):.1f} s" for n, _, sec in rebuilt]
        )
        nan = float("nan")
        print(
            f"restart ({label}): ready in {ready_s:.1f} s ({parts}); HNSW answering after "
            f"{out.get('hnsw_serving_s', nan):.1f} s; then float HNSW gRPC p50 "
            f"{out.get('float_grpc_p50_ms', nan):.1f} ms, p99 {out.get('float_grpc_p99_ms', nan):.1f} ms, "
            f"recall@10 vs numpy {out.get('float_recall_at_10_vs_numpy', nan):.4f}, "
            f"fingerprint top-10 equal {out.get('fingerprints_top10_equal_numpy', nan):.1%}",
            flush=True,
        )
        return out
    finally:
        router.close()
        proc.terminate(timeout=600)  # a clean stop saves the in-process indexes: let it finish


def bench_restart(tmp: Path, fc: FloatCase | None, fpc: FingerprintCase | None, report: dict[str, Any]) -> None:
    """Restart on the indexes saved at the clean stop; then with them removed (the rebuild from Lite)."""
    report["restart"] = restart_once(tmp, fc, fpc, "saved index")
    shutil.rmtree(tmp / "bench.db.index", ignore_errors=True)
    report["restart_from_lite"] = restart_once(tmp, fc, fpc, "from Lite")


def bench_baseline(
    tmp: Path, fc: FloatCase | None, fpc: FingerprintCase | None, queries: int, report: dict[str, Any]
) -> None:
    """The same file searched directly with pymilvus (the worker is gone: a Lite file is one process's)."""
    from pymilvus import MilvusClient

    from vectors import search as searching
    from vectors.store import MilvusStore

    out: dict[str, Any] = {"queries": queries}
    if fc is not None:
        client = MilvusClient(uri=str(tmp / "bench.db"))
        client.load_collection("floats")
        lat = []
        for q in [q.tolist() for q in fc.qs[: queries + 1]]:
            t0 = time.perf_counter()
            client.search("floats", [q], anns_field="vector", limit=TOP_K, output_fields=["metadata"])
            lat.append(time.perf_counter() - t0)
        lat = lat[1:]  # the first one loads segments
        hnsw = report["float"]["hnsw"]["grpc_p50_ms"]
        flat = report["float"]["exact"]["grpc_p50_ms"]
        out["float_lite_p50_ms"], out["float_lite_p99_ms"] = 1000 * pct(lat, 50), 1000 * pct(lat, 99)
        out["float_lite_over_service_hnsw_p50"] = out["float_lite_p50_ms"] / hnsw
        out["float_lite_over_service_flat_p50"] = out["float_lite_p50_ms"] / flat
        print(
            f"baseline, direct Lite MilvusClient.search on the same file ({len(lat)} queries): {ms(lat)}; "
            f"Lite/service p50: {out['float_lite_over_service_hnsw_p50']:.0f}x (HNSW), "
            f"{out['float_lite_over_service_flat_p50']:.0f}x (FLAT)",
            flush=True,
        )
        client.close()
    if fpc is not None:
        store = MilvusStore(str(tmp / "bench.db"))
        cfg = store.config("fps")
        lat = []
        for q in fpc.qs[: queries + 1]:
            t0 = time.perf_counter()
            searching.search(store, cfg, [q], TOP_K, "", False)
            lat.append(time.perf_counter() - t0)
        lat = lat[1:]
        out["fp_lite_p50_ms"], out["fp_lite_p99_ms"] = 1000 * pct(lat, 50), 1000 * pct(lat, 99)
        out["fp_lite_over_service_p50"] = out["fp_lite_p50_ms"] / report["fingerprints"]["grpc_p50_ms"]
        print(
            f"baseline, fingerprints through Lite (sparse cosine + exact re-rank, {len(lat)} queries): {ms(lat)}; "
            f"Lite/service p50 {out['fp_lite_over_service_p50']:.0f}x",
            flush=True,
        )
        store.close()
    report["baseline_lite_direct"] = out


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
    parser.add_argument("--n", type=int, default=100_000, help="float vectors (0: skip)")
    parser.add_argument("--fp-n", type=int, default=100_000, help="fingerprints (0: skip)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--baseline-queries", type=int, default=20, help="direct Lite searches (slow: ~0.5 s each at 10k)"
    )
    parser.add_argument("--calls", type=int, default=24, help="GenerateEmbedding calls per configuration")
    parser.add_argument("--skip-embedding", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.quick:
        args.n, args.fp_n, args.queries, args.calls = 10_000, 10_000, 50, 12
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="vectors-bench-") as tmp_name:
        tmp = Path(tmp_name)
        fc = FloatCase(args.n, args.queries) if args.n else None
        fpc = FingerprintCase(args.fp_n, args.queries) if args.fp_n else None
        proc, router = start_worker(tmp)
        try:
            if fc is not None:
                bench_float(router, fc, report, tmp / "bench.db.index")
            if fpc is not None:
                bench_fingerprints(router, fpc, report)
        finally:
            router.close()
            proc.terminate(timeout=600)  # saves the in-process indexes beside the file
        bench_restart(tmp, fc, fpc, report)
        bench_baseline(tmp, fc, fpc, args.baseline_queries, report)
        if not args.skip_embedding:
            bench_embedding(tmp, report, args.calls)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
