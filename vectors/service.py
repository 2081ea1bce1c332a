"""The VectorService: every call as a Python method on plain dicts, shared by REST and gRPC.

The REST blueprint (:mod:`vectors.api`) and the gRPC servicer (:mod:`vectors.grpc_vectors`)
only translate their wire format to these dicts and back, so the two can never disagree on
what a call means, what it checks or what it answers.

On a Milvus Lite file the service keeps an in-process index in front of it (:mod:`vectors.front`):
writes go to Lite and then to memory, searches are answered from memory. On a Milvus server
every call goes to the server.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from services.common.envelope import ApiError, ErrorCode
from vectors import search as searching
from vectors.filters import build_filter
from vectors.fingerprints import dense_from_bits
from vectors.front import Front
from vectors.rows import Op
from vectors.settings import VectorSettings
from vectors.store import CollectionConfig, MilvusStore
from vectors.validate import (
    bad,
    check_id,
    check_ids,
    check_name,
    check_top_k,
    index_params,
    parse_items,
    parse_queries,
    parse_spec,
)

log = logging.getLogger(__name__)

SEARCH_FIELDS = frozenset({"vectors", "vector", "smiles", "top_k", "filter", "include_vector"})


class VectorService:
    """Collections, indexes, rows and search over one :class:`MilvusStore`."""

    def __init__(self, store: MilvusStore, settings: VectorSettings | None = None, *, ef: int = 128) -> None:
        self.store = store
        self.settings = settings or VectorSettings()
        self.ef = ef
        self.front: Front | None = Front(store) if store.lite else None

    # -- collections ------------------------------------------------------------------------------

    def info(self, name: str) -> dict[str, Any]:
        cfg = self.store.config(check_name(name))
        return {
            **self._public(cfg),
            "row_count": self.store.row_count(cfg.name),
            "index_info": self._index_info(cfg.name) or {},
        }

    def _index_info(self, name: str) -> dict[str, Any] | None:
        """The index the collection asks for; with a Lite file also what answers now (``serving``, ``rebuilding``)."""
        info = self.store.describe_index(name)
        if info is not None and self.front:
            info.update(self.front.describe(name))
        return info

    def _public(self, cfg: CollectionConfig) -> dict[str, Any]:
        return {
            "name": cfg.name,
            "dim": cfg.dim,
            "metric": cfg.metric,
            "vector_type": cfg.vector_type,
            "index": cfg.index,
            "description": cfg.description,
            "storage": self.store.storage(cfg.vector_type),
        }

    def create_collection(self, body: dict[str, Any]) -> dict[str, Any]:
        cfg, params = parse_spec(body, self.settings)
        self.store.index_type(cfg, cfg.index)  # an index this backend lacks is a 400 before anything exists
        cfg = replace(cfg, index_params=self.store.build_params(cfg, cfg.index, params))
        self.store.create(cfg, params)
        if self.front:  # a snapshot left by an earlier collection of this name must never be read
            self.front.forget(cfg.name, discard=True)
        log.info(
            "created collection %s (%s, dim %d, %s, %s index)",
            cfg.name,
            cfg.vector_type,
            cfg.dim,
            cfg.metric,
            cfg.index,
        )
        return self.info(cfg.name)

    def list_collections(self) -> dict[str, Any]:
        out = []
        for name in self.store.names():
            try:
                out.append(self.info(name))
            except ApiError as err:  # a collection some other program made: listed, not described
                out.append({"name": name, "error": err.details})
        return {"collections": out}

    def has_collection(self, name: str) -> dict[str, Any]:
        return {"exists": self.store.exists(check_name(name))}

    def _settled(self, name: str) -> str:
        """``name``, once Lite may change: not while a restart's ids check of its snapshot runs (bounded; 503)."""
        if self.front:
            self.front.settled(name)
        return name

    def drop_collection(self, name: str) -> dict[str, Any]:
        self.store.drop(self._settled(check_name(name)))
        if self.front:
            self.front.forget(name, discard=True)
        return {"name": name, "message": "dropped"}

    # -- indexes ----------------------------------------------------------------------------------

    def describe_index(self, name: str) -> dict[str, Any]:
        cfg = self.store.config(check_name(name))
        info = self._index_info(cfg.name)
        if info is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"collection {name!r} has no index")
        return {"name": cfg.name, "index": cfg.index, "info": info}

    def has_index(self, name: str) -> dict[str, Any]:
        cfg = self.store.config(check_name(name))
        return {"exists": self.store.describe_index(cfg.name) is not None}

    def create_index(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        kind = body.get("index")
        if kind not in ("exact", "approximate"):
            raise bad("index must be exact or approximate")
        params = index_params(body.get("index_params", body.get("params")))
        cfg = self.store.set_index(self._settled(check_name(name)), kind, params)
        if self.front:
            self.front.reindex(cfg)
        return self.describe_index(cfg.name)

    def drop_index(self, name: str) -> dict[str, Any]:
        dropped = self.store.drop_index(self._settled(check_name(name)))
        return {"name": name, "message": "index dropped" if dropped else "no index to drop"}

    # -- rows -------------------------------------------------------------------------------------

    def _rows(self, name: str, body: dict[str, Any]) -> tuple[CollectionConfig, list[dict[str, Any]], list[dict]]:
        """The checked rows in their public form and in the form Milvus stores."""
        cfg = self.store.config(check_name(name))
        rows = parse_items(body, cfg, self.settings)
        stored = [{**row, "vector": searching.stored(self.store, cfg, row["vector"])} for row in rows]
        return cfg, rows, stored

    def _write(self, cfg: CollectionConfig, write: Callable[[], Any], op: Op) -> Any:
        """Lite (or the server) first; then, with a Lite file, ``op`` on the in-process index."""
        return self.front.apply(cfg, write, op) if self.front else write()

    def insert(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        cfg, rows, stored = self._rows(name, body)
        ids = [r["id"] for r in rows]

        def write() -> None:
            # With a Lite file memory mirrors it (we hold the collection's write lock): no Lite lookup,
            # unless the copy came from a snapshot whose ids check against Lite has not passed yet.
            mirror = self.front.copy(cfg) if self.front else None
            taken = mirror.taken(ids) if mirror and mirror.proven else self.store.existing_ids(cfg.name, ids)
            if taken:
                shown = ", ".join(repr(t) for t in taken[:5])
                raise ApiError(ErrorCode.CONFLICT, f"{len(taken)} id(s) already exist ({shown}); use upsert to replace")
            self.store.insert(cfg.name, stored)

        self._write(cfg, write, ("add", rows))
        return {"name": cfg.name, "count": len(rows), "ids": ids}

    def upsert(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        cfg, rows, stored = self._rows(name, body)
        self._write(cfg, lambda: self.store.upsert(cfg.name, stored), ("add", rows))
        return {"name": cfg.name, "count": len(rows), "ids": [r["id"] for r in rows]}

    def delete(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        cfg = self.store.config(check_name(name))
        ids = check_ids(body.get("ids"), self.settings)
        count = self._write(cfg, lambda: self.store.delete(cfg.name, ids), ("remove", ids))
        return {"name": cfg.name, "count": count, "ids": ids}

    def get(self, name: str, item_id: str) -> dict[str, Any]:
        cfg = self.store.config(check_name(name))
        item_id = check_id(item_id, "id")
        rows = self.store.get(cfg.name, [item_id])
        if not rows:
            raise ApiError(ErrorCode.NOT_FOUND, f"no item {item_id!r} in collection {cfg.name!r}")
        row = rows[0]
        return {
            "id": str(row["id"]),
            "vector": searching.public(self.store, cfg, row["vector"]),
            "metadata": row.get("metadata") or {},
        }

    def search(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        cfg = self.store.config(check_name(name))
        unknown = set(body) - SEARCH_FIELDS
        if unknown:
            raise bad(f"unknown field(s): {', '.join(sorted(unknown))}")
        if cfg.index == "none":
            raise ApiError(ErrorCode.CONFLICT, f"collection {cfg.name!r} has no index: PUT one before searching")
        top_k = check_top_k(body, self.settings)
        expr = build_filter(body.get("filter"))
        include = body.get("include_vector", False)
        if not isinstance(include, bool):
            raise bad("include_vector must be true or false")
        queries = parse_queries(body, cfg, self.settings)
        if self.front:
            results, exact = self._search_front(cfg, queries, top_k, body.get("filter"), include)
        else:
            results, exact = searching.search(self.store, cfg, queries, top_k, expr, include, self.ef)
        return {
            "name": cfg.name,
            "metric": cfg.metric,
            "higher_is_closer": searching.higher_is_closer(cfg),
            "exact": exact,
            "results": results,
        }

    def _search_front(
        self, cfg: CollectionConfig, queries: list[Any], top_k: int, conditions: Any, include: bool
    ) -> tuple[list[list[dict[str, Any]]], bool]:
        """A search answered by the in-process index; exact unless the index is HNSW."""
        assert self.front is not None
        raw, exact = self.front.search(cfg, queries, top_k, conditions, self.ef)
        results = [[{"id": i, "score": score, "metadata": meta} for i, score, meta, _ in hits] for hits in raw]
        if include:
            if cfg.vector_type == "float":  # Lite holds the vectors as given (memory: normalised for cosine)
                wanted = sorted({h["id"] for hits in results for h in hits})
                vectors = {str(r["id"]): r["vector"] for r in self.store.get(cfg.name, wanted)} if wanted else {}
                for hits in results:
                    for h in hits:
                        h["vector"] = searching.public(self.store, cfg, vectors[h["id"]])
            else:
                for hits, found in zip(results, raw, strict=True):
                    for h, (_, _, _, bits) in zip(hits, found, strict=True):
                        h["vector"] = dense_from_bits(bits or [], cfg.dim)
        return results, exact

    def compact(self, name: str) -> dict[str, Any]:
        self.store.compact(self._settled(check_name(name)))
        return {"name": name, "message": "compaction requested"}

    def close(self) -> None:
        """Save changed in-process indexes (a clean shutdown then restarts from them), then close Milvus."""
        if self.front:
            self.front.close()
        self.store.close()

    def health(self) -> dict[str, Any]:
        return {"status": "healthy", "backend": self.store.backend, "collections": len(self.store.names())}
