"""Saved in-process indexes: loaded when they match Lite, refused when they do not, never stale after kill -9.

Real Milvus Lite files throughout; the kill -9 runs in a child process that kills itself right
after a write reached Lite, before anything could update the snapshot. The check of Lite's ids
runs after the snapshot is loaded, in the background: tests make it observably slow by holding
``MilvusStore.ids`` until they release it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from services.common.envelope import ApiError, ErrorCode
from tests.support import wait_until
from vectors import front as front_module
from vectors import snapshot
from vectors.service import VectorService
from vectors.settings import VectorSettings
from vectors.snapshot import MANIFEST
from vectors.store import MilvusStore
from vectors.worker import VectorModel

pytest.importorskip("milvus_lite")
faiss = pytest.importorskip("faiss")

SETTINGS = VectorSettings(max_items=2000, max_top_k=500)
ROOT = Path(__file__).resolve().parents[3]


def open_service(path: Path) -> VectorService:
    service = VectorService(MilvusStore(str(path)), SETTINGS)
    assert service.front is not None
    service.front.warm()
    return service


def fill(service: VectorService) -> dict[str, list[dict]]:
    """An HNSW, a FLAT and a fingerprint collection with deletes and an upsert; the queries to ask them."""
    rng = np.random.default_rng(11)
    data = rng.standard_normal((600, 16)).astype(np.float32)
    queries: dict[str, list[dict]] = {}
    for name, index, metric in (("hnsw", "approximate", "cosine"), ("flat", "exact", "l2")):
        service.create_collection({"name": name, "dim": 16, "metric": metric, "index": index})
        items = [
            {"id": f"{name}{i}", "vector": v.tolist(), "metadata": {"i": i, "odd": i % 2}} for i, v in enumerate(data)
        ]
        service.insert(name, {"items": items})
        service.delete(name, {"ids": [f"{name}{i}" for i in range(0, 40, 3)]})
        service.upsert(name, {"items": [{"id": f"{name}5", "vector": data[300].tolist(), "metadata": {"moved": 1}}]})
        queries[name] = [{"vector": q.tolist(), "top_k": 7} for q in data[295:305]]
        queries[name].append(
            {"vector": data[3].tolist(), "top_k": 5, "filter": [{"key": "odd", "op": "==", "value": 1}]}
        )
    r = random.Random(12)
    service.create_collection({"name": "fps", "dim": 256, "vector_type": "binary"})
    library = [sorted(r.sample(range(256), r.randint(3, 30))) for _ in range(300)]
    service.insert("fps", {"items": [{"id": f"m{i}", "vector": {"on_bits": b}} for i, b in enumerate(library)]})
    service.delete("fps", {"ids": ["m1", "m2"]})
    queries["fps"] = [{"vectors": [{"on_bits": b}], "top_k": 6, "include_vector": True} for b in library[:8]]
    return queries


def answers(service: VectorService, queries: dict[str, list[dict]]) -> dict[str, list[dict]]:
    return {name: [service.search(name, q) for q in qs] for name, qs in queries.items()}


def check_state(service: VectorService, name: str) -> str:
    return service.describe_index(name)["info"].get("snapshot_check", {}).get("state", "none")


def checks_done(service: VectorService, names: list[str] | dict[str, list[dict]]) -> bool:
    return all(check_state(service, n) in ("passed", "refused") for n in names)


class HeldIds:
    """``MilvusStore.ids`` that waits for :meth:`release` once it has yielded ``after`` ids (of the first
    collection it scans; ``seen`` records them): an ids check as slow as the test wants, where it wants."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, after: int = 0) -> None:
        self.started, self.released = threading.Event(), threading.Event()
        self.seen: list[str] = []
        real = MilvusStore.ids

        def held(store: MilvusStore, name: str) -> Iterator[str]:
            first = not self.started.is_set()
            for n, item in enumerate(real(store, name)):
                if first and n == after:
                    self.started.set()
                    assert self.released.wait(120), "the test never released the ids check"
                if first and not self.released.is_set():
                    self.seen.append(item)
                yield item
            if first and not self.started.is_set():  # fewer ids than ``after``
                self.started.set()
                assert self.released.wait(120), "the test never released the ids check"

        monkeypatch.setattr(MilvusStore, "ids", held)

    def release(self) -> None:
        self.released.set()


def test_a_restart_loads_the_saved_index_and_answers_identically(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "s.db"
    service = open_service(db)
    queries = fill(service)
    before = answers(service, queries)
    service.close()  # a clean shutdown saves
    for name in queries:
        assert (Path(str(db) + ".index") / name / MANIFEST).is_file()
    caplog.clear()  # only the reopening counts (an earlier test may have left INFO records captured)
    with caplog.at_level(logging.INFO, logger="vectors"):
        again = open_service(db)
    loaded = {r.getMessage().split()[1] for r in caplog.records if "from its saved index" in r.getMessage()}
    assert loaded == set(queries) and "from Milvus Lite" not in caplog.text
    assert again.describe_index("hnsw")["info"]["serving"] == "HNSW"
    assert answers(again, queries) == before  # the same HNSW graph: the same answers, not merely similar
    again.insert("hnsw", {"items": [{"id": "new", "vector": [1.0] * 16}]})
    assert again.search("hnsw", {"vector": [1.0] * 16, "top_k": 1})["results"][0][0]["id"] == "new"
    again.close()


def test_a_snapshot_that_lite_contradicts_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By row count before loading; by ids in the background check, which then rebuilds from Lite; a write
    made during that check lands on the rebuilt copy, and an insert checks its ids against Lite until the
    check has passed (memory, from the contradicted snapshot, does not know the intruder)."""
    db = tmp_path / "stale.db"
    service = open_service(db)
    queries = fill(service)
    service.close()
    other = MilvusStore(str(db))  # another program writes the file behind the snapshot's back
    other.delete("flat", ["flat1"])  # same ids count as a new one below: only the digest can tell
    other.insert("flat", [{"id": "intruder", "vector": [0.5] * 16, "metadata": {}}])
    other.delete("hnsw", ["hnsw2"])  # one row fewer: the row count tells
    other.close()
    (Path(str(db) + ".index") / "fps" / "rows-corrupt.npz").write_bytes(b"x")  # stray file: ignored
    held = HeldIds(monkeypatch)
    with caplog.at_level(logging.INFO, logger="vectors"):
        again = open_service(db)
        assert "Lite has 585 rows, the snapshot 586" in caplog.text  # the row count: refused before loading
        assert "loaded fps from its saved index" in caplog.text and "loaded flat from its saved index" in caplog.text
        wait_until(held.started.is_set, timeout=30, what="the ids check to start")
        again.insert("flat", {"items": [{"id": "waited", "vector": [-0.5] * 16}]})  # does not wait for the check
        with pytest.raises(ApiError) as clash:
            again.insert("flat", {"items": [{"id": "intruder", "vector": [0.1] * 16}]})
        assert clash.value.code == ErrorCode.CONFLICT and "intruder" in clash.value.details
        held.release()
        wait_until(lambda: checks_done(again, ["flat", "fps"]), timeout=60, what="the background ids checks")
        # the ids only differ: found by the background check, which rebuilds from Lite
        assert check_state(again, "flat") == "refused" and check_state(again, "fps") == "passed"
        assert "flat: Lite's ids differ from the snapshot's" in caplog.text.replace("of flat: ", "flat: ")
    assert not (Path(str(db) + ".index") / "flat" / MANIFEST).exists()  # never trusted again
    hits = again.search("flat", {"vector": [0.5] * 16, "top_k": 1})["results"][0]
    assert hits[0]["id"] == "intruder"
    assert again.search("flat", {"vector": [-0.5] * 16, "top_k": 1})["results"][0][0]["id"] == "waited"
    assert again.info("flat")["row_count"] == 587
    assert "flat1" not in {h["id"] for h in again.search("flat", {**queries["flat"][0], "top_k": 500})["results"][0]}
    assert "hnsw2" not in {h["id"] for h in again.search("hnsw", {**queries["hnsw"][0], "top_k": 500})["results"][0]}
    again.close()


def test_the_worker_is_ready_and_searches_while_the_ids_check_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ids scan delays neither readiness nor writes: the loaded snapshot answers searches and takes
    inserts, upserts and deletes while it runs; index changes wait for it (503 past the deadline)."""
    db = tmp_path / "bg.db"
    service = open_service(db)
    queries = fill(service)
    before = answers(service, queries)
    service.close()
    held = HeldIds(monkeypatch)
    model = VectorModel(VectorSettings(milvus_uri=str(db), max_items=2000, max_top_k=500, index_save_s=0))
    model.load()  # returns while every ids check is held
    again = model.service
    assert again is not None and again.front is not None and model.ready()
    try:
        assert held.started.is_set() and not held.released.is_set()
        states = [check_state(again, n) for n in queries]  # one scan at a time: the others queue behind it
        assert states.count("running") == 1 and set(states) == {"running", "queued"}
        assert answers(again, queries) == before  # answered by the loaded snapshots
        # Writes go on during the check and are searchable at once ...
        again.insert("flat", {"items": [{"id": "late", "vector": [0.25] * 16}]})
        again.upsert("flat", {"items": [{"id": "flat7", "vector": [-0.25] * 16}]})
        again.delete("flat", {"ids": ["flat8"]})
        assert again.search("flat", {"vector": [0.25] * 16, "top_k": 1})["results"][0][0]["id"] == "late"
        assert again.search("flat", {"vector": [-0.25] * 16, "top_k": 1})["results"][0][0]["id"] == "flat7"
        assert held.started.is_set() and not held.released.is_set() and check_state(again, "flat") != "passed"
        # ... index changes wait for it: refused as retryable once the wait passes its deadline.
        monkeypatch.setattr(front_module, "CHECK_WAIT_S", 0.2)
        with pytest.raises(ApiError) as refused:
            again.create_index("hnsw", {"index": "exact"})
        assert refused.value.code == ErrorCode.OVERLOADED and refused.value.retry_after
        assert again.describe_index("hnsw")["info"]["serving"] == "HNSW"
        held.release()
        wait_until(lambda: checks_done(again, queries), timeout=60, what="the background ids checks")
        assert {check_state(again, n) for n in queries} == {"passed"}, "the check leaves the written ids out"
        assert again.info("flat")["row_count"] == 586 and again.store.row_count("flat") == 586
        assert again.search("flat", {"vector": [0.25] * 16, "top_k": 1})["results"][0][0]["id"] == "late"
    finally:
        held.release()
        again.close()


def test_writes_in_the_middle_of_the_ids_scan_do_not_fail_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan has passed some ids when an id it has not reached is deleted and a new one inserted.
    Whether it sees them is Lite's business (Milvus Lite's iterator reads as of its start; a write before
    the scan starts is seen: the test above), so the comparison leaves the written ids out either way."""
    db = tmp_path / "mid.db"
    service = open_service(db)
    service.create_collection({"name": "only", "dim": 4, "metric": "l2", "index": "exact"})
    items = [{"id": f"r{i:03d}", "vector": [float(i), 1.0, 0.0, 0.0]} for i in range(300)]
    service.insert("only", {"items": items})
    service.close()
    held = HeldIds(monkeypatch, after=100)
    again = open_service(db)
    try:
        wait_until(held.started.is_set, timeout=30, what="the ids scan to reach its 100th id")
        unscanned = sorted({item["id"] for item in items} - set(held.seen))[-1]
        again.delete("only", {"ids": [unscanned]})
        again.insert("only", {"items": [{"id": "new", "vector": [0.0, 0.0, 9.0, 0.0]}]})
        held.release()
        wait_until(lambda: checks_done(again, ["only"]), timeout=60, what="the ids check")
        assert check_state(again, "only") == "passed"
        assert again.info("only")["row_count"] == 300 == again.store.row_count("only")
        hits = again.search("only", {"vector": [0.0, 0.0, 9.0, 0.0], "top_k": 300})["results"][0]
        assert hits[0]["id"] == "new" and unscanned not in {h["id"] for h in hits}
    finally:
        held.release()
        again.close()


def test_a_shutdown_during_the_ids_check_stops_it_and_keeps_the_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Closing stops the scan at its next id (Lite is closed after it, never under it); an unfinished
    check is no mismatch, so the snapshots stay and the next start loads and checks them again."""
    db = tmp_path / "stop.db"
    service = open_service(db)
    queries = fill(service)
    service.close()
    held = HeldIds(monkeypatch)
    again = open_service(db)
    assert again.front is not None
    closing = threading.Thread(target=again.close)
    with caplog.at_level(logging.INFO, logger="vectors"):
        closing.start()
        wait_until(again.front._stop.is_set, timeout=30, what="the shutdown to begin")
        held.release()
        closing.join(60)
    assert not closing.is_alive()
    assert "cut short by the shutdown" in caplog.text and "not keeping" not in caplog.text
    assert all((Path(str(db) + ".index") / name / MANIFEST).is_file() for name in queries)
    monkeypatch.undo()  # the real ids scan again
    third = open_service(db)
    wait_until(lambda: checks_done(third, queries), timeout=60, what="the background ids checks")
    assert {check_state(third, n) for n in queries} == {"passed"}
    third.close()


def test_a_write_removes_the_manifest_before_lite_sees_it(tmp_path: Path) -> None:
    db = tmp_path / "order.db"
    service = open_service(db)
    service.create_collection({"name": "c", "dim": 4})
    service.insert("c", {"items": [{"id": "a", "vector": [1, 0, 0, 0]}]})
    service.close()
    manifest = Path(str(db) + ".index") / "c" / MANIFEST
    assert manifest.is_file()
    again = open_service(db)
    seen: list[bool] = []
    real = again.store.upsert
    again.store.upsert = lambda name, rows: (seen.append(manifest.exists()), real(name, rows))  # type: ignore[method-assign]
    again.upsert("c", {"items": [{"id": "a", "vector": [0, 1, 0, 0]}]})
    assert seen == [False] and not manifest.exists()
    again.close()
    assert manifest.is_file()  # saved again at shutdown


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from vectors.service import VectorService
    from vectors.settings import VectorSettings
    from vectors.store import MilvusStore

    path, step, index = sys.argv[1:]
    service = VectorService(MilvusStore(path), VectorSettings())
    service.front.warm()
    if step == "fill":  # then a clean shutdown, which saves the snapshot
        service.create_collection({"name": "c", "dim": 4, "metric": "l2", "index": index})
        items = [{"id": f"r{i}", "vector": [float(i), 1.0, 0.0, 0.0], "metadata": {"v": 1}} for i in range(50)]
        service.insert("c", {"items": items})
        service.close()
    else:
        real = service.store.upsert

        def upsert_then_die(name, rows):
            real(name, rows)  # Lite has the write; memory and the snapshot never hear of it
            os.kill(os.getpid(), signal.SIGKILL)

        service.store.upsert = upsert_then_die
        service.upsert("c", {"items": [{"id": "r7", "vector": [0.0, 0.0, 0.0, 9.0], "metadata": {"v": 2}}]})
    """
)


def child(db: Path, step: str, index: str) -> int:
    """A process of its own: a Lite file is locked by the process that opened it until that process ends."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", CHILD, str(db), step, index], env=env, cwd=ROOT, timeout=300)
    return run.returncode


@pytest.mark.parametrize("index", ["approximate", "exact"])
def test_kill_9_between_a_lite_write_and_the_snapshot_loses_nothing(tmp_path: Path, index: str) -> None:
    """Same ids, same row count, one vector changed: only the removed manifest can tell, and it must."""
    db = tmp_path / "kill.db"
    assert child(db, "fill", index) == 0
    assert (Path(str(db) + ".index") / "c" / MANIFEST).is_file()
    assert child(db, "kill", index) == -9
    assert not (Path(str(db) + ".index") / "c" / MANIFEST).exists()
    again = open_service(db)
    hit = again.search("c", {"vector": [0.0, 0.0, 0.0, 9.0], "top_k": 1})["results"][0][0]
    assert (hit["id"], hit["metadata"], hit["score"]) == ("r7", {"v": 2}, 0.0)
    assert again.info("c")["row_count"] == 50
    again.close()


def test_a_save_holds_the_collection_only_while_it_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the faiss file is written, searches and writes go on; a write that lands before the commit
    makes that save give up (no manifest that the write could outlive), and the next save commits."""
    db = tmp_path / "busy.db"
    service = open_service(db)
    service.create_collection({"name": "c", "dim": 8, "metric": "l2", "index": "approximate"})
    data = np.random.default_rng(2).standard_normal((300, 8)).astype(np.float32)
    service.insert("c", {"items": [{"id": f"r{i}", "vector": v.tolist()} for i, v in enumerate(data)]})
    assert service.front is not None
    copy = service.front.copy(service.store.config("c"))
    writing, release = threading.Event(), threading.Event()
    real = faiss.write_index

    def held_up(index: object, path: str) -> None:
        writing.set()
        assert release.wait(60)
        real(index, path)

    monkeypatch.setattr(faiss, "write_index", held_up)
    outcome: list[bool] = []
    saver = threading.Thread(target=lambda: outcome.append(service.front.save(copy)))  # type: ignore[union-attr]
    saver.start()
    try:
        wait_until(writing.is_set, timeout=30, what="the save writing the faiss file")
        hit = service.search("c", {"vector": data[7].tolist(), "top_k": 1})["results"][0][0]
        assert hit["id"] == "r7"
        late = {"items": [{"id": "late", "vector": [9.0] * 8}]}
        insert = threading.Thread(target=service.insert, args=("c", late))
        insert.start()
        wait_until(lambda: not insert.is_alive(), timeout=30, what="an insert while the save writes")
    finally:
        release.set()
        saver.join(60)
    manifest = Path(str(db) + ".index") / "c" / MANIFEST
    assert outcome == [False] and not manifest.exists()
    assert [p.name for p in manifest.parent.iterdir()] == []  # the given-up save left no files
    monkeypatch.setattr(faiss, "write_index", real)
    assert service.front.save(copy) and manifest.is_file()
    service.front.close()
    service.store.close()
    again = open_service(db)
    assert again.search("c", {"vector": [9.0] * 8, "top_k": 1})["results"][0][0]["id"] == "late"
    assert again.info("c")["row_count"] == 301
    again.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="niceness per thread is Linux's")
def test_snapshot_files_are_written_by_a_low_priority_thread() -> None:
    here = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    there = snapshot.in_background(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
    assert there >= max(here, snapshot.SAVE_NICE)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == here  # only that thread


def test_the_digest_and_table_read_as_before() -> None:
    """Snapshots saved before (an update per id, one json.dumps) stay valid: same digest, same table."""
    r = random.Random(4)
    ids = [f"{r.choice('abé~')}{r.randrange(10**6)}" for _ in range(snapshot.JSON_SLICE * 2 + 5)]
    old = hashlib.sha256()
    for i in sorted(ids):
        old.update(i.encode())
        old.update(b"\n")
    assert snapshot.ids_digest(iter(ids)) == old.hexdigest()
    assert snapshot.ids_digest([]) == hashlib.sha256().hexdigest()
    metadata = [None if r.random() < 0.2 else {"k": r.random(), "s": 'q"\u00e9'} for _ in ids]
    assert (
        snapshot.table_json(ids, metadata)
        == json.dumps({"ids": ids, "metadata": metadata}, separators=(",", ":")).encode()
    )
