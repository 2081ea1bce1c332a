"""Rebuilds beside the old index (searches answered, writes replayed) and the reader-writer lock."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support import wait_until
from vectors import front as front_module
from vectors.rows import Rows
from vectors.rwlock import RWLock
from vectors.service import VectorService
from vectors.settings import VectorSettings
from vectors.store import MilvusStore

pytest.importorskip("milvus_lite")
pytest.importorskip("faiss")


def test_readers_share_and_a_writer_is_alone() -> None:
    lock = RWLock()
    both_in = threading.Barrier(2, timeout=30)  # only passes if two readers hold the lock at once

    def reader() -> None:
        with lock.read():
            both_in.wait()

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not both_in.broken
    inside: list[str] = []
    with lock.write():
        t = threading.Thread(target=lambda: lock.read().__enter__() or inside.append("reader"))
        t.start()
        t.join(0.2)
        assert inside == []  # the reader waits for the writer
    t.join(30)
    assert inside == ["reader"]


def test_searches_and_writes_go_on_while_a_new_index_builds(tmp_path: Path) -> None:
    service = VectorService(MilvusStore(str(tmp_path / "r.db")), VectorSettings(max_items=2000))
    rng = np.random.default_rng(3)
    data = rng.standard_normal((6000, 48)).astype(np.float32)
    service.create_collection({"name": "c", "dim": 48, "metric": "l2", "index": "exact"})
    for start in range(0, len(data), 2000):
        items = [{"id": str(i), "vector": data[i].tolist()} for i in range(start, start + 2000)]
        service.insert("c", {"items": items})
    assert service.front is not None
    copy = service.front.copy(service.store.config("c"))
    body = {"index": "approximate", "index_params": {"M": 32, "efConstruction": 400}}
    put = threading.Thread(target=service.create_index, args=("c", body))
    put.start()
    wait_until(lambda: copy.building, timeout=120, interval=0.001, what="the new index to start building")
    deadline = time.monotonic() + 120
    during: list[dict] = []
    while copy.building and time.monotonic() < deadline:  # answered by the old (FLAT) index meanwhile
        answer = service.search("c", {"vector": data[17].tolist(), "top_k": 3})
        if copy.building:
            during.append(answer)
        if len(during) == 1:
            service.insert("c", {"items": [{"id": "late", "vector": (data[17] + 0.001).tolist()}]})
            service.delete("c", {"ids": ["18"]})
    put.join(120)
    assert during, "no search was answered while the index was building"
    assert all(a["exact"] and a["results"][0][0]["id"] == "17" for a in during)
    info = service.describe_index("c")["info"]
    assert (info["index_type"], info["serving"], info["rebuilding"]) == ("HNSW", "HNSW", False)
    after = service.search("c", {"vector": data[17].tolist(), "top_k": 2})
    assert after["exact"] is False and {h["id"] for h in after["results"][0]} == {"17", "late"}  # replayed
    assert "18" not in {h["id"] for h in service.search("c", {"vector": data[18].tolist(), "top_k": 5})["results"][0]}
    service.close()


def test_a_start_from_lite_serves_flat_at_once_and_swaps_in_hnsw(tmp_path: Path) -> None:
    db = tmp_path / "start.db"
    service = VectorService(MilvusStore(str(db)), VectorSettings(max_items=2000))
    data = np.random.default_rng(4).standard_normal((1500, 16)).astype(np.float32)
    service.create_collection({"name": "h", "dim": 16, "index": "approximate"})
    service.insert("h", {"items": [{"id": str(i), "vector": v.tolist()} for i, v in enumerate(data)]})
    service.store.close()  # no clean shutdown: nothing saved, the next start reads Lite
    again = VectorService(MilvusStore(str(db)), VectorSettings())
    assert again.front is not None
    again.front.warm()
    first = again.search("h", {"vector": data[5].tolist(), "top_k": 1})
    assert first["results"][0][0]["id"] == "5"
    wait_until(lambda: again.describe_index("h")["info"]["serving"] == "HNSW", timeout=120, what="HNSW swapped in")
    assert again.describe_index("h")["info"]["serving"] == "HNSW"
    assert again.search("h", {"vector": data[5].tolist(), "top_k": 1})["exact"] is False
    again.close()


def test_deletes_replayed_onto_a_compaction_that_cross_the_mark_again_compact_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deletes made while a compaction builds land on the new index as dead rows; past the mark they compact too."""
    monkeypatch.setattr(front_module, "MIN_DEAD", 4)
    held, started = threading.Event(), threading.Event()
    original = Rows.rebuild_later

    def held_build(self: Rows, cfg):  # the build waits until the test has deleted more rows
        build = original(self, cfg)

        def wait_then_build() -> Rows:
            started.set()
            held.wait(60)
            return build()

        return wait_then_build

    monkeypatch.setattr(Rows, "rebuild_later", held_build)
    service = VectorService(MilvusStore(str(tmp_path / "d.db")), VectorSettings(max_items=2000))
    service.create_collection({"name": "d", "dim": 4, "metric": "l2", "index": "exact"})
    service.insert("d", {"items": [{"id": f"p{i}", "vector": [float(i), 0, 0, 0]} for i in range(40)]})
    service.delete("d", {"ids": [f"p{i}" for i in range(10)]})  # 10 of 40 dead: the first compaction starts
    assert started.wait(60), "the compaction did not start"
    service.delete("d", {"ids": [f"p{i}" for i in range(10, 20)]})  # made during it: replayed as dead rows
    held.set()
    copy = service.front.copy(service.store.config("d"))
    wait_until(lambda: copy.index.rows.dead < 4, timeout=60, interval=0.02, what="the second compaction")
    hits = service.search("d", {"vector": [0.0, 0, 0, 0], "top_k": 40})["results"][0]
    assert sorted(h["id"] for h in hits) == sorted(f"p{i}" for i in range(20, 40))
    service.close()
