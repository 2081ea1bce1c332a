"""Request checks shared by REST and gRPC: names, specs, vectors, items, limits.

Everything a request carries is checked here before anything is written, so a bad item
fails the whole request with a 4xx and leaves the collection as it was.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from services.common.envelope import ApiError, ErrorCode
from vectors.fingerprints import bits_from_dense, morgan_bits
from vectors.settings import VectorSettings
from vectors.store import BINARY_METRICS, FLOAT_METRICS, ID_MAX_LENGTH, INDEX_KINDS, CollectionConfig

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
ID_RE = re.compile(rf"^[\x20-\x7e]{{1,{ID_MAX_LENGTH}}}$")  # printable ASCII: ids show up in URLs
MAX_DESCRIPTION = 1000
INDEX_PARAM_RANGES = {"M": (4, 64), "efConstruction": (8, 512), "nlist": (1, 65536)}


def bad(details: str, code: ErrorCode = ErrorCode.INVALID_REQUEST) -> ApiError:
    return ApiError(code, details)


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise bad(f"collection name must match {NAME_RE.pattern}")
    return name


def _int(body: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise bad(f"{key} must be an integer")
    if not low <= int(value) <= high:
        raise bad(f"{key} must be between {low} and {high}, got {int(value)}")
    return int(value)


def parse_spec(body: dict[str, Any], settings: VectorSettings) -> tuple[CollectionConfig, dict[str, Any]]:
    """A create-collection body → the configuration and the index's build parameters."""
    unknown = set(body) - {"name", "dim", "metric", "vector_type", "index", "description", "index_params"}
    if unknown:
        raise bad(f"unknown field(s): {', '.join(sorted(unknown))}")
    name = check_name(body.get("name"))
    vector_type = body.get("vector_type") or "float"
    if vector_type not in ("float", "binary"):
        raise bad("vector_type must be float or binary")
    metrics = FLOAT_METRICS if vector_type == "float" else BINARY_METRICS
    metric = body.get("metric") or next(iter(metrics))
    if metric not in metrics:
        raise bad(f"metric of a {vector_type} collection must be one of {', '.join(metrics)}")
    if "dim" not in body:
        raise bad("dim is required")
    dim = _int(body, "dim", 0, 1, settings.max_dim)
    if vector_type == "binary" and dim % 8:
        raise bad("dim of a binary collection must be a multiple of 8")
    index = body.get("index") or "exact"
    if index not in INDEX_KINDS:
        raise bad(f"index must be one of {', '.join(INDEX_KINDS)}")
    description = body.get("description") or ""
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise bad(f"description must be text of at most {MAX_DESCRIPTION} characters")
    cfg = CollectionConfig(name, dim, metric, vector_type, index, description)
    return cfg, index_params(body.get("index_params"))


def index_params(raw: Any) -> dict[str, Any]:
    """Optional build parameters of an approximate index (HNSW's M/efConstruction, IVF's nlist), bounded."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise bad("index_params must be an object")
    unknown = set(raw) - set(INDEX_PARAM_RANGES)
    if unknown:
        raise bad(f"unknown index_params: {', '.join(sorted(unknown))} (known: {', '.join(INDEX_PARAM_RANGES)})")
    return {key: _int(raw, key, 0, *INDEX_PARAM_RANGES[key]) for key in raw}


def check_top_k(body: dict[str, Any], settings: VectorSettings) -> int:
    return _int(body, "top_k", 10, 1, settings.max_top_k)


def parse_vector(raw: Any, cfg: CollectionConfig, where: str) -> np.ndarray | list[int]:
    """One vector in any accepted form → float32 array (float collections) or set-bit indices (binary)."""
    if cfg.vector_type == "float":
        if isinstance(raw, dict) and "values" in raw:
            raw = raw["values"]
        if not isinstance(raw, (list, np.ndarray)):
            raise bad(f"{where}: a vector must be a list of {cfg.dim} numbers")
        if len(raw) != cfg.dim:
            raise bad(f"{where}: vector has dimension {len(raw)}; collection {cfg.name!r} has {cfg.dim}")
        try:  # numpy would read "1" or True as a number: only real numbers pass
            arr = np.asarray(raw) if isinstance(raw, list) else raw
        except (TypeError, ValueError):
            arr = np.asarray([None])
        if arr.ndim != 1 or arr.dtype.kind not in "fi" or any(type(v) is bool for v in raw):
            raise bad(f"{where}: a vector must hold numbers only")
        arr = arr.astype(np.float32)
        if not np.all(np.isfinite(arr)):
            raise bad(f"{where}: a vector must hold finite numbers only")
        if cfg.metric == "cosine" and not np.any(arr):
            raise bad(f"{where}: the zero vector has no cosine similarity")
        return arr
    bits = _binary_bits(raw, cfg, where)
    if not bits:
        raise bad(f"{where}: a fingerprint with no bits set has no Tanimoto similarity")
    return bits


def _binary_bits(raw: Any, cfg: CollectionConfig, where: str) -> list[int]:
    if isinstance(raw, dict):
        if raw.get("smiles"):
            return morgan_bits(raw["smiles"], cfg.dim)
        if "on_bits" in raw:
            bits = raw["on_bits"]
            if not isinstance(bits, list) or not all(
                isinstance(b, int) and not isinstance(b, bool) and 0 <= b < cfg.dim for b in bits
            ):
                raise bad(f"{where}: on_bits must be bit indices in [0, {cfg.dim})")
            return sorted(set(bits))
        raw = raw.get("values")
    if not isinstance(raw, list):
        raise bad(f"{where}: a fingerprint is a list of {cfg.dim} 0/1 values, {{on_bits: [...]}} or {{smiles}}")
    if len(raw) != cfg.dim:
        raise bad(f"{where}: vector has dimension {len(raw)}; collection {cfg.name!r} has {cfg.dim}")
    if not all(v in (0, 1) and not isinstance(v, bool) for v in raw):
        raise bad(f"{where}: a fingerprint's values must be 0 or 1")
    return bits_from_dense(raw)


def check_id(raw: Any, where: str) -> str:
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str) or not ID_RE.match(raw):
        raise bad(f"{where}: id must be printable ASCII text of 1 to {ID_MAX_LENGTH} characters")
    return raw


def check_ids(raw: Any, settings: VectorSettings) -> list[str]:
    if not isinstance(raw, list) or not raw:
        raise bad("ids must be a non-empty list")
    if len(raw) > settings.max_items:
        raise bad(f"{len(raw)} ids; at most {settings.max_items} per request", ErrorCode.PAYLOAD_TOO_LARGE)
    return list(dict.fromkeys(check_id(x, f"ids[{i}]") for i, x in enumerate(raw)))


def check_metadata(raw: Any, settings: VectorSettings, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise bad(f"{where}: metadata must be an object")
    size = len(json.dumps(raw, separators=(",", ":"), allow_nan=False).encode()) if raw else 0
    if size > settings.max_metadata_bytes:
        raise bad(
            f"{where}: metadata of {size} bytes; at most {settings.max_metadata_bytes}", ErrorCode.PAYLOAD_TOO_LARGE
        )
    return raw


def parse_items(body: dict[str, Any], cfg: CollectionConfig, settings: VectorSettings) -> list[dict[str, Any]]:
    """``{items: [{id, vector | smiles, metadata}]}`` → rows with the public vector form, all checked."""
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise bad("items must be a non-empty list of {id, vector, metadata}")
    if len(items) > settings.max_items:
        raise bad(f"{len(items)} items; at most {settings.max_items} per request", ErrorCode.PAYLOAD_TOO_LARGE)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"items[{i}]"
        if not isinstance(item, dict):
            raise bad(f"{where} must be an object")
        item_id = check_id(item.get("id"), where)
        if item_id in seen:
            raise bad(f"{where}: id {item_id!r} appears twice in this request")
        seen.add(item_id)
        vector_raw = item.get("vector")
        if vector_raw is None and item.get("smiles"):
            vector_raw = {"smiles": item["smiles"]}
        if vector_raw is None:
            raise bad(f"{where}: vector is required")
        vector = parse_vector(vector_raw, cfg, where)
        rows.append(
            {"id": item_id, "vector": vector, "metadata": check_metadata(item.get("metadata"), settings, where)}
        )
    return rows


def parse_queries(body: dict[str, Any], cfg: CollectionConfig, settings: VectorSettings) -> list[Any]:
    vectors = body.get("vectors")
    if vectors is None and body.get("smiles"):
        smiles = body["smiles"]
        vectors = [{"smiles": s} for s in (smiles if isinstance(smiles, list) else [smiles])]
    if vectors is None and "vector" in body:
        vectors = [body["vector"]]
    if not isinstance(vectors, list) or not vectors:
        raise bad("vectors must be a non-empty list of query vectors")
    if len(vectors) > settings.max_queries:
        raise bad(f"{len(vectors)} query vectors; at most {settings.max_queries}", ErrorCode.PAYLOAD_TOO_LARGE)
    return [parse_vector(v, cfg, f"vectors[{i}]") for i, v in enumerate(vectors)]
