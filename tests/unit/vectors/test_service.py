"""The VectorService on a real Milvus Lite file, in-process: exact Tanimoto, validation, nothing half-written."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from services.common.envelope import ApiError
from vectors.fingerprints import tanimoto
from vectors.service import VectorService
from vectors.settings import VectorSettings
from vectors.store import MilvusStore

pytest.importorskip("milvus_lite")


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[VectorService]:
    store = MilvusStore(str(Path(tmp_path_factory.mktemp("lite")) / "unit.db"))
    yield VectorService(store, VectorSettings(max_items=500, max_top_k=100))
    store.close()


def random_bits(rng: random.Random, n_bits: int = 256) -> list[int]:
    return sorted(rng.sample(range(n_bits), rng.randint(3, 40)))


def test_tanimoto_top_k_equals_brute_force(service: VectorService) -> None:
    """Cosine pre-ranking + exact re-ranking gives the brute-force Tanimoto top-k, not an approximation."""
    rng = random.Random(3)
    service.create_collection({"name": "fp", "dim": 256, "vector_type": "binary"})
    library = {f"m{i}": random_bits(rng) for i in range(400)}
    service.insert("fp", {"items": [{"id": k, "vector": {"on_bits": v}} for k, v in library.items()]})
    for _ in range(10):
        query = random_bits(rng)
        answer = service.search("fp", {"vectors": [{"on_bits": query}], "top_k": 10})
        assert answer["exact"] is True
        want = sorted((round(tanimoto(query, v), 9), k) for k, v in library.items())[::-1]
        got = [round(h["score"], 9) for h in answer["results"][0]]
        assert got == sorted((s for s, _ in want), reverse=True)[:10]


def test_a_filtered_tanimoto_search_keeps_to_the_filter(service: VectorService) -> None:
    service.create_collection({"name": "fpf", "dim": 64, "vector_type": "binary"})
    service.insert(
        "fpf",
        {
            "items": [
                {"id": f"x{i}", "vector": {"on_bits": [i, i + 1, 40]}, "metadata": {"odd": i % 2}} for i in range(30)
            ]
        },
    )
    hits = service.search(
        "fpf", {"vectors": [{"on_bits": [3, 4, 40]}], "top_k": 5, "filter": [{"key": "odd", "op": "==", "value": 0}]}
    )
    assert hits["results"][0] and all(h["metadata"]["odd"] == 0 for h in hits["results"][0])


def test_float_metrics_order_hits(service: VectorService) -> None:
    rng = np.random.default_rng(0)
    data = rng.standard_normal((50, 6)).astype(np.float32)
    for metric in ("cosine", "l2", "ip"):
        service.create_collection({"name": f"m_{metric}", "dim": 6, "metric": metric})
        service.insert(f"m_{metric}", {"items": [{"id": str(i), "vector": v.tolist()} for i, v in enumerate(data)]})
        answer = service.search(f"m_{metric}", {"vectors": [data[7].tolist()], "top_k": 5})
        scores = [h["score"] for h in answer["results"][0]]
        assert answer["results"][0][0]["id"] == "7" or metric == "ip"
        assert scores == sorted(scores, reverse=answer["higher_is_closer"])
        q = data[7]
        ref = {
            "cosine": data @ q / np.linalg.norm(data, axis=1) / np.linalg.norm(q),
            "l2": ((data - q) ** 2).sum(axis=1),
            "ip": data @ q,
        }[metric]
        best = np.argsort(-ref if metric != "l2" else ref)[:5]
        assert [h["id"] for h in answer["results"][0]] == [str(i) for i in best]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "bad-name", "dim": 4},
        {"name": "x1", "dim": 0},
        {"name": "x1", "dim": 10**6},
        {"name": "x1", "dim": 4, "metric": "hamming"},
        {"name": "x1", "dim": 12, "vector_type": "binary"},
        {"name": "x1", "dim": 8, "vector_type": "binary", "index": "approximate"},
        {"name": "x1", "dim": 4, "index": "ivf"},
        {"name": "x1", "dim": 4, "index_params": {"M": 1000}},
        {"name": "x1", "dim": 4, "surprise": 1},
    ],
)
def test_bad_collection_specs_are_400_and_create_nothing(service: VectorService, body: dict) -> None:
    with pytest.raises(ApiError) as err:
        service.create_collection(body)
    assert err.value.status == 400
    assert not service.store.exists("x1")


@pytest.mark.parametrize(
    "vector",
    [[1.0, 2.0], [0.0, 0.0, 0.0, 0.0], [1.0, float("nan"), 0.0, 0.0], [True, 0, 0, 0], ["1", 0, 0, 0], [[1], 0, 0, 0]],
)
def test_bad_vectors_are_400(service: VectorService, vector: list) -> None:
    if not service.store.exists("v4"):
        service.create_collection({"name": "v4", "dim": 4})
    with pytest.raises(ApiError) as err:
        service.insert("v4", {"items": [{"id": "ok", "vector": [1, 0, 0, 0]}, {"id": "bad", "vector": vector}]})
    assert err.value.status == 400
    assert service.store.row_count("v4") == 0
