"""The Milvus side: one class that owns the pymilvus client and knows how a collection is laid out.

A collection has three fields: ``id`` (VARCHAR primary key, the caller's id), ``vector`` and
``metadata`` (JSON). Our own description of it (dimension, metric, vector type, index kind,
free text) is kept in the collection's properties under ``compass.config``, so a restarted
worker, or another replica on a shared Milvus server, reads it back from Milvus itself.

How a vector type is stored depends on the backend:

* float: ``FLOAT_VECTOR`` with COSINE / L2 / IP; ``exact`` = FLAT, ``approximate`` = HNSW.
* binary on Milvus Lite (which has no binary vectors): ``SPARSE_FLOAT_VECTOR`` holding each set
  bit with weight 1/sqrt(bits), so the inner product is the cosine of the bit sets; the service
  re-ranks those hits by exact Tanimoto (:mod:`vectors.search`). Lite has one sparse index (exact).
* binary on a Milvus server: ``BINARY_VECTOR`` with JACCARD (1 - Tanimoto); ``exact`` = BIN_FLAT,
  ``approximate`` = BIN_IVF_FLAT.

On Milvus Lite the file is the durable copy and searches are answered by the in-process index
(:mod:`vectors.front`): Lite's own vector index is then always the cheap one (FLAT, or the sparse
inverted index), the collection's chosen kind lives in ``compass.config`` and is built in faiss,
and :meth:`MilvusStore.describe_index` describes that faiss index. (Lite's HNSW would take
minutes to build at 100k rows and is never searched.)
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from services.common.envelope import ApiError, ErrorCode

log = logging.getLogger(__name__)


class _QuietIteratorSetup(logging.Filter):
    """Drops the two log lines each Lite scan causes: Lite has no AllocTimestamp, pymilvus then uses its own clock."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return "mvccTs" not in text and not (
            record.exc_info and "AllocTimestamp" in "".join(logging.Formatter().formatException(record.exc_info))
        )


for _name in ("grpc._server", "pymilvus.client.iterator.query_iterator"):
    logging.getLogger(_name).addFilter(_QuietIteratorSetup())

CONFIG_PROPERTY = "compass.config"
ID_MAX_LENGTH = 256
FLOAT_METRICS = {"cosine": "COSINE", "l2": "L2", "ip": "IP"}
BINARY_METRICS = {"tanimoto": "JACCARD"}
INDEX_KINDS = ("exact", "approximate")
HNSW_DEFAULTS = {"M": 16, "efConstruction": 200}
IVF_DEFAULTS = {"nlist": 1024}


def is_lite(uri: str) -> bool:
    """A local path (``*.db``) opens Milvus Lite; a URL reaches a Milvus server."""
    return not uri.startswith(("http://", "https://", "tcp://", "unix:"))


@dataclass(frozen=True)
class CollectionConfig:
    """What the service knows about a collection beyond Milvus's own schema."""

    name: str
    dim: int
    metric: str
    vector_type: str
    index: str
    description: str = ""
    index_params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> CollectionConfig:
        return cls(**json.loads(text))


class MilvusStore:
    """A pymilvus ``MilvusClient`` on a Lite file (``*.db``) or a server URI; thread-safe.

    Milvus errors that mean "no such collection" become 404; anything else unexpected is left
    to the runtime (500). Every call checks its input before it writes (see :mod:`vectors.service`).
    """

    def __init__(self, uri: str, token: str = "") -> None:
        from pymilvus import MilvusClient

        self.uri = uri
        self.lite = is_lite(uri)
        self.client = MilvusClient(uri=uri, token=token) if token else MilvusClient(uri=uri)
        self._configs: dict[str, CollectionConfig] = {}
        self._lock = threading.Lock()
        # Milvus Lite's engine is one process's; schema changes are serialised here so two
        # requests never create or drop the same collection at once.
        self._ddl = threading.Lock()

    @property
    def backend(self) -> str:
        return "milvus-lite" if self.lite else "milvus-server"

    def storage(self, vector_type: str) -> str:
        if vector_type == "float":
            return "float_vector"
        return "sparse_float_vector" if self.lite else "binary_vector"

    # -- collections ------------------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self.client.list_collections())

    def exists(self, name: str) -> bool:
        return bool(self.client.has_collection(name))

    def config(self, name: str) -> CollectionConfig:
        """The collection's configuration; 404 NOT_FOUND when there is no such collection."""
        with self._lock:
            cached = self._configs.get(name)
        if cached is not None:
            return cached
        if not self.exists(name):
            raise ApiError(ErrorCode.NOT_FOUND, f"no collection named {name!r}")
        props = self.client.describe_collection(name).get("properties") or {}
        raw = props.get(CONFIG_PROPERTY)
        if not raw:
            raise ApiError(ErrorCode.CONFLICT, f"collection {name!r} was not created by this service")
        cfg = CollectionConfig.from_json(raw)
        if self._has_vector_index(name):
            # After a restart Milvus holds collections released; the first use loads it (once: then cached).
            self.client.load_collection(name)
        with self._lock:
            self._configs[name] = cfg
        return cfg

    def create(self, cfg: CollectionConfig, index_params: dict[str, Any]) -> None:
        from pymilvus import DataType, MilvusClient

        with self._ddl:
            if self.exists(cfg.name):
                raise ApiError(ErrorCode.CONFLICT, f"collection {cfg.name!r} already exists")
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=ID_MAX_LENGTH)
            storage = self.storage(cfg.vector_type)
            if storage == "float_vector":
                schema.add_field("vector", DataType.FLOAT_VECTOR, dim=cfg.dim)
            elif storage == "binary_vector":
                schema.add_field("vector", DataType.BINARY_VECTOR, dim=cfg.dim)
            else:
                schema.add_field("vector", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_field("metadata", DataType.JSON)
            self.client.create_collection(
                cfg.name,
                schema=schema,
                index_params=self._index_params(cfg, self._milvus_kind(cfg.index), index_params),
                properties={CONFIG_PROPERTY: cfg.to_json()},
            )
            with self._lock:
                self._configs[cfg.name] = cfg

    def drop(self, name: str) -> None:
        self.config(name)
        with self._ddl:
            self.client.drop_collection(name)
            with self._lock:
                self._configs.pop(name, None)

    def row_count(self, name: str) -> int:
        return int(self.client.get_collection_stats(name).get("row_count", 0))

    # -- indexes ----------------------------------------------------------------------------------

    def _milvus_kind(self, kind: str) -> str:
        """The index Milvus itself builds: on Lite always the exact one (the searches are faiss's)."""
        return "exact" if self.lite else kind

    def _has_vector_index(self, name: str) -> bool:
        return "vector" in (self.client.list_indexes(name) or [])

    def build_params(self, cfg: CollectionConfig, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        """The index's build parameters with defaults (HNSW: M, efConstruction), as kept in the config."""
        index_type = self.index_type(cfg, kind)
        if index_type == "HNSW":
            return {**HNSW_DEFAULTS, **{k: v for k, v in params.items() if k in HNSW_DEFAULTS}}
        if index_type == "BIN_IVF_FLAT":
            return {**IVF_DEFAULTS, **{k: v for k, v in params.items() if k in IVF_DEFAULTS}}
        return {}

    def index_type(self, cfg: CollectionConfig, kind: str) -> str:
        storage = self.storage(cfg.vector_type)
        if storage == "float_vector":
            return "FLAT" if kind == "exact" else "HNSW"
        if storage == "binary_vector":
            return "BIN_FLAT" if kind == "exact" else "BIN_IVF_FLAT"
        if kind != "exact":
            raise ApiError(
                ErrorCode.INVALID_REQUEST,
                "Milvus Lite has one index for fingerprints (exact, sparse); an approximate one needs a Milvus server",
            )
        return "SPARSE_INVERTED_INDEX"

    def milvus_metric(self, cfg: CollectionConfig) -> str:
        if cfg.vector_type == "float":
            return FLOAT_METRICS[cfg.metric]
        return "IP" if self.lite else BINARY_METRICS[cfg.metric]

    def _index_params(self, cfg: CollectionConfig, kind: str, params: dict[str, Any]) -> Any:
        from pymilvus import MilvusClient

        index_type = self.index_type(cfg, kind)
        build = self.build_params(cfg, kind, params)
        out = MilvusClient.prepare_index_params()
        out.add_index(field_name="vector", index_type=index_type, metric_type=self.milvus_metric(cfg), params=build)
        return out

    def describe_index(self, name: str) -> dict[str, Any] | None:
        """The vector index searches use, or None when the collection has none.

        On a server: Milvus's description. On Lite: the in-process index the config names
        (Lite's own index is only what makes the file loadable).
        """
        if self.lite:
            cfg = self.config(name)
            if cfg.index == "none":
                return None
            return {
                "index_type": self.index_type(cfg, cfg.index),
                "metric_type": self.milvus_metric(cfg) if cfg.vector_type == "float" else "TANIMOTO",
                "engine": "in-process (faiss)" if cfg.vector_type == "float" else "in-process (exact Tanimoto)",
                **cfg.index_params,
            }
        if not self._has_vector_index(name):
            return None
        info = self.client.describe_index(name, "vector") or {}
        return {k: v for k, v in info.items() if isinstance(v, (str, int, float, bool))}

    def set_index(self, name: str, kind: str, params: dict[str, Any]) -> CollectionConfig:
        """Replace the vector index with ``kind`` (release, drop, create, load)."""
        cfg = self.config(name)
        index_params = self._index_params(cfg, self._milvus_kind(kind), params)  # raises before anything is dropped
        build = self.build_params(cfg, kind, params)
        new = CollectionConfig(**{**asdict(cfg), "index": kind, "index_params": build})
        with self._ddl:
            if not self.lite or not self._has_vector_index(name):
                self._drop_index_locked(name)
                self.client.create_index(name, index_params)
                self.client.load_collection(name)
            self.client.alter_collection_properties(name, {CONFIG_PROPERTY: new.to_json()})
            with self._lock:
                self._configs[name] = new
        return new

    def drop_index(self, name: str) -> bool:
        """Drop the vector index; the collection then answers no search until an index is set again."""
        cfg = self.config(name)
        new = CollectionConfig(**{**asdict(cfg), "index": "none", "index_params": {}})
        with self._ddl:
            # Lite keeps its (exact) index: the file stays loadable, so the in-process copy can be rebuilt.
            dropped = cfg.index != "none" if self.lite else self._drop_index_locked(name)
            self.client.alter_collection_properties(name, {CONFIG_PROPERTY: new.to_json()})
            with self._lock:
                self._configs[name] = new
        return dropped

    def _drop_index_locked(self, name: str) -> bool:
        if "vector" not in (self.client.list_indexes(name) or []):
            return False
        self.client.release_collection(name)
        self.client.drop_index(name, "vector")
        return True

    # -- rows -------------------------------------------------------------------------------------

    def existing_ids(self, name: str, ids: list[str]) -> list[str]:
        if not ids:
            return []
        rows = self.client.get(name, ids=ids, output_fields=["id"])
        return [str(r["id"]) for r in rows]

    def insert(self, name: str, rows: list[dict[str, Any]]) -> None:
        self.client.insert(name, rows)

    def upsert(self, name: str, rows: list[dict[str, Any]]) -> None:
        self.client.upsert(name, rows)

    def delete(self, name: str, ids: list[str]) -> int:
        present = self.existing_ids(name, ids)
        if present:
            self.client.delete(name, ids=present)
        return len(present)

    def get(self, name: str, ids: list[str], with_vector: bool = True) -> list[dict[str, Any]]:
        fields = ["id", "metadata", "vector"] if with_vector else ["id", "metadata"]
        return list(self.client.get(name, ids=ids, output_fields=fields))

    def search(
        self,
        name: str,
        data: list[Any],
        limit: int,
        expr: str,
        with_vector: bool,
        search_params: dict[str, Any],
    ) -> list[list[dict[str, Any]]]:
        fields = ["metadata", "vector"] if with_vector else ["metadata"]
        hits = self.client.search(
            name,
            data,
            anns_field="vector",
            limit=limit,
            filter=expr,
            output_fields=fields,
            search_params={"params": search_params},
        )
        return [list(q) for q in hits]

    def scan(self, name: str, batch_bytes: int = 64 * 1024 * 1024) -> Iterator[list[dict[str, Any]]]:
        """Every row ``{id, vector, metadata}`` in batches of about ``batch_bytes`` (the in-process index's rebuild).

        Few large pages: each page costs Lite a pass over every row, and one page must stay
        under Lite's 256 MiB gRPC message and pymilvus's 16,384 rows.
        """
        cfg = self.config(name)
        row_bytes = 4 * cfg.dim + 512 if cfg.vector_type == "float" else 1024
        batch_size = max(1000, min(16384, batch_bytes // row_bytes))  # pymilvus allows 16,384 at most
        it = self.client.query_iterator(
            name, batch_size=batch_size, filter="", output_fields=["id", "vector", "metadata"]
        )
        try:
            while batch := it.next():
                yield [{"id": str(r["id"]), "vector": r["vector"], "metadata": r.get("metadata") or {}} for r in batch]
        finally:
            it.close()

    def ids(self, name: str) -> Iterator[str]:
        """Every id in the collection (a snapshot's check against Lite: ids only, no vectors)."""
        it = self.client.query_iterator(name, batch_size=16384, filter="", output_fields=["id"])
        try:
            while batch := it.next():
                yield from (str(r["id"]) for r in batch)
        finally:
            it.close()

    def compact(self, name: str) -> None:
        self.config(name)
        self.client.flush(name)
        self.client.compact(name)

    def close(self) -> None:
        self.client.close()
