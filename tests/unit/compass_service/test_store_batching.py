"""The SQLite store (paging, compare-and-set, active model) and the micro-batcher (batches, models, errors)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compass.data.graph import FeatureSettings
from compass.service.served import ForwardPasses, ServedModel
from compass.service.store import Store
from tests.support import wait_until


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "db.sqlite")


def job(job_id: str, status: str, created: str) -> dict[str, Any]:
    return {"id": job_id, "status": status, "created_at": created, "updated_at": created, "plan_json": {"seed": 1}}


def test_rows_round_trip_page_and_filter(store: Store) -> None:
    for i in range(5):
        store.insert("jobs", job(f"j{i}", "running" if i % 2 else "failed", f"2026-01-0{i + 1}T00:00:00Z"))
    assert store.get("jobs", "j1")["plan"] == {"seed": 1}
    rows, total = store.list("jobs", limit=2, offset=1)
    assert total == 5 and [r["id"] for r in rows] == ["j3", "j2"]  # newest first
    rows, total = store.list("jobs", where={"status": ["running"]})
    assert total == 2 and {r["id"] for r in rows} == {"j1", "j3"}
    assert store.list("jobs", where={"status": []}) == ([], 0)
    store.update("jobs", "j1", status="completed", progress_json={"step": 3})
    assert store.get("jobs", "j1")["progress"] == {"step": 3}
    assert store.delete("jobs", "j1") and store.get("jobs", "j1") is None
    with pytest.raises(ValueError):
        store.get("sqlite_master", "x")


def test_compare_and_set_lets_one_replica_win(store: Store, tmp_path: Path) -> None:
    store.insert("jobs", {**job("j", "running", "2026-01-01T00:00:00Z"), "owner": "dead"})
    other = Store(tmp_path / "db.sqlite")  # a second replica on the same file
    assert store.update_where("jobs", "j", {"owner": "dead"}, owner="a")
    assert not other.update_where("jobs", "j", {"owner": "dead"}, owner="b")
    assert other.get("jobs", "j")["owner"] == "a"


def test_active_model_versions_only_grow(store: Store) -> None:
    assert store.active("compass") == (None, 0)
    v1 = store.set_active("compass", "m1")
    v2 = store.set_active("compass", "m2")
    assert v2 > v1 and store.active("compass") == ("m2", v2)
    assert store.active_kinds("m2") == ["compass"] and store.active_kinds("m1") == []


class FakePredictor:
    """Records each forward pass; predicts ``offset + index`` so answers can be traced."""

    kind = "compass-lite"
    feature_settings = FeatureSettings()

    def __init__(self, offset: float = 0.0, gate: threading.Event | None = None, fail: bool = False) -> None:
        self.meta: dict[str, Any] = {}
        self.offset, self.gate, self.fail = offset, gate, fail
        self.batches: list[int] = []

    def predict(self, graphs: list[Any], batch_size: int = 32) -> np.ndarray:
        self.batches.append(len(graphs))
        if self.gate is not None and not self.gate.wait(timeout=10):  # a pass held until the test opens it
            raise TimeoutError("the test never opened the gate")
        if self.fail:
            raise RuntimeError("boom")
        return np.array([self.offset + g for g in graphs], dtype=float)


def served(predictor: FakePredictor, name: str = "m") -> ServedModel:
    return ServedModel(name, name, "compass-lite", predictor)


def run_concurrently(
    batcher: ForwardPasses, model: ServedModel, n: int, while_running: Callable[[], None] | None = None
) -> list[Any]:
    results: list[Any] = [None] * n
    barrier = threading.Barrier(n)

    def call(i: int) -> None:
        barrier.wait()
        results[i] = batcher.score([i], model)[0]  # type: ignore[list-item]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    if while_running is not None:
        while_running()
    for t in threads:
        t.join()
    return results


def test_concurrent_requests_share_forward_passes() -> None:
    """While one pass runs (held by the gate), the other requests queue up and share the next ones."""
    predictor = FakePredictor(offset=100.0, gate=threading.Event())
    observed: list[int] = []
    batcher = ForwardPasses(max_batch=8, max_wait_s=0.05, observe=lambda n, _s: observed.append(n))

    def release_when_queued() -> None:
        wait_until(
            lambda: predictor.batches and predictor.batches[0] + batcher.queued == 20,
            timeout=10,
            what="a pass running and the rest queued behind it",
        )
        predictor.gate.set()

    results = run_concurrently(batcher, served(predictor), 20, release_when_queued)
    assert [r.pK for r in results] == [100.0 + i for i in range(20)]
    assert sum(predictor.batches) == 20 and len(predictor.batches) < 20 and max(predictor.batches) <= 8
    assert observed == predictor.batches and all(r.batch_size >= 1 for r in results)
    batcher.close()


def test_batching_off_runs_each_request_alone() -> None:
    predictor = FakePredictor()
    batcher = ForwardPasses(max_batch=1, max_wait_s=0.05)
    run_concurrently(batcher, served(predictor), 6)
    assert predictor.batches == [1] * 6 and not batcher.enabled


def test_a_batch_never_mixes_models_and_errors_reach_every_waiter() -> None:
    old, new = FakePredictor(offset=0.0), FakePredictor(offset=1000.0)
    batcher = ForwardPasses(max_batch=16, max_wait_s=0.1)
    out: dict[str, Any] = {}
    threads = [
        threading.Thread(target=lambda: out.setdefault("old", batcher.score([1, 2], served(old, "old")))),
        threading.Thread(target=lambda: out.setdefault("new", batcher.score([3], served(new, "new")))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [s.pK for s in out["old"]] == [1.0, 2.0] and out["new"][0].pK == 1003.0
    assert out["new"][0].model.id == "new" and sum(old.batches) == 2 and new.batches == [1]
    with pytest.raises(RuntimeError, match="boom"):
        batcher.score([1, 2], served(FakePredictor(fail=True)))
    assert batcher.score([5], served(old))[0].pK == 5.0  # the batching thread survived
    batcher.close()


class OverlapPredictor(FakePredictor):
    """Counts forward passes running at the same time."""

    def __init__(self) -> None:
        super().__init__(gate=threading.Event())
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def predict(self, graphs: list[Any], batch_size: int = 32) -> np.ndarray:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            return super().predict(graphs, batch_size)
        finally:
            with self.lock:
                self.running -= 1


def test_several_batching_threads_run_forward_passes_side_by_side() -> None:
    predictor = OverlapPredictor()
    batcher = ForwardPasses(max_batch=4, max_wait_s=0.01, workers=2)

    def release_when_two_run() -> None:
        wait_until(lambda: predictor.running == 2, timeout=10, what="two forward passes running at once")
        predictor.gate.set()

    results = run_concurrently(batcher, served(predictor), 8, release_when_two_run)
    assert [r.pK for r in results] == [float(i) for i in range(8)]
    assert predictor.most == 2 and sum(predictor.batches) == 8
    batcher.close()
    assert all(not t.is_alive() for t in batcher.batcher._threads)
