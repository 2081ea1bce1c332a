"""One collection's rows in memory: ids and metadata at positions, and the search structure over them.

Why a separate object: a rebuild (compaction, a new index kind) makes a whole new :class:`Rows`
beside the one that answers searches and swaps it in at the end (:mod:`vectors.front`), so the
state a search reads is always one consistent object. Writes reach a :class:`Rows` as operations
(``("add", rows)`` / ``("remove", ids)``) so that the writes that arrive during a rebuild can be
replayed onto the new one in the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vectors.memindex import HNSW_EF_CONSTRUCTION, HNSW_M, FingerprintIndex, FloatIndex
from vectors.store import CollectionConfig

Op = tuple[str, Any]


def op_ids(op: Op) -> list[str]:
    """The ids a write operation touches."""
    kind, arg = op
    return [r["id"] for r in arg] if kind == "add" else list(arg)


def wanted_kind(cfg: CollectionConfig) -> str:
    """The in-process index a collection asks for: ``approximate`` (HNSW), ``exact``, or ``fingerprint``."""
    if cfg.vector_type == "binary":
        return "fingerprint"
    return "approximate" if cfg.index == "approximate" else "exact"


def new_index(cfg: CollectionConfig, kind: str | None = None) -> FloatIndex | FingerprintIndex:
    """An empty index for ``cfg`` (of ``kind`` when given: a start-up serves FLAT while HNSW builds)."""
    if cfg.vector_type == "binary":
        return FingerprintIndex(cfg.dim)
    params = cfg.index_params
    return FloatIndex(
        cfg.dim,
        cfg.metric,
        kind or wanted_kind(cfg),
        int(params.get("M", HNSW_M)),
        int(params.get("efConstruction", HNSW_EF_CONSTRUCTION)),
    )


def public_vector(cfg: CollectionConfig, value: Any) -> list[Any]:
    """A vector as Lite returns it → the public form (floats, or set bits)."""
    if cfg.vector_type == "float":
        return [float(v) for v in value]
    return sorted(int(k) for k in value)


@dataclass
class Rows:
    """Rows at positions (never moved while this object lives) and the index over them."""

    index: FloatIndex | FingerprintIndex
    ids: list[str | None] = field(default_factory=list)
    metadata: list[dict[str, Any] | None] = field(default_factory=list)
    where: dict[str, int] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.index.kind if isinstance(self.index, FloatIndex) else "fingerprint"

    @property
    def exact(self) -> bool:
        """Whether a search here is exact (FLAT or fingerprints; HNSW is not)."""
        return self.kind != "approximate"

    def matches(self, cfg: CollectionConfig) -> bool:
        """Whether this is the index ``cfg`` asks for (kind and HNSW parameters)."""
        if self.kind != wanted_kind(cfg):
            return False
        if self.kind != "approximate":
            return True
        assert isinstance(self.index, FloatIndex)
        params = cfg.index_params
        return (self.index.m, self.index.ef_construction) == (
            int(params.get("M", HNSW_M)),
            int(params.get("efConstruction", HNSW_EF_CONSTRUCTION)),
        )

    def apply(self, op: Op) -> Any:
        kind, arg = op
        return self.add(arg) if kind == "add" else self.remove(arg)

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

    def remove(self, ids: list[str]) -> int:
        positions = [p for p in (self.where.pop(i, None) for i in ids) if p is not None]
        if positions:
            self.index.kill(positions)
            for p in positions:
                self.metadata[p] = None
        return len(positions)

    def taken(self, ids: list[str]) -> list[str]:
        return [i for i in ids if i in self.where]

    def alive_ids(self) -> list[str]:
        return list(self.where)

    def rebuild_later(self, cfg: CollectionConfig) -> Callable[[], Rows]:
        """Copy the alive rows now (under the caller's lock); the returned call builds the new Rows anywhere."""
        if isinstance(self.index, FloatIndex):
            params = cfg.index_params
            old, build_index = self.index.compacted_later(
                wanted_kind(cfg), params.get("M"), params.get("efConstruction")
            )
        else:
            old, build_index = self.index.compacted_later()
        ids = [self.ids[p] for p in old]
        metadata = [self.metadata[p] for p in old]

        def build() -> Rows:
            return Rows(build_index(), ids, metadata, {i: p for p, i in enumerate(ids) if i is not None})

        return build
