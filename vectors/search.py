"""Searching a collection in Milvus: the stored form of a vector, and exact Tanimoto over a cosine pre-ranking.

This is the Milvus path, taken with a server URI. With a Lite file the service answers searches
from its in-process index (:mod:`vectors.front`); the stored form below is still what Lite keeps.

On Milvus Lite a fingerprint is a sparse vector with weight 1/sqrt(n) on each of its n set
bits, so Milvus's inner product is the cosine ``c / sqrt(a b)`` of the bit sets (c common bits,
a and b set bits). Tanimoto ``c / (a + b - c)`` never exceeds the cosine, because
``a + b - c >= max(a, b) >= sqrt(a b)``. So after re-ranking the N best hits by cosine with their
exact Tanimoto, no unseen row can beat the k-th Tanimoto when the N-th cosine is below it: the
answer is then provably the exact Tanimoto top-k. Otherwise N grows (×4) until it is, or until
the backend's cap, and the answer says ``exact: false``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vectors.fingerprints import tanimoto
from vectors.store import CollectionConfig, MilvusStore

# Milvus's largest top-k; the candidate pool of a Tanimoto re-ranking never passes it.
MAX_CANDIDATES = 16384
_EPS = 1e-6
DEFAULT_EF = 128


def stored(store: MilvusStore, cfg: CollectionConfig, vector: list[Any]) -> Any:
    """The public vector (floats, or set bits) in the form the backend stores."""
    storage = store.storage(cfg.vector_type)
    if storage == "float_vector":
        return vector
    if storage == "sparse_float_vector":
        weight = 1.0 / math.sqrt(len(vector))
        return {int(b): weight for b in vector}
    dense = np.zeros(cfg.dim, dtype=np.uint8)
    dense[list(vector)] = 1
    return np.packbits(dense, bitorder="little").tobytes()


def bits_of(store: MilvusStore, cfg: CollectionConfig, value: Any) -> list[int]:
    """The set bits of a stored fingerprint (sparse dict or packed bytes)."""
    if isinstance(value, dict):
        return sorted(int(k) for k in value)
    raw = value[0] if isinstance(value, list) else value
    dense = np.unpackbits(np.frombuffer(bytes(raw), dtype=np.uint8), bitorder="little")[: cfg.dim]
    return np.flatnonzero(dense).tolist()


def public(store: MilvusStore, cfg: CollectionConfig, value: Any) -> list[float]:
    """A stored vector as the API returns it: floats, or 0/1 per bit."""
    if cfg.vector_type == "float":
        return [float(v) for v in value]
    out = [0.0] * cfg.dim
    for b in bits_of(store, cfg, value):
        out[b] = 1.0
    return out


def higher_is_closer(cfg: CollectionConfig) -> bool:
    return cfg.metric != "l2"


def _hit(store: MilvusStore, cfg: CollectionConfig, raw: dict[str, Any], score: float, with_vector: bool) -> dict:
    entity = raw.get("entity") or {}
    hit: dict[str, Any] = {"id": str(raw["id"]), "score": float(score), "metadata": entity.get("metadata") or {}}
    if with_vector:
        hit["vector"] = public(store, cfg, entity["vector"])
    return hit


def search(
    store: MilvusStore,
    cfg: CollectionConfig,
    queries: list[Any],
    top_k: int,
    expr: str,
    with_vector: bool,
    ef: int = DEFAULT_EF,
) -> tuple[list[list[dict[str, Any]]], bool]:
    """Per query, the top-k hits ``{id, score, metadata[, vector]}``; and whether every answer is exact."""
    if store.storage(cfg.vector_type) == "sparse_float_vector":
        answers = [_tanimoto_search(store, cfg, q, top_k, expr, with_vector) for q in queries]
        return [a for a, _ in answers], all(exact for _, exact in answers)
    params: dict[str, Any] = {"ef": max(ef, top_k)} if cfg.index == "approximate" else {}
    if cfg.index == "approximate" and cfg.vector_type == "binary":
        params = {"nprobe": 32}
    raw = store.search(cfg.name, [stored(store, cfg, q) for q in queries], top_k, expr, with_vector, params)
    binary = cfg.vector_type == "binary"  # a server's JACCARD distance: Tanimoto is 1 - distance
    results = [
        [_hit(store, cfg, h, 1.0 - h["distance"] if binary else h["distance"], with_vector) for h in hits]
        for hits in raw
    ]
    return results, cfg.index == "exact"


def _tanimoto_search(
    store: MilvusStore, cfg: CollectionConfig, query: list[int], top_k: int, expr: str, with_vector: bool
) -> tuple[list[dict[str, Any]], bool]:
    data = [stored(store, cfg, query)]
    n = min(max(4 * top_k, 64), MAX_CANDIDATES)
    while True:
        hits = store.search(cfg.name, data, n, expr, True, {})[0]
        scored = sorted(
            ((tanimoto(query, bits_of(store, cfg, h["entity"]["vector"])), h) for h in hits),
            key=lambda pair: (-pair[0], str(pair[1]["id"])),
        )
        best = scored[:top_k]
        exhausted = len(hits) < n
        kth = best[-1][0] if len(best) == top_k else 0.0
        bound_ok = bool(hits) and float(hits[-1]["distance"]) + _EPS <= kth
        if exhausted or bound_ok or n >= MAX_CANDIDATES:
            exact = exhausted or bound_ok
            return [_hit(store, cfg, h, score, with_vector) for score, h in best], exact
        n = min(n * 4, MAX_CANDIDATES)
