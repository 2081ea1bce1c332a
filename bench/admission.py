"""Admission control on the AntiBERTy worker: how long a short request waits behind the largest allowed one.

Issue 18's goal: a 20-residue embedding queued behind the largest request the worker admits is
answered in under 2 s. For each configuration the bench starts a real worker process (standalone,
rate limit off), sends the largest allowed request, waits until it is running, then sends
20-residue embeddings one after another and prints their latency (median and worst) while the
big request still runs. Configurations, measured in the same run:

* ``baseline`` — today's scheduling before issue 18: the PLL is one item (``--pass-residues``
  huge, ``--express-residues 0``), so the embedding waits for the whole PLL (capped at
  ``--baseline-timeout`` and printed as "> N s" when it is not answered by then);
* ``slices`` — the PLL is cut into passes of ``--pass-residues`` and the batcher queues fairly,
  so the embedding waits at most for the pass in progress;
* ``slices+express`` — the default: small requests also have their own thread.

The largest allowed request is the default per-request budget (512² residue-passes): one PLL of
a 510-residue chain (``--shape single``) or a /predict/batch of 100 PLLs of 51 residues
(``--shape batch``). Figures only; it never asserts.

    python -m bench.admission [--quick] [--shape single|batch] [--samples 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from tests.support import Proc, read_json_line, spawn, wait_until
from tests.unit.seqmodels.fixtures import TRASTUZUMAB_VH

CONFIGS: dict[str, list[str]] = {
    "baseline": ["--pass-residues", "100000000", "--express-residues", "0"],
    "slices": ["--express-residues", "0"],
    "slices+express": [],
}
SHORT = TRASTUZUMAB_VH[:20]


def chain(length: int) -> str:
    """A ``length``-residue antibody-like chain (the VH repeated), so the model sees real residues."""
    return (TRASTUZUMAB_VH * (length // len(TRASTUZUMAB_VH) + 1))[:length]


def big_request(shape: str) -> tuple[str, dict[str, Any], int]:
    """Path, body and cost (residue-passes) of the largest request the default budget admits."""
    if shape == "single":
        return "/predict", {"sequence": chain(510), "task_type": "pseudo_log_likelihood"}, 510 * 510
    return "/predict/batch", {"sequences": [chain(51)] * 100, "task_type": "pseudo_log_likelihood"}, 100 * 51 * 51


def start(config: str, folder: Path, device: str, threads: int) -> Proc:
    args = ["-m", "seqmodels.antiberty", "--port", "0", "--rate-limit-per-min", "0", "--device", device]
    args += ["--torch-threads", str(threads), "--log-level", "WARNING", "--drain-timeout", "0", *CONFIGS[config]]
    proc = spawn(args, folder / f"antiberty-{config}.log", base_url="")
    proc.base_url = read_json_line(proc, "event", timeout=600)["base_url"]
    wait_until(lambda: requests.get(proc.base_url + "/health/ready", timeout=2).ok, timeout=600, what="ready")
    return proc


def embed(url: str, timeout: float) -> float | None:
    """Seconds until a 20-residue embedding is answered; None when not answered within ``timeout``."""
    body = {"sequence": SHORT, "task_type": "embedding", "options": {"per_residue": False}}
    t0 = time.perf_counter()
    try:
        resp = requests.post(url + "/predict", json=body, timeout=timeout)
    except requests.Timeout:
        return None
    if not resp.ok:
        raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:300]}")
    return time.perf_counter() - t0


def measure(proc: Proc, shape: str, samples: int, timeout: float) -> dict[str, Any]:
    """Latencies of short embeddings sent while the largest allowed request runs."""
    url = proc.base_url
    embed(url, 120)  # warm-up: the first pass pays for lazy initialisation
    path, body, cost = big_request(shape)
    big: dict[str, Any] = {}

    def send_big() -> None:
        t0 = time.perf_counter()
        try:
            big["status"] = requests.post(url + path, json=body, timeout=3600).status_code
        except requests.RequestException as exc:  # the bench stops the worker under it
            big["status"] = type(exc).__name__
        big["seconds"] = time.perf_counter() - t0

    thread = threading.Thread(target=send_big, daemon=True)
    thread.start()
    wait_until(lambda: requests.get(url + "/health", timeout=5).json()["data"]["inflight"] >= 1, timeout=30)
    time.sleep(0.5)  # the batcher has taken the big request's first pass by now
    latencies: list[float | None] = []
    for _ in range(samples):
        if not thread.is_alive():
            break
        latency = embed(url, timeout)
        latencies.append(latency)
        if latency is None:
            break  # blocked: further samples would only wait as long
    answered = [x for x in latencies if x is not None]
    return {
        "cost": cost,
        "samples": len(latencies),
        "answered": len(answered),
        "median_s": statistics.median(answered) if answered else None,
        "worst_s": max(answered) if answered else None,
        "big_still_running": thread.is_alive(),
        "timeout_s": timeout,
    }


def show(value: float | None, timeout: float) -> str:
    return f"> {timeout:.0f} s" if value is None else f"{value:.2f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 samples, baseline capped at 20 s")
    parser.add_argument("--shape", choices=("single", "batch"), default="single")
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--baseline-timeout", type=float, default=60.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    args = parser.parse_args(argv)
    samples = 3 if args.quick else args.samples
    baseline_timeout = 20.0 if args.quick else args.baseline_timeout
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for config in args.configs.split(","):
            proc = start(config, Path(tmp), args.device, args.torch_threads)
            try:
                timeout = baseline_timeout if config == "baseline" else 120.0
                results[config] = measure(proc, args.shape, samples, timeout)
            finally:
                proc.popen.kill()  # the big request may have hours left: no drain
                proc.popen.wait(timeout=30)
            r = results[config]
            print(
                f"{config:>15}: 20-residue embedding behind a {r['cost']:,} residue-pass PLL ({args.shape}): "
                f"median {show(r['median_s'], r['timeout_s'])}, worst {show(r['worst_s'], r['timeout_s'])} "
                f"({r['answered']}/{r['samples']} answered, big request still running: {r['big_still_running']})",
                flush=True,
            )
    base = results.get("baseline")
    for config, r in results.items():
        if config == "baseline" or base is None or r["worst_s"] is None:
            continue
        base_s = base["worst_s"] if base["worst_s"] is not None else base["timeout_s"]
        bound = "≥ " if base["worst_s"] is None else ""
        print(
            f"{config}: worst wait {bound}{base_s / r['worst_s']:.0f}× shorter than baseline; goal < 2 s: "
            f"{'met' if r['worst_s'] < 2.0 else 'NOT met'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
