"""The in-process index in front of a Milvus Lite file: Lite keeps the data, memory answers the searches.

Why: Milvus Lite walks every row in Python on each search (see :mod:`vectors.memindex`), ~0.5 s
at 10k rows, whatever its index. With a Lite URI the service therefore keeps, per collection, a
copy of the ids, metadata and vectors in a faiss index (fingerprints: packed bits) and searches
that; with a Milvus server URI there is no front and searches go to the server.

* Durability: every write goes to Lite first and reaches memory only once Lite has accepted it,
  under the collection's lock (so memory applies writes in Lite's order). A process that dies
  loses nothing: on start (and on first use of a collection) the copy is rebuilt from Lite.
* Filters are evaluated here on the copy (:mod:`vectors.rowfilter`, Lite's semantics) and given
  to faiss as a bitmap of allowed rows: exact for the exact index; for HNSW a selective filter
  (< 20 % of rows) scans the allowed rows exactly, so a filter never costs recall.
* Fingerprints: exact Tanimoto against every row, so the answer is exact by construction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vectors import rowfilter
from vectors.memindex import HNSW_EF_CONSTRUCTION, HNSW_M, FingerprintIndex, FloatIndex
from vectors.store import CollectionConfig, MilvusStore

log = logging.getLogger(__name__)

SCAN_BATCH = 4096
MASK_CACHE = 32
# Rebuild without dead rows once they are this share of all rows (and at least MIN_DEAD).
DEAD_SHARE = 0.25
MIN_DEAD = 1024


@dataclass
class Copy:
    """One collection in memory: rows at positions, the index over them, and a lock."""

    cfg: CollectionConfig
    index: FloatIndex | FingerprintIndex
    ids: list[str] = field(default_factory=list)
    metadata: list[dict[str, Any] | None] = field(default_factory=list)
    where: dict[str, int] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    version: int = 0
    masks: OrderedDict[str, np.ndarray] = field(default_factory=OrderedDict)

    def add(self, rows: list[dict[str, Any]]) -> None:
        """Rows ``{id, vector (public form), metadata}``; an id already present is replaced."""
        self.remove([r["id"] for r in rows])
        if isinstance(self.index, FloatIndex):
            positions = self.index.add(np.asarray([r["vector"] for r in rows], dtype=np.float32))
        else:
            positions = self.index.add([list(r["vector"]) for r in rows])
        for pos, row in zip(positions, rows, strict=True):
            self.ids.append(row["id"])
            self.metadata.append(row.get("metadata") or {})
            self.where[row["id"]] = pos
        self.version += 1

    def taken(self, ids: list[str]) -> list[str]:
        return [i for i in ids if i in self.where]

    def remove(self, ids: list[str]) -> int:
        positions = [p for p in (self.where.pop(i, None) for i in ids) if p is not None]
        if positions:
            self.index.kill(positions)
            for p in positions:
                self.metadata[p] = None
            self.version += 1
            if self.index.rows.dead >= max(MIN_DEAD, DEAD_SHARE * self.index.rows.n):
                self.rebuild()
        return len(positions)

    def rebuild(self, cfg: CollectionConfig | None = None) -> None:
        """Drop dead rows (and switch the index kind when ``cfg`` names another)."""
        if cfg is not None:
            self.cfg = cfg
        if isinstance(self.index, FloatIndex):
            kind = "approximate" if self.cfg.index == "approximate" else "exact"
            params = self.cfg.index_params
            fresh, old = self.index.compacted(kind, params.get("M"), params.get("efConstruction"))
        else:
            fresh, old = self.index.compacted()
        self.index = fresh
        self.ids = [self.ids[p] for p in old]
        self.metadata = [self.metadata[p] for p in old]
        self.where = {i: p for p, i in enumerate(self.ids)}
        self.version += 1

    def mask(self, conditions: Any) -> np.ndarray | None:
        """The rows a filter allows, cached per filter until the next write."""
        key = f"{self.version}:{conditions!r}"
        cached = self.masks.get(key)
        if cached is None:
            cached = rowfilter.mask(conditions, self.ids, self.metadata)
            if cached is None:
                return None
            self.masks[key] = cached
            while len(self.masks) > MASK_CACHE:
                self.masks.popitem(last=False)
        return cached


def new_index(cfg: CollectionConfig) -> FloatIndex | FingerprintIndex:
    if cfg.vector_type == "binary":
        return FingerprintIndex(cfg.dim)
    params = cfg.index_params
    return FloatIndex(
        cfg.dim,
        cfg.metric,
        "approximate" if cfg.index == "approximate" else "exact",
        int(params.get("M", HNSW_M)),
        int(params.get("efConstruction", HNSW_EF_CONSTRUCTION)),
    )


def public_vector(cfg: CollectionConfig, value: Any) -> list[Any]:
    """A vector as Lite returns it → the public form (floats, or set bits)."""
    if cfg.vector_type == "float":
        return [float(v) for v in value]
    return sorted(int(k) for k in value)


class Front:
    """The in-memory copies of one Lite file's collections; see the module docstring."""

    def __init__(self, store: MilvusStore) -> None:
        self.store = store
        self._copies: dict[str, Copy] = {}
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def copy(self, cfg: CollectionConfig) -> Copy:
        """The collection's copy, rebuilt from Lite when this process has none yet."""
        with self._lock:
            found = self._copies.get(cfg.name)
            gate = self._loading.setdefault(cfg.name, threading.Lock())
        if found is not None:
            return found
        with gate:  # one loader per collection; others wait for it
            with self._lock:
                found = self._copies.get(cfg.name)
            if found is None:
                found = self._load(cfg)
                with self._lock:
                    self._copies[cfg.name] = found
        return found

    def _load(self, cfg: CollectionConfig) -> Copy:
        t0 = time.perf_counter()
        copy = Copy(cfg, new_index(cfg))
        for batch in self.store.scan(cfg.name):
            copy.add([{**r, "vector": public_vector(cfg, r["vector"])} for r in batch])
        log.info("rebuilt %s from Milvus Lite: %d rows in %.1f s", cfg.name, len(copy.where), time.perf_counter() - t0)
        return copy

    def warm(self) -> None:
        """Rebuild every collection now (worker start), so no search pays for it."""
        for name in self.store.names():
            try:
                self.copy(self.store.config(name))
            except Exception as err:  # a collection another program made: left to Lite
                log.warning("not indexing %s in memory: %s", name, err)

    def forget(self, name: str) -> None:
        with self._lock:
            self._copies.pop(name, None)

    def apply(self, cfg: CollectionConfig, write: Callable[[], Any], memory: Callable[[Copy], Any]) -> Any:
        """Run ``write`` on Lite, then ``memory`` on the copy, under the copy's lock; ``write``'s answer."""
        copy = self.copy(cfg)
        with copy.lock:
            answer = write()
            try:
                memory(copy)
            except Exception:
                log.exception("in-memory index of %s out of step; it will be rebuilt from Lite", cfg.name)
                self.forget(cfg.name)
        return answer

    def search(
        self, cfg: CollectionConfig, queries: list[Any], top_k: int, conditions: Any, ef: int
    ) -> list[list[tuple[str, float, dict[str, Any], list[int] | None]]]:
        """Per query, the top-k ``(id, score, metadata, set bits or None)``, best first."""
        copy = self.copy(cfg)
        with copy.lock:
            allowed = copy.mask(conditions)
            out = []
            for query in queries:
                if isinstance(copy.index, FloatIndex):
                    scores, positions = copy.index.search(np.asarray(query, dtype=np.float32), top_k, allowed, ef)
                    bits = [None] * len(positions)
                else:  # ties at the cut are decided by id, as the Milvus path does
                    scores, positions = copy.index.search(list(query), top_k, allowed)
                    pairs = zip(scores.tolist(), positions.tolist(), strict=True)
                    ranked = sorted(pairs, key=lambda sp: (-sp[0], copy.ids[sp[1]]))
                    scores = np.array([s for s, _ in ranked[:top_k]])
                    positions = np.array([p for _, p in ranked[:top_k]], dtype=np.int64)
                    bits = [copy.index.bits(int(p)) for p in positions]
                out.append(
                    [
                        (copy.ids[p], float(s), copy.metadata[p] or {}, b)
                        for s, p, b in zip(scores, positions, bits, strict=True)
                    ]
                )
        return out

    def reindex(self, cfg: CollectionConfig) -> None:
        """The collection's index kind or parameters changed: rebuild the copy's index from memory."""
        copy = self.copy(cfg)
        with copy.lock:
            copy.rebuild(cfg)
