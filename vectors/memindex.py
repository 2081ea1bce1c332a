"""In-memory search structures for one collection: faiss for float vectors, packed bits for fingerprints.

Milvus Lite 3.2 is Milvus rewritten in Python: every search walks every row in Python (dedup by
sequence number, tombstones, and for rows not yet flushed a rebuild of the whole memtable as
numpy), so a search costs O(rows) interpreter time whatever the index (~0.5 s at 10k rows). These
classes answer searches in native code instead; the Lite file stays the durable copy
(:mod:`vectors.front`).

Rows live at positions 0..n-1 in insertion order and are never moved while the structure lives:
a delete or an upsert's old version only clears the row's ``alive`` bit, and a search skips dead
rows with a faiss ``IDSelectorBitmap``. :meth:`FloatIndex.compacted` rebuilds without the dead
rows when they pile up (HNSW cannot remove a node).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np

HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
# Below this share of allowed rows a filtered approximate search scans the allowed rows exactly:
# a graph walk that may only step on a few nodes loses recall, and the scan is cheap by then.
SELECTIVE_SHARE = 0.2


@dataclass
class Bitmap:
    """Which rows are alive, as a bool array that grows; packed for faiss on demand."""

    alive: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    n: int = 0

    def grow(self, count: int) -> None:
        need = self.n + count
        if need > len(self.alive):
            bigger = np.zeros(max(need, 2 * len(self.alive), 1024), dtype=bool)
            bigger[: self.n] = self.alive[: self.n]
            self.alive = bigger
        self.alive[self.n : need] = True
        self.n = need

    def view(self) -> np.ndarray:
        return self.alive[: self.n]

    @property
    def dead(self) -> int:
        return self.n - int(self.view().sum())


def selector(mask: np.ndarray) -> tuple[Any, np.ndarray]:
    """A faiss selector over the rows where ``mask`` is true; the packed array must outlive the search."""
    packed = np.packbits(mask, bitorder="little")
    return faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(packed)), packed


class FloatIndex:
    """Float vectors under one metric in a faiss exact (``IndexFlat``) or HNSW (``IndexHNSWFlat``) index.

    Scores are Milvus's: cosine similarity (vectors are normalised on the way in, then inner
    product), inner product, or the squared L2 distance; faiss computes the same three.
    """

    def __init__(self, dim: int, metric: str, kind: str, m: int = HNSW_M, ef_construction: int = HNSW_EF_CONSTRUCTION):
        self.dim, self.metric, self.kind = dim, metric, kind
        self.m, self.ef_construction = m, ef_construction
        faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        if kind == "approximate":
            self.index: Any = faiss.IndexHNSWFlat(dim, m, faiss_metric)
            self.index.hnsw.efConstruction = ef_construction
        else:
            self.index = faiss.IndexFlat(dim, faiss_metric)
        self.rows = Bitmap()

    @property
    def higher_is_closer(self) -> bool:
        return self.metric != "l2"

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        data = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if self.metric == "cosine":
            data = data / np.linalg.norm(data, axis=1, keepdims=True)
        return np.ascontiguousarray(data, dtype=np.float32)

    def add(self, vectors: np.ndarray) -> range:
        """Append rows; returns their positions."""
        data = self._prepare(vectors)
        start = self.rows.n
        self.index.add(data)
        self.rows.grow(len(data))
        return range(start, start + len(data))

    def kill(self, positions: list[int]) -> None:
        self.rows.alive[positions] = False

    def stored(self, positions: np.ndarray) -> np.ndarray:
        """The vectors as the index holds them (normalised for cosine), for a rebuild."""
        storage = faiss.downcast_index(self.index.storage) if self.kind == "approximate" else self.index
        every = faiss.rev_swig_ptr(storage.get_xb(), storage.ntotal * self.dim).reshape(storage.ntotal, self.dim)
        return every[positions]  # fancy indexing already copies

    def search(self, query: np.ndarray, k: int, mask: np.ndarray | None, ef: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, positions) among alive rows where ``mask`` holds; fewer when fewer qualify."""
        allowed = self.rows.view() if mask is None else self.rows.view() & mask
        count = int(allowed.sum())
        if count == 0 or k <= 0:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        q = self._prepare(query)
        everything = count == self.rows.n
        sel, _keep = (None, None) if everything else selector(allowed)
        exact = self.kind == "exact" or (not everything and count < SELECTIVE_SHARE * self.rows.n)
        if exact:
            target = faiss.downcast_index(self.index.storage) if self.kind == "approximate" else self.index
            params = faiss.SearchParameters(sel=sel) if sel is not None else None
        else:
            target = self.index
            params = faiss.SearchParametersHNSW(efSearch=max(ef, k), sel=sel) if sel else None
            if params is None:
                params = faiss.SearchParametersHNSW(efSearch=max(ef, k))
        scores, labels = target.search(q, min(k, count), params=params)
        keep = labels[0] >= 0
        return scores[0][keep], labels[0][keep]

    def compacted(
        self, kind: str | None = None, m: int | None = None, ef_construction: int | None = None
    ) -> tuple[FloatIndex, np.ndarray]:
        """A new index (of ``kind``, default the same) holding only the alive rows, and each new row's old position."""
        old, build = self.compacted_later(kind, m, ef_construction)
        return build(), old

    def compacted_later(
        self, kind: str | None = None, m: int | None = None, ef_construction: int | None = None
    ) -> tuple[np.ndarray, Callable[[], FloatIndex]]:
        """The alive rows' old positions and a build of the compacted index that never touches this one.

        Why: the caller copies the rows under its lock (fast) and runs the build (minutes for HNSW
        at 100k) outside it, while this index keeps answering.
        """
        old = np.flatnonzero(self.rows.view())
        data = self.stored(old) if len(old) else np.zeros((0, self.dim), dtype=np.float32)
        args = (self.dim, self.metric, kind or self.kind, m or self.m, ef_construction or self.ef_construction)

        def build() -> FloatIndex:
            fresh = FloatIndex(*args)
            if len(data):
                fresh.add(data)
            return fresh

        return old, build

    def freeze(self, clone: Callable[[Any], Any] = faiss.clone_index) -> tuple[dict[str, Any], np.ndarray, Any]:
        """For a snapshot (the caller holds the lock): parameters, alive bits and a copy of the faiss index.

        The copy (``clone``: ``faiss.clone_index``, which runs without the GIL) is what the snapshot
        writes afterwards with no lock held: writes may change this index meanwhile, the copy stays as it was.
        """
        meta = {"type": "float", "dim": self.dim, "metric": self.metric, "kind": self.kind, "m": self.m}
        meta["ef_construction"] = self.ef_construction
        return meta, self.rows.view().copy(), clone(self.index)

    @classmethod
    def thaw(cls, meta: dict[str, Any], index: Any, alive: np.ndarray) -> FloatIndex:
        """The index a snapshot saved (``index`` read by ``faiss.read_index``), without building anything."""
        out = cls(int(meta["dim"]), str(meta["metric"]), "exact")  # a cheap shell; the real index replaces it
        out.kind, out.m, out.ef_construction = str(meta["kind"]), int(meta["m"]), int(meta["ef_construction"])
        if index.d != out.dim or index.ntotal != len(alive):
            raise ValueError(f"saved index holds {index.ntotal} x {index.d}, expected {len(alive)} x {out.dim}")
        out.index = index
        out.rows = Bitmap(np.asarray(alive, dtype=bool).copy(), len(alive))
        return out


class FingerprintIndex:
    """Bit-set fingerprints as packed bits (a column per byte, so a query's bits read contiguous memory).

    A search computes the exact Tanimoto ``c / (a + b - c)`` against every allowed row from the
    query's set bits (c: bits in common, counted a query bit at a time), so the answer is the
    exact top-k, not a re-ranked shortlist.
    """

    def __init__(self, n_bits: int) -> None:
        self.n_bits = n_bits
        self.n_bytes = (n_bits + 7) // 8
        self.packed = np.zeros((1024, self.n_bytes), dtype=np.uint8, order="F")
        self.counts = np.zeros(1024, dtype=np.int32)
        self.rows = Bitmap()

    def add(self, fingerprints: list[list[int]]) -> range:
        """Append rows (each its set bits); returns their positions."""
        dense = np.zeros((len(fingerprints), self.n_bits), dtype=bool)
        for i, bits in enumerate(fingerprints):
            dense[i, bits] = True
        return self._append(np.packbits(dense, axis=1, bitorder="little"), dense.sum(axis=1))

    def _append(self, packed: np.ndarray, counts: np.ndarray) -> range:
        start = self.rows.n
        need = start + len(packed)
        if need > len(self.counts):
            size = max(need, 2 * len(self.counts))
            grown = np.zeros((size, self.n_bytes), dtype=np.uint8, order="F")
            grown[:start] = self.packed[:start]
            grown_counts = np.zeros(size, dtype=np.int32)
            grown_counts[:start] = self.counts[:start]
            self.packed, self.counts = grown, grown_counts
        self.packed[start:need] = packed
        self.counts[start:need] = counts
        self.rows.grow(len(packed))
        return range(start, need)

    def kill(self, positions: list[int]) -> None:
        self.rows.alive[positions] = False

    def bits(self, position: int) -> list[int]:
        row = np.unpackbits(self.packed[position], bitorder="little")[: self.n_bits]
        return np.flatnonzero(row).tolist()

    def search(self, query: list[int], k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Exact Tanimoto top-k (scores, positions) among alive rows where ``mask`` holds, best first.

        Every row tied with the k-th score comes too (so more than k may return): which of the
        tied rows make the cut is for the caller to decide by id, not by where a row happens to sit.
        """
        n = self.rows.n
        allowed = self.rows.view() if mask is None else self.rows.view() & mask
        if not allowed.any() or k <= 0:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        query_bits = sorted(set(query))
        common = np.zeros(n, dtype=np.int32)
        for bit in query_bits:
            common += (self.packed[:n, bit >> 3] >> (bit & 7)) & 1
        union = self.counts[:n] + len(query_bits) - common
        scores = np.where(union > 0, common / np.maximum(union, 1), 1.0)
        scores[~allowed] = -1.0
        k = min(k, int(allowed.sum()))
        kth = np.partition(scores, n - k)[n - k]
        top = np.flatnonzero(scores >= kth)
        top = top[np.argsort(-scores[top], kind="stable")]
        return scores[top], top

    def compacted(self) -> tuple[FingerprintIndex, np.ndarray]:
        old, build = self.compacted_later()
        return build(), old

    def compacted_later(self) -> tuple[np.ndarray, Callable[[], FingerprintIndex]]:
        """As :meth:`FloatIndex.compacted_later`: the rows are copied now, the build may run elsewhere."""
        old = np.flatnonzero(self.rows.view())
        packed, counts, n_bits = self.packed[old], self.counts[old], self.n_bits

        def build() -> FingerprintIndex:
            fresh = FingerprintIndex(n_bits)
            fresh._append(packed, counts)
            return fresh

        return old, build

    def freeze(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """For a snapshot: parameters and the packed bits, bit counts and alive bits (copies)."""
        n = self.rows.n
        arrays = {"packed": np.ascontiguousarray(self.packed[:n]), "counts": self.counts[:n].copy()}
        return {"type": "binary", "n_bits": self.n_bits}, {**arrays, "alive": self.rows.view().copy()}

    @classmethod
    def thaw(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> FingerprintIndex:
        out = cls(int(meta["n_bits"]))
        packed, counts, alive = arrays["packed"], arrays["counts"], arrays["alive"]
        if packed.shape != (len(alive), out.n_bytes) or counts.shape != (len(alive),):
            raise ValueError(f"saved fingerprints have shape {packed.shape}, expected ({len(alive)}, {out.n_bytes})")
        out._append(packed, counts)
        out.rows.alive[: len(alive)] = alive
        return out
