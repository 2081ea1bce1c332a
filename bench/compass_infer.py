"""Inference cost of both COMPASS models on CPU: per-complex latency and batch throughput.

Per complex, p50/p99 with preprocessing (read the files, crop, featurise) and without (the
graph is ready); then complexes/s at batch 1, 8 and 32 from ready graphs. Inputs are CASF-2016
complexes (pocket PDB + SDF). Prints figures; never asserts.

    python -m bench.compass_infer [--quick] [--data ../shared/data/casf2016] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from compass.data import featurize_files, list_records
from compass.model.checkpoint import load_checkpoint
from compass.predict import SHIPPED, resolve_model
from compass.settings import data_dir


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=data_dir() / "casf2016")
    parser.add_argument("--quick", action="store_true", help="40 complexes, 2 rounds of each batch size")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (one core per worker)")
    parser.add_argument("--models", default=",".join(SHIPPED), help="shipped names or checkpoint files")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    _, records, _ = list_records(args.data)
    records = records[: 40 if args.quick else 200]
    rounds = 2 if args.quick else 5
    print(f"{len(records)} complexes from {args.data}, {args.threads} thread(s)")
    for name in args.models.split(","):
        predictor = load_checkpoint(resolve_model(name))
        settings = predictor.feature_settings
        graphs, with_prep, model_only = [], [], []
        for r in records:
            t0 = time.perf_counter()
            graph, _ = featurize_files(r.protein_path, r.ligand_paths, settings, key=r.key)
            t1 = time.perf_counter()
            predictor.predict([graph], batch_size=1)
            t2 = time.perf_counter()
            graphs.append(graph)
            with_prep.append((t2 - t0) * 1e3)
            model_only.append((t2 - t1) * 1e3)
        print(
            f"{name:<13} per complex: with preprocessing p50 {statistics.median(with_prep):7.1f} ms"
            f"  p99 {percentile(with_prep, 99):7.1f} ms | model only p50 {statistics.median(model_only):7.1f} ms"
            f"  p99 {percentile(model_only, 99):7.1f} ms"
        )
        for bs in (1, 8, 32):
            best = 0.0
            for _ in range(rounds):
                t0 = time.perf_counter()
                predictor.predict(graphs, batch_size=bs)
                best = max(best, len(graphs) / (time.perf_counter() - t0))
            print(f"{name:<13} batch {bs:>2}: {best:8.1f} complexes/s (best of {rounds})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
