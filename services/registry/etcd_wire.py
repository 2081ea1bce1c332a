"""etcd's v3 JSON gateway on the wire: base64 keys and values, prefix ranges, transaction
operations, and the decoded keys and watch events the catalog reads.

Apart from :mod:`services.registry.etcd_store` so that module is the client's failover, calls
and watch stream alone; the etcd catalog and its node side build transactions with these.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class KeyValue:
    """One key as the catalog sees it."""

    key: str
    value: dict[str, Any]
    mod_revision: int
    lease: int


@dataclass
class WatchEvent:
    """A put (``value`` set) or a delete (``value`` None) at ``revision``.

    ``held``: a put the reader already holds at this revision or later (its own write, applied
    when etcd answered it), so its value was not decoded (``None``); only its revision counts.
    """

    key: str
    value: dict[str, Any] | None
    revision: int
    lease: int
    held: bool = False


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def range_end(prefix: str) -> str:
    """The first key after every key starting with ``prefix`` (etcd's prefix range)."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return base64.b64encode(bytes(raw)).decode()


def put_op(key: str, value: dict[str, Any], lease: int) -> dict[str, Any]:
    return {"request_put": {"key": b64(key), "value": b64(json.dumps(value)), "lease": lease}}


def delete_op(key: str) -> dict[str, Any]:
    return {"request_delete_range": {"key": b64(key)}}


def mod_equals(key: str, mod_revision: int) -> dict[str, Any]:
    """Compare: ``key``'s mod revision is exactly ``mod_revision``."""
    return {"key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": mod_revision}


def unchanged_since(key: str, mod_revision: int) -> dict[str, Any]:
    """Compare: ``key`` is still at ``mod_revision`` (0: it does not exist)."""
    if not mod_revision:
        return {"key": b64(key), "target": "VERSION", "result": "EQUAL", "version": 0}
    return mod_equals(key, mod_revision)


def decode_kv(raw: dict[str, Any]) -> KeyValue:
    return KeyValue(
        key=unb64(raw["key"]),
        value=json.loads(unb64(raw.get("value", ""))),
        mod_revision=int(raw["mod_revision"]),
        lease=int(raw.get("lease", 0) or 0),
    )


def decode_event(raw: dict[str, Any], held: Callable[[str, int], bool] | None = None) -> WatchEvent:
    """One watch event; a put for which ``held(key, revision)`` is true keeps its value undecoded."""
    kv = raw["kv"]
    key, revision, lease = unb64(kv["key"]), int(kv["mod_revision"]), int(kv.get("lease", 0) or 0)
    if raw.get("type") == "DELETE":
        return WatchEvent(key, None, revision, lease)
    if held is not None and held(key, revision):
        return WatchEvent(key, None, revision, lease, held=True)
    return WatchEvent(key, json.loads(unb64(kv.get("value", ""))), revision, lease)
