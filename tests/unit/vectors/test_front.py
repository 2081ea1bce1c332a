"""The in-process index in front of Milvus Lite: brute-force and Lite answers, writes reflected, rebuilt on reopen."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support import wait_until
from vectors import front as front_module
from vectors import search as searching
from vectors.filters import build_filter
from vectors.fingerprints import tanimoto
from vectors.memindex import FingerprintIndex, FloatIndex
from vectors.rowfilter import mask
from vectors.service import VectorService
from vectors.settings import VectorSettings
from vectors.store import MilvusStore

pytest.importorskip("milvus_lite")
pytest.importorskip("faiss")

SETTINGS = VectorSettings(max_items=2000, max_top_k=500)


def brute(data: np.ndarray, q: np.ndarray, metric: str, k: int) -> tuple[list[int], np.ndarray]:
    if metric == "cosine":
        scores = data @ q / np.linalg.norm(data, axis=1) / np.linalg.norm(q)
    elif metric == "ip":
        scores = data @ q
    else:
        scores = -((data - q) ** 2).sum(axis=1)
    order = np.argsort(-scores, kind="stable")[:k]
    return order.tolist(), scores[order] if metric != "l2" else -scores[order]


@pytest.fixture(scope="module")
def lite_path(tmp_path_factory) -> Path:
    return Path(tmp_path_factory.mktemp("front")) / "front.db"


@pytest.fixture(scope="module")
def service(lite_path: Path) -> Iterator[VectorService]:
    store = MilvusStore(str(lite_path))
    yield VectorService(store, SETTINGS)
    store.close()


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_exact_float_index_is_brute_force(metric: str) -> None:
    rng = np.random.default_rng(1)
    data = rng.standard_normal((500, 16)).astype(np.float32)
    index = FloatIndex(16, metric, "exact")
    index.add(data)
    for q in rng.standard_normal((5, 16)).astype(np.float32):
        scores, positions = index.search(q, 10, None, 64)
        want_ids, want_scores = brute(data, q, metric, 10)
        assert positions.tolist() == want_ids
        assert np.allclose(scores, want_scores, rtol=1e-4, atol=1e-4)


def test_hnsw_finds_the_true_neighbours_and_a_selective_filter_is_exact() -> None:
    rng = np.random.default_rng(2)
    data = rng.standard_normal((2000, 24)).astype(np.float32)
    index = FloatIndex(24, "cosine", "approximate")
    index.add(data)
    found = 0
    for q in data[:20] + 0.01:
        _, positions = index.search(q, 10, None, 128)
        found += len(set(positions.tolist()) & set(brute(data, q, "cosine", 10)[0]))
    assert found / 200 >= 0.95
    allowed = np.zeros(2000, dtype=bool)
    allowed[::50] = True  # 2 %: scanned exactly
    q = data[7]
    _, positions = index.search(q, 10, allowed, 128)
    subset = np.flatnonzero(allowed)
    assert positions.tolist() == subset[brute(data[subset], q, "cosine", 10)[0]].tolist()


def test_dead_rows_are_never_returned_and_compaction_keeps_the_rest() -> None:
    rng = np.random.default_rng(3)
    data = rng.standard_normal((300, 8)).astype(np.float32)
    for kind in ("exact", "approximate"):
        index = FloatIndex(8, "l2", kind)
        index.add(data)
        index.kill([5, 6, 7])
        _, positions = index.search(data[6], 5, None, 64)
        assert not {5, 6, 7} & set(positions.tolist())
        fresh, old = index.compacted()
        assert fresh.rows.n == 297 and 6 not in old.tolist()
        _, moved = fresh.search(data[100], 1, None, 64)
        assert old[moved[0]] == 100


def test_fingerprint_index_is_exact_tanimoto() -> None:
    rng = random.Random(4)
    library = [sorted(rng.sample(range(512), rng.randint(1, 60))) for _ in range(700)]
    index = FingerprintIndex(512)
    index.add(library)
    assert index.bits(3) == library[3]
    for _ in range(10):
        query = sorted(rng.sample(range(512), rng.randint(1, 60)))
        scores, positions = index.search(query, 10, None)
        want = sorted((tanimoto(query, fp) for fp in library), reverse=True)
        assert np.allclose(scores[:10], want[:10]) and len(scores) == sum(w >= want[9] for w in want)
        assert all(abs(tanimoto(query, library[p]) - s) < 1e-12 for s, p in zip(scores, positions, strict=True))


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_service_answers_what_lite_answers(service: VectorService, metric: str) -> None:
    """The same search through memory and straight to Lite: same ids, same scores, same order."""
    rng = np.random.default_rng(5)
    name = f"agree_{metric}"
    data = rng.standard_normal((400, 12)).astype(np.float32)
    service.create_collection({"name": name, "dim": 12, "metric": metric})
    service.insert(name, {"items": [{"id": f"r{i}", "vector": v.tolist()} for i, v in enumerate(data)]})
    cfg = service.store.config(name)
    for q in rng.standard_normal((5, 12)).astype(np.float32):
        mine = service.search(name, {"vectors": [q.tolist()], "top_k": 10, "include_vector": True})["results"][0]
        lite, _ = searching.search(service.store, cfg, [q.tolist()], 10, "", True)
        assert [h["id"] for h in mine] == [h["id"] for h in lite[0]]
        assert np.allclose([h["score"] for h in mine], [h["score"] for h in lite[0]], rtol=1e-4, atol=1e-4)
        assert [h["vector"] for h in mine] == [h["vector"] for h in lite[0]]


def test_deletes_and_upserts_are_reflected(service: VectorService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(front_module, "MIN_DEAD", 4)  # so a few deletes also compact
    for index in ("exact", "approximate"):
        name = f"writes_{index}"
        service.create_collection({"name": name, "dim": 4, "metric": "l2", "index": index})
        items = [{"id": f"p{i}", "vector": [float(i), 0, 0, 0], "metadata": {"i": i}} for i in range(20)]
        service.insert(name, {"items": items})
        service.delete(name, {"ids": ["p3", "p4"]})
        hits = service.search(name, {"vector": [3.2, 0, 0, 0], "top_k": 3})["results"][0]
        assert [h["id"] for h in hits] == ["p2", "p5", "p1"]
        service.upsert(name, {"items": [{"id": "p19", "vector": [3.1, 0, 0, 0], "metadata": {"moved": True}}]})
        hits = service.search(name, {"vector": [3.0, 0, 0, 0], "top_k": 1})["results"][0]
        assert hits[0]["id"] == "p19" and hits[0]["metadata"] == {"moved": True}
        service.delete(name, {"ids": [f"p{i}" for i in range(10)]})  # compacts (MIN_DEAD 4)
        hits = service.search(name, {"vector": [0.0, 0, 0, 0], "top_k": 20})["results"][0]
        assert sorted(h["id"] for h in hits) == sorted([f"p{i}" for i in range(10, 20)])
        copy = service.front.copy(service.store.config(name))
        # compaction builds beside the old index, in a thread of its own
        wait_until(lambda c=copy: c.index.rows.dead < 4, timeout=60, interval=0.02, what="the compaction")
        assert copy.index.rows.dead < 4
        hits = service.search(name, {"vector": [0.0, 0, 0, 0], "top_k": 20})["results"][0]
        assert sorted(h["id"] for h in hits) == sorted([f"p{i}" for i in range(10, 20)])


def test_index_kind_switch_keeps_rows(service: VectorService) -> None:
    rng = np.random.default_rng(6)
    data = rng.standard_normal((200, 8)).astype(np.float32)
    service.create_collection({"name": "switch", "dim": 8})
    service.insert("switch", {"items": [{"id": str(i), "vector": v.tolist()} for i, v in enumerate(data)]})
    service.create_index("switch", {"index": "approximate", "index_params": {"M": 8}})
    info = service.describe_index("switch")["info"]
    assert (info["index_type"], info["M"], info["efConstruction"]) == ("HNSW", 8, 200)
    answer = service.search("switch", {"vectors": [data[42].tolist()], "top_k": 1})
    assert answer["results"][0][0]["id"] == "42" and answer["exact"] is False
    service.drop_index("switch")
    assert not service.has_index("switch")["exists"]
    service.create_index("switch", {"index": "exact"})
    assert service.search("switch", {"vectors": [data[9].tolist()], "top_k": 1})["exact"] is True


def test_a_reopened_file_answers_the_same(lite_path: Path, service: VectorService) -> None:
    """A new process on the file rebuilds its index from Lite: nothing written is lost, deletes stay deleted."""
    rng = random.Random(7)
    service.create_collection({"name": "reopen_fp", "dim": 256, "vector_type": "binary"})
    library = {f"m{i}": sorted(rng.sample(range(256), rng.randint(3, 30))) for i in range(150)}
    service.insert("reopen_fp", {"items": [{"id": k, "vector": {"on_bits": v}} for k, v in library.items()]})
    service.delete("reopen_fp", {"ids": ["m0", "m1"]})
    service.create_collection({"name": "reopen_f", "dim": 4, "metric": "ip"})
    service.insert("reopen_f", {"items": [{"id": f"v{i}", "vector": [i, 1, 0, 0]} for i in range(30)]})
    query = {"vectors": [{"on_bits": library["m0"]}], "top_k": 8, "include_vector": True}
    before = (service.search("reopen_fp", query), service.search("reopen_f", {"vector": [1, 0, 0, 0], "top_k": 5}))
    again = VectorService(MilvusStore(str(lite_path)), SETTINGS)
    assert again.front is not None
    again.front.warm()
    after = (again.search("reopen_fp", query), again.search("reopen_f", {"vector": [1, 0, 0, 0], "top_k": 5}))
    assert after == before
    assert not {"m0", "m1"} & {h["id"] for h in after[0]["results"][0]}


FILTER_ROWS = [
    {"s": "A", "n": 1, "b": True},
    {"s": "B", "n": 2.5, "b": False},
    {"s": 'a"q', "n": -3},
    {"n": "7"},
    {"s": None, "n": 10},
    {"s": 5, "n": True},
    {},
    {"s": "C", "n": [1, 2]},
]
FILTERS = [
    [{"key": "s", "op": "==", "value": "A"}],
    [{"key": "s", "op": "!=", "value": "A"}],
    [{"key": "s", "op": "<", "value": "B"}],
    [{"key": "n", "op": ">=", "value": 1}],
    [{"key": "n", "op": "<", "value": 3}],
    [{"key": "n", "op": "==", "value": 1}],
    [{"key": "n", "op": "!=", "value": 2.5}],
    [{"key": "b", "op": "==", "value": True}],
    [{"key": "s", "op": "in", "value": ["A", "C", 5]}],
    [{"key": "s", "op": "not_in", "value": ["A", "B"]}],
    [{"key": "id", "op": ">", "value": "f3"}],
    [{"key": "s", "op": "==", "value": 'a"q'}],
    [{"key": "n", "op": ">", "value": 0}, {"key": "s", "op": "!=", "value": "B"}],
]


@pytest.mark.parametrize("conditions", FILTERS)
def test_filters_match_milvus_lite(service: VectorService, conditions: list) -> None:
    """Each op on mixed-type metadata (missing keys, nulls, numbers vs strings): the rows Lite's own filter keeps."""
    if not service.store.exists("filters"):
        service.create_collection({"name": "filters", "dim": 2, "metric": "l2"})
        items = [{"id": f"f{i}", "vector": [float(i), 1.0], "metadata": m} for i, m in enumerate(FILTER_ROWS)]
        service.insert("filters", {"items": items})
    cfg = service.store.config("filters")
    lite, _ = searching.search(service.store, cfg, [[0.0, 1.0]], 50, build_filter(conditions), False)
    want = sorted(h["id"] for h in lite[0])
    ids = [f"f{i}" for i in range(len(FILTER_ROWS))]
    allowed = mask(conditions, ids, [h or {} for h in FILTER_ROWS])
    assert sorted(i for i, ok in zip(ids, allowed, strict=True) if ok) == want
    mine = service.search("filters", {"vector": [0.0, 1.0], "top_k": 50, "filter": conditions})["results"][0]
    assert sorted(h["id"] for h in mine) == want
