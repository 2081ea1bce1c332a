"""Searches while the vector worker saves its in-process index: do saves stall them?

Two steps, so that the expensive part (inserting 100k rows into Lite and building HNSW) runs once
and every code version under test starts from the same files:

    OMP_NUM_THREADS=2 python -m bench.vectors_saves build --n 100000 --out /tmp/vsaves-100k
    OMP_NUM_THREADS=1 python -m bench.vectors_saves probe --fixture /tmp/vsaves-100k
    OMP_NUM_THREADS=1 python -m bench.vectors_saves restart --fixture /tmp/vsaves-100k --runs 2

``build`` fills a Milvus Lite file in-process (``VectorService``, no transport): ``floats``
(N × 512 cosine, 1,000 Gaussian clusters, HNSW M 16 / efConstruction 200) and ``fps`` (N
2,048-bit fingerprints: COMPASS's training ligands and perturbed copies), then closes the service,
which saves both indexes beside the file. ``probe`` copies the fixture to a temporary folder,
starts a worker on it (``--index-save-s 1``: a changed collection is saved ~2-3 s after its last
write), and measures one search at a time from this process, over gRPC and over REST:

* quiet: no writes, hence no saves;
* saving: cycles of (upsert one row, then search in a loop until that write's save has committed
  its manifest, and 0.3 s more); each cycle holds one save of the whole collection (a watcher
  polls the snapshot folder for the new manifest). Searches overlapping a save, as the worker's
  log dates it ("saved NAME: N rows in S s", logged when it ends), are reported as "in a save"
  too, and all the cycle's searches as "all".

``restart`` times a start on a copy of the fixture: until ``/health/ready``, one search and then
one upsert (a new id) per collection right after it, until the background check of each
loaded snapshot's ids against Lite has finished (``index_info.snapshot_check`` of each
collection; a worker without that check finishes it before ready), and one more upsert per
collection after that (the same write on a settled worker).

Figures only; it never asserts. Run the same fixture against two code trees (``git archive`` a
commit into a folder and run the probe from there) for a before/after on the same machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

from bench.vectors_bench import DIM, TOP_K, FingerprintCase, clustered, pct, start_worker
from tests.support import wait_until
from vectors.client import VectorClient

COLLECTIONS = ("floats", "fps")
PENDING = ("queued", "running")  # states of a background ids check that has not ended


def build(n: int, out: Path, queries: int) -> None:
    from vectors.service import VectorService
    from vectors.settings import VectorSettings
    from vectors.store import MilvusStore

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((1000, DIM)).astype(np.float32)
    data = clustered(n, DIM, rng, centers)
    qs = clustered(queries, DIM, rng, centers)
    fpc = FingerprintCase(n, queries)
    np.save(out / "queries.npy", qs)
    (out / "fp_queries.json").write_text(json.dumps(fpc.qs))
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    qunit = qs / np.linalg.norm(qs, axis=1, keepdims=True)
    truth = [[str(i) for i in np.argsort(-(unit @ q))[:TOP_K]] for q in qunit]
    (out / "truth.json").write_text(json.dumps(truth))
    (out / "fp_truth.json").write_text(json.dumps([[float(s) for s in t] for t in fpc.truth_scores]))
    store = MilvusStore(str(out / "bench.db"))
    svc = VectorService(store, VectorSettings(max_items=2000))
    t0 = time.perf_counter()
    svc.create_collection({"name": "floats", "dim": DIM, "metric": "cosine", "index": "exact"})
    for a in range(0, n, 1000):
        svc.insert(
            "floats", {"items": [{"id": str(i), "vector": data[i].tolist()} for i in range(a, min(n, a + 1000))]}
        )
    print(f"floats inserted in {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    svc.create_index("floats", {"index": "approximate"})
    print(f"HNSW built in {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    svc.create_collection({"name": "fps", "dim": 2048, "vector_type": "binary"})
    lib = fpc.library
    for a in range(0, n, 1000):
        items = [{"id": str(i), "vector": {"on_bits": lib[i]}} for i in range(a, min(n, a + 1000))]
        svc.insert("fps", {"items": items})
    print(f"fingerprints inserted in {time.perf_counter() - t0:.1f} s", flush=True)
    svc.close()  # saves both indexes beside the file
    print(f"fixture in {out}: {sorted(p.name for p in out.iterdir())}", flush=True)


class SaveWatcher:
    """Polls ``<file>.index/<name>/``: (start, end) of each save (first new token file → its manifest)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.saves: list[tuple[float, float]] = []
        self.commits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _manifest_token(self) -> str | None:
        try:
            files = json.loads((self.folder / "manifest.json").read_text())["files"]
        except (OSError, ValueError, KeyError):
            return None
        return next(iter(files.values())).split("-", 1)[1].split(".", 1)[0]

    def _loop(self) -> None:
        seen = {p.name for p in self.folder.iterdir()}
        current = self._manifest_token()
        started: dict[str, float] = {}
        while not self._stop.is_set():
            now = time.perf_counter()
            try:
                names = {p.name for p in self.folder.iterdir()}
            except OSError:
                names = set()
            for name in names - seen:
                if name.startswith(("index-", "rows-")):
                    started.setdefault(name.split("-", 1)[1].split(".", 1)[0], now)
            seen = names
            token = self._manifest_token()
            if token and token != current:
                current = token
                self.commits += 1
                if token in started:
                    self.saves.append((started.pop(token), now))
            time.sleep(0.002)

    def __enter__(self) -> SaveWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def logged_saves(text: str, name: str) -> list[tuple[float, float]]:
    """(start, end) in wall-clock seconds of each save of ``name`` the worker logged (end - duration: ±0.05 s)."""
    out = []
    for stamp, secs in re.findall(
        rf"^(\S+ \S+) INFO vectors\.snapshot \S+ saved {name}: \d+ rows in ([\d.]+) s", text, re.M
    ):
        end = datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        out.append((end - float(secs) - 0.05, end + 0.001))
    return out


def figures(lat: list[tuple[float, float]]) -> dict[str, Any]:
    d = [b - a for a, b in lat]
    if not d:
        return {"count": 0}
    return {"count": len(d), "p50_ms": 1000 * pct(d, 50), "p99_ms": 1000 * pct(d, 99), "max_ms": 1000 * max(d)}


def show(label: str, f: dict[str, Any]) -> str:
    if not f.get("count"):
        return f"{label}: none"
    return f"{label}: n {f['count']}, p50 {f['p50_ms']:.1f}, p99 {f['p99_ms']:.1f}, max {f['max_ms']:.1f} ms"


def probe(fixture: Path, queries: int, cycles: int, report: dict[str, Any]) -> None:
    qs = np.load(fixture / "queries.npy")[:queries]
    fq = json.loads((fixture / "fp_queries.json").read_text())[:queries]
    truth = json.loads((fixture / "truth.json").read_text())[:queries]
    fp_truth = json.loads((fixture / "fp_truth.json").read_text())[:queries]
    bodies = {
        "floats": [{"vectors": [q.tolist()], "top_k": TOP_K} for q in qs],
        "fps": [{"vectors": [{"on_bits": q}], "top_k": TOP_K} for q in fq],
    }
    rng = np.random.default_rng(5)
    with tempfile.TemporaryDirectory(prefix="vectors-saves-") as tmp_name:
        tmp = Path(tmp_name)
        copy_fixture(fixture, tmp)
        t0 = time.perf_counter()
        proc, router = start_worker(tmp, "--index-save-s", "1")
        report["ready_s"] = time.perf_counter() - t0
        print(f"ready in {report['ready_s']:.1f} s", flush=True)
        try:
            clients = {t: VectorClient(router, transport=t) for t in ("grpc", "rest")}
            for name in COLLECTIONS:
                for transport, client in clients.items():
                    for body in bodies[name][:5]:
                        client.search(name, body)
                    lat, ids, scores = [], [], []
                    for body in bodies[name]:
                        a = time.perf_counter()
                        answer = client.search(name, body)
                        lat.append((a, time.perf_counter()))
                        ids.append([h["id"] for h in answer["results"][0]])
                        scores.append([h["score"] for h in answer["results"][0]])
                    f = figures(lat)
                    if name == "floats":
                        f["recall_at_10"] = float(
                            np.mean([len(set(a) & set(b)) / TOP_K for a, b in zip(ids, truth, strict=True)])
                        )
                        quality = f"recall@10 vs numpy {f['recall_at_10']:.3f}"
                    else:  # ties make ids ambiguous: the top-10 Tanimoto values against numpy's
                        f["top10_equal_numpy"] = float(
                            np.mean([np.allclose(a, b, atol=1e-6) for a, b in zip(scores, fp_truth, strict=True)])
                        )
                        quality = f"top-10 Tanimoto equal to numpy in {f['top10_equal_numpy']:.1%}"
                    report[f"{name}/{transport}/quiet"] = f
                    print(show(f"{name} {transport} quiet", f) + ", " + quality, flush=True)
            for name in COLLECTIONS:
                folder = tmp / "bench.db.index" / name
                for transport, client in clients.items():
                    lat: list[tuple[float, float]] = []
                    with SaveWatcher(folder) as watch:
                        for c in range(cycles):
                            item = {"id": f"probe-{c}"}
                            if name == "floats":
                                item["vector"] = rng.standard_normal(DIM).astype(np.float32).tolist()
                            else:
                                item["vector"] = {"on_bits": sorted(random.Random(c).sample(range(2048), 40))}
                            commits = watch.commits
                            clients["grpc"].upsert(name, [item])
                            deadline = time.perf_counter() + 30
                            done_at = None
                            i = 0
                            while time.perf_counter() < deadline:
                                body = bodies[name][i % len(bodies[name])]
                                a = time.time()
                                client.search(name, body)
                                lat.append((a, time.time()))
                                i += 1
                                if done_at is None and watch.commits > commits:
                                    done_at = time.perf_counter()
                                if done_at is not None and time.perf_counter() > done_at + 0.3:
                                    break
                    saves = [w for w in logged_saves(proc.log(), name) if w[1] >= lat[0][0]]
                    inside = [s for s in lat if any(a <= s[1] and s[0] <= b for a, b in saves)]
                    durations = [b - a - 0.051 for a, b in saves]
                    f_all, f_in = figures(lat), figures(inside)
                    report[f"{name}/{transport}/saving"] = {
                        "all": f_all,
                        "in_save": f_in,
                        "saves": len(saves),
                        "save_s_median": float(np.median(durations)) if durations else None,
                    }
                    print(
                        f"{name} {transport} with saves ({len(saves)} saves, median "
                        f"{np.median(durations) if durations else float('nan'):.2f} s): "
                        + show("all", f_all)
                        + "; "
                        + show("in a save", f_in),
                        flush=True,
                    )
        finally:
            router.close()
            proc.terminate(timeout=600)
            text = proc.log()
            report["log_saves"] = [ln for ln in text.splitlines() if "saved " in ln][-4:]


def copy_fixture(fixture: Path, tmp: Path) -> None:
    """The Lite file and its saved indexes into ``tmp`` (a run writes to them; the fixture stays as built)."""
    for part in ("bench.db", "bench.db.index"):  # Lite's "file" is a folder
        copy = shutil.copytree if (fixture / part).is_dir() else shutil.copy
        copy(fixture / part, tmp / part)


def check_state(base_url: str, name: str) -> str:
    """The state of the background ids check of ``name`` ("none" when the worker reports none)."""
    url = f"{base_url}/api/v1/vectors/collections/{name}"
    info = requests.get(url, timeout=30).json()["data"]["index_info"]
    return info.get("snapshot_check", {}).get("state", "none")


def restart_once(fixture: Path) -> dict[str, Any]:
    """One start on a copy of the fixture: ready, a search and an upsert per collection, the end of the ids checks."""
    qs = np.load(fixture / "queries.npy")[:1]
    fq = json.loads((fixture / "fp_queries.json").read_text())[:1]
    bodies = {
        "floats": {"vectors": [qs[0].tolist()], "top_k": TOP_K},
        "fps": {"vectors": [{"on_bits": fq[0]}], "top_k": TOP_K},
    }
    out: dict[str, Any] = {"load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="vectors-restart-") as tmp_name:
        tmp = Path(tmp_name)
        copy_fixture(fixture, tmp)
        t0 = time.perf_counter()
        proc, router = start_worker(tmp)
        out["ready_s"] = time.perf_counter() - t0
        try:
            client = VectorClient(router, transport="grpc")
            for name in COLLECTIONS:
                a = time.perf_counter()
                client.search(name, bodies[name])
                out[f"{name}_first_search_ms"] = 1000 * (time.perf_counter() - a)
                out[f"{name}_check_at_first_search"] = check_state(proc.base_url, name)
            for name in COLLECTIONS:  # a write right after ready: it used to wait for the ids check
                vector = bodies[name]["vectors"][0]
                a = time.perf_counter()
                client.upsert(name, [{"id": "restart-probe", "vector": vector}])
                out[f"{name}_first_write_ms"] = 1000 * (time.perf_counter() - a)
                out[f"{name}_check_at_first_write"] = check_state(proc.base_url, name)
            for name in COLLECTIONS:
                # each poll asks Lite for the row count too: not too often, it competes with the check
                wait_until(lambda n=name: check_state(proc.base_url, n) not in PENDING, timeout=600, interval=0.5)
                out[f"{name}_check_state"] = check_state(proc.base_url, name)
            out["checks_done_s"] = time.perf_counter() - t0
            for name in COLLECTIONS:  # the same write once the checks are over: the baseline
                a = time.perf_counter()
                client.upsert(name, [{"id": "restart-probe-2", "vector": bodies[name]["vectors"][0]}])
                out[f"{name}_write_after_check_ms"] = 1000 * (time.perf_counter() - a)
            checked = r"checked the saved index of (\w+) against Milvus Lite in ([\d.]+) s"
            text = proc.log()
            out["checked_in_log"] = re.findall(checked, text)
            steps = ("checked ", "loaded ", "ids of ", "vectors on ", "saved index", "ready")
            out["log"] = [ln for ln in text.splitlines() if any(w in ln for w in steps)]
        finally:
            router.close()
            proc.terminate(timeout=600)
    out["load_after"] = os.getloadavg()
    return out


def restart(fixture: Path, runs: int, report: dict[str, Any]) -> None:
    """``runs`` starts on fresh copies of the fixture, one after the other."""
    report["restarts"] = []
    for run in range(runs):
        r = restart_once(fixture)
        report["restarts"].append(r)
        searches = ", ".join(
            f"{n} first search {r[f'{n}_first_search_ms']:.0f} ms (check {r[f'{n}_check_at_first_search']}), "
            f"first upsert {r[f'{n}_first_write_ms']:.0f} ms (check {r[f'{n}_check_at_first_write']}), "
            f"upsert after the checks {r[f'{n}_write_after_check_ms']:.0f} ms"
            for n in COLLECTIONS
        )
        states = ", ".join(f"{n} {r[n + '_check_state']}" for n in COLLECTIONS)
        print(
            f"run {run + 1}: ready in {r['ready_s']:.1f} s; {searches}; ids checks done at {r['checks_done_s']:.1f} s "
            f"({states}; log: {r['checked_in_log']}); "
            f"load average {r['load_before'][0]:.2f} -> {r['load_after'][0]:.2f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--n", type=int, default=100_000)
    b.add_argument("--queries", type=int, default=200)
    b.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("probe")
    p.add_argument("--fixture", type=Path, required=True)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--cycles", type=int, default=8)
    p.add_argument("--json", type=Path)
    r = sub.add_parser("restart")
    r.add_argument("--fixture", type=Path, required=True)
    r.add_argument("--runs", type=int, default=2)
    r.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.cmd == "build":
        build(args.n, args.out, args.queries)
        return
    report: dict[str, Any] = {"load_before": os.getloadavg()}
    if args.cmd == "restart":
        restart(args.fixture, args.runs, report)
    else:
        probe(args.fixture, args.queries, args.cycles, report)
    report["load_after"] = os.getloadavg()
    print(f"load average before {report['load_before']}, after {report['load_after']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
