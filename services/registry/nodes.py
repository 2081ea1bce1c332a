"""Node agents: one heartbeat per host renews every instance the host runs (DESIGN "Node agents").

Consul's agents check their services locally and the servers hear from the node; Kubernetes keeps
one lease per node, not per pod. Here a launcher is the node agent for its replicas:

- **A node is claimed with a secret the agent chooses.** Any write that carries ``X-Node`` and
  ``X-Node-Secret`` claims the node if nobody holds it (the agent's own ``PUT /nodes/{node}`` or
  the first registration of one of its workers, whichever reaches the registry first), and must
  match the stored digest afterwards. A node held with another secret is 409 until its record is
  gone (SQLite: no instances left and silent past TTL + deregister_after; etcd: its lease expired),
  or an operator takes it over (``?take_over=true``).
- **Instances registered with a verified node belong to it** (:attr:`Owner.node`): the node's
  secret may renew, and a full beat may remove, exactly those. Workers still register themselves
  and keep their own instance secret for maintenance and deregistration.
- **A beat** ``{instances: [{instance_id, status, load}], full}`` renews every listed instance;
  ``full: true`` deregisters the node's instances it omits, ``full: false`` renews them unchanged.
  Listed ids the registry does not hold for this node come back in ``unknown``: the agent has
  those workers register again.

This module holds the request parsing and the SQLite catalog's side (:class:`NodeBeats`, mixed
into :class:`~services.registry.catalog.Catalog`); the routes are :mod:`services.registry.node_routes`
and the etcd side, with one lease per node, :mod:`services.registry.etcd_nodes`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from services.common.clock import iso_utc
from services.common.envelope import ApiError, ErrorCode
from services.common.instance import INSTANCE_ID_RE, validate_health, validate_load
from services.registry.ownership import Caller, secret_digest

NODE_HEADER = "X-Node"
NODE_SECRET_HEADER = "X-Node-Secret"
NODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")
MAX_BEAT_INSTANCES = 1024  # one host's replicas; a bigger beat is a 413, not a slow request
MIN_SECRET_CHARS = 16


@dataclass(frozen=True)
class NodeItem:
    """One instance in a node beat: its id, and the status and load its agent measured (None: unchanged)."""

    instance_id: str
    status: str | None = None
    load: dict[str, Any] | None = None


@dataclass
class NodeBeatResult:
    """What a node beat did: how many instances it renewed, the ids it did not know, the ids it removed."""

    renewed: int = 0
    unknown: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


@dataclass
class NodeRecord:
    """A claimed node as the catalog keeps it: its secret's digest and when it last beat (monotonic)."""

    secret_sha256: str
    last_beat: float
    lease: int = 0  # etcd only: the lease its instances are attached to


def validate_node(node: str) -> str:
    if not isinstance(node, str) or not NODE_RE.match(node):
        raise ApiError(ErrorCode.INVALID_REQUEST, "node names are 1-128 characters of [A-Za-z0-9._-]")
    return node


def parse_node_beat(body: dict[str, Any]) -> tuple[list[NodeItem], bool]:
    """The instances and ``full`` flag of a beat body, bounded and validated (400/413 otherwise)."""
    full = body.get("full", False)
    if not isinstance(full, bool):
        raise ApiError(ErrorCode.INVALID_REQUEST, "'full' must be true or false")
    raw = body.get("instances", [])
    if not isinstance(raw, list):
        raise ApiError(ErrorCode.INVALID_REQUEST, "'instances' must be a list")
    if len(raw) > MAX_BEAT_INSTANCES:
        raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, f"a node beat lists at most {MAX_BEAT_INSTANCES} instances")
    items: list[NodeItem] = []
    seen: set[str] = set()
    for item in raw:
        if not isinstance(item, dict):
            raise ApiError(ErrorCode.INVALID_REQUEST, "each instance is an object with 'instance_id'")
        iid = item.get("instance_id")
        if not isinstance(iid, str) or not INSTANCE_ID_RE.match(iid):
            raise ApiError(ErrorCode.INVALID_REQUEST, f"bad instance_id {str(iid)[:64]!r}")
        if iid in seen:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"instance {iid!r} is listed twice")
        seen.add(iid)
        status = validate_health(item["status"]) if item.get("status") is not None else None
        load = validate_load(item["load"]) if item.get("load") is not None else None
        items.append(NodeItem(iid, status, load))
    return items, full


def node_claim(headers: Any) -> tuple[str, str] | None:
    """(node, secret) named by a request's ``X-Node`` headers; None when it names no node."""
    node = headers.get(NODE_HEADER, "").strip()
    if not node:
        return None
    secret = headers.get(NODE_SECRET_HEADER, "").strip()
    validate_node(node)
    if len(secret) < MIN_SECRET_CHARS:
        need = f"{NODE_HEADER} needs {NODE_SECRET_HEADER} of at least {MIN_SECRET_CHARS} characters"
        raise ApiError(ErrorCode.UNAUTHORIZED, need)
    return node, secret


def node_conflict(node: str) -> ApiError:
    return ApiError(
        ErrorCode.CONFLICT,
        f"node {node!r} is held by another agent (a different {NODE_SECRET_HEADER}); it is free once its "
        "instances are gone, or an operator takes it over with ?take_over=true",
    )


def claim_decision(record: NodeRecord | None, secret: str, caller: Caller, node: str) -> bool:
    """Whether a claim needs a new record written (True) or holds the current one (False); 409 otherwise."""
    if record is None:
        return True
    if secret_digest(secret) == record.secret_sha256:
        return False
    if caller.operator and caller.take_over:
        return True
    raise node_conflict(node)


class NodeBeats:
    """The SQLite catalog's node side: claims, beats and the per-node index, under the catalog's lock.

    Mixed into :class:`~services.registry.catalog.Catalog`, whose ``_lock``, ``_entries``,
    ``_bump``, ``_remove``, ``store`` and ``clock`` it uses; the catalog calls
    :meth:`_index_node` from its ``_add``/``_remove`` so ``_node_ids`` always matches the entries.
    """

    _node_ids: dict[str, set[str]]
    _node_records: dict[str, NodeRecord]

    def _init_nodes(self) -> None:
        """Before the restore: the index, and the claimed nodes from the store (a fresh grace each)."""
        self._node_ids = {}
        self._node_records = {}
        load = getattr(self.store, "load_nodes", None)  # type: ignore[attr-defined]
        now = self.clock.monotonic()  # type: ignore[attr-defined]
        for node, digest in (load() if load else {}).items():
            self._node_records[node] = NodeRecord(digest, now)

    def _index_node(self, entry: Any, added: bool) -> None:
        node = entry.owner.node if entry.owner is not None else ""
        if not node:
            return
        ids = self._node_ids.setdefault(node, set())
        if added:
            ids.add(entry.inst.instance_id)
        else:
            ids.discard(entry.inst.instance_id)
            if not ids:
                del self._node_ids[node]

    def node_instances(self, node: str) -> list[str]:
        with self._lock:  # type: ignore[attr-defined]
            return sorted(self._node_ids.get(node, ()))

    def claim_node(self, node: str, secret: str, caller: Caller) -> None:
        """Claim ``node`` for ``secret``, or check that it is held with it (409/401 otherwise)."""
        with self._lock:  # type: ignore[attr-defined]
            record = self._node_records.get(node)
            if not claim_decision(record, secret, caller, node):
                return
            digest = secret_digest(secret)
            self.store.put_node(node, digest)  # type: ignore[attr-defined]
            self._node_records[node] = NodeRecord(digest, self.clock.monotonic())  # type: ignore[attr-defined]

    def node_heartbeat(self, node: str, items: list[NodeItem], full: bool) -> NodeBeatResult | None:
        """Apply one beat of a verified node; None when the node is not claimed (the agent claims again)."""
        clock = self.clock  # type: ignore[attr-defined]
        result = NodeBeatResult()
        with self._lock:  # type: ignore[attr-defined]
            record = self._node_records.get(node)
            if record is None:
                return None
            now = clock.monotonic()
            record.last_beat = now
            stamp = iso_utc(clock.now())
            mine = self._node_ids.get(node, set())
            listed = set()
            changed: list[str] = []
            for item in items:
                entry = self._entries.get(item.instance_id)  # type: ignore[attr-defined]
                if entry is None or item.instance_id not in mine:
                    result.unknown.append(item.instance_id)
                    continue
                listed.add(item.instance_id)
                if entry.renew(now, stamp, item.status, item.load):
                    changed.append(entry.inst.service_name)
            others = [iid for iid in mine if iid not in listed]
            if full:
                gone = [self._entries[iid] for iid in others]  # type: ignore[attr-defined]
                if gone:
                    index = self._bump(changed + [e.inst.service_name for e in gone])  # type: ignore[attr-defined]
                    changed = []
                    for entry in gone:
                        self._remove(entry.inst.instance_id)  # type: ignore[attr-defined]
                    self.store.delete([e.inst.instance_id for e in gone], index)  # type: ignore[attr-defined]
                    result.removed = sorted(e.inst.instance_id for e in gone)
            else:
                for iid in others:
                    entry = self._entries[iid]  # type: ignore[attr-defined]
                    if entry.renew(now, stamp, None, None):
                        changed.append(entry.inst.service_name)
                listed.update(others)
            if changed:
                self._bump(changed)  # type: ignore[attr-defined]
            result.renewed = len(listed)
        return result

    def sweep_nodes(self) -> list[str]:
        """Forget nodes with no instances left that were silent past TTL + deregister_after."""
        with self._lock:  # type: ignore[attr-defined]
            cutoff = self.clock.monotonic() - self.ttl_s - self.deregister_after_s  # type: ignore[attr-defined]
            gone = [n for n, r in self._node_records.items() if r.last_beat < cutoff and n not in self._node_ids]
            for node in gone:
                del self._node_records[node]
            if gone:
                self.store.delete_nodes(gone)  # type: ignore[attr-defined]
        return gone


def _json(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"type": "object"}}}}


_NODE_PARAMS = [
    {"name": "node", "in": "path", "required": True, "schema": {"type": "string", "pattern": NODE_RE.pattern}},
    {"name": NODE_HEADER, "in": "header", "required": True, "schema": {"type": "string"}},
    {"name": NODE_SECRET_HEADER, "in": "header", "required": True, "schema": {"type": "string", "minLength": 16}},
]
_ERRORS = {
    "400": _json("a node name or node header that is not [A-Za-z0-9._-], 1-128 characters"),
    "401": _json("no or wrong token; X-Node does not name this node"),
    "409": _json("the node is held under another secret"),
}
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/nodes/{node}": {
        "put": {
            "operationId": "claimNode",
            "summary": "Claim a node for a node agent (idempotent for the holder of its secret)",
            "security": [{"bearer": []}],
            "parameters": _NODE_PARAMS,
            "responses": {"200": _json("node, heartbeat_interval_s, ttl_s, deregister_after_s"), **_ERRORS},
        },
        "get": {
            "operationId": "nodeInstances",
            "summary": "The instance ids registered through a node",
            "parameters": _NODE_PARAMS[:1],
            "responses": {"200": _json("node, instances: [id]"), "400": _ERRORS["400"]},
        },
    },
    "/api/v1/nodes/{node}/heartbeat": {
        "put": {
            "operationId": "nodeHeartbeat",
            "summary": "One beat for a node's instances: renew the listed ones (full: remove the omitted ones, "
            "else renew them too); unknown ids come back so their workers register again",
            "security": [{"bearer": []}],
            "parameters": _NODE_PARAMS,
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "full": {"type": "boolean"},
                                "instances": {
                                    "type": "array",
                                    "maxItems": MAX_BEAT_INSTANCES,
                                    "items": {
                                        "type": "object",
                                        "required": ["instance_id"],
                                        "properties": {
                                            "instance_id": {"type": "string"},
                                            "status": {"type": "string", "enum": ["passing", "warning", "critical"]},
                                            "load": {"type": "object"},
                                        },
                                    },
                                },
                            },
                        }
                    }
                }
            },
            "responses": {
                **_ERRORS,
                "200": _json("renewed, unknown: [id], removed: [id], heartbeat_interval_s, ttl_s"),
                "400": _json("bad body, node name or node header"),
                "404": _json("the node is not claimed (its lease ran out): claim it again"),
                "413": _json("more instances than one beat may list"),
            },
        }
    },
}
