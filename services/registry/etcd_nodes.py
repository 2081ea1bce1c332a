"""Node agents on the etcd store: one lease per node, renewed by the node's beat.

A claimed node is a key ``<prefix>nodes/<node>`` (the digest of its secret) on a lease of its
own; every instance registered through the node is put on that same lease, not on one of its own.
So the node's beat keeps one lease alive for all of its instances, and a node that dies takes its
instances with it when that lease runs out, even with every registry replica down (the lease TTL
spans the critical window plus ``deregister_after``, as an instance's own lease does).

Writes per beat (measured by ``bench/registry_nodes.py``): one etcd transaction that puts every
renewed instance record (the new ``last_heartbeat``, and load and status) and deletes the ones a
full beat dropped — one raft proposal however many instances — plus a lease keep-alive at most
once per TTL per replica. Each record is compare-and-set on its revision, so a beat never
overwrites a drain or a sweep written meanwhile: should any compare fail, the beat falls back to
one compare-and-set per instance.
"""

from __future__ import annotations

import time
from typing import Any

from services.common.clock import iso_utc
from services.common.envelope import ApiError, ErrorCode
from services.registry.nodes import NodeBeatResult, NodeItem, NodeRecord, claim_decision
from services.registry.ownership import Caller, secret_digest
from services.registry.records import copy_instance

CLAIM_TRIES = 5
TXN_KEYS = 64  # instance keys per transaction; etcd refuses more than --max-txn-ops (128) operations


class EtcdNodeBeats:
    """The etcd catalog's node side; mixed into :class:`~services.registry.etcd_catalog.EtcdCatalog`.

    Uses the catalog's mirror (``_entries``, ``_node_ids``), its lease bookkeeping
    (``_refreshed``, ``_keep_alive``, ``lease_ttl``) and its own-write appliers (``_wrote``, ``_deleted``).
    """

    _node_ids: dict[str, set[str]]
    _nodes_seen: dict[str, NodeRecord]

    def _init_nodes(self) -> None:
        """No restore: node records are read from etcd when a node is first named here."""
        self._node_ids = {}
        self._nodes_seen = {}

    def claim_node(self, node: str, secret: str, caller: Caller) -> None:
        digest = secret_digest(secret)
        seen = self._nodes_seen.get(node)
        if seen is not None and seen.secret_sha256 == digest:
            return  # verified before; the beat learns if its lease ran out since
        store = self.store  # type: ignore[attr-defined]
        for _ in range(CLAIM_TRIES):  # two replicas may claim one node at once (two of its workers registering)
            kv = store.get_node(node)
            record = NodeRecord(str(kv.value.get("secret_sha256", "")), 0.0, kv.lease) if kv else None
            if not claim_decision(record, secret, caller, node):
                self._nodes_seen[node] = record  # type: ignore[assignment]
                return
            lease = record.lease if record else store.grant(self.lease_ttl)  # type: ignore[attr-defined]
            key = store.node_key(node)
            written, _ = store.txn(
                [store.unchanged_since(key, kv.mod_revision if kv else 0)],
                [store.put_op(key, {"node": node, "secret_sha256": digest}, lease)],
            )
            if written:
                self._refreshed[lease] = time.monotonic()  # type: ignore[attr-defined]
                self._nodes_seen[node] = NodeRecord(digest, 0.0, lease)
                return
            if record is None:
                store.revoke(lease)  # the other claim won: decide again on its record
        raise ApiError(ErrorCode.CONFLICT, f"node {node!r} kept changing while it was claimed; try again")

    def _lease_for(self, caller: Caller) -> tuple[int, bool]:
        """The lease a registration goes on: its node's (claimed in ``caller()``), else a new one it owns."""
        record = self._nodes_seen.get(caller.node) if caller.node else None
        if record is not None:
            return record.lease, False
        lease = self.store.grant(self.lease_ttl)  # type: ignore[attr-defined]
        self._refreshed[lease] = time.monotonic()  # type: ignore[attr-defined]
        return lease, True

    def node_heartbeat(self, node: str, items: list[NodeItem], full: bool) -> NodeBeatResult | None:
        record = self._nodes_seen.get(node)
        if record is None or not self._keep_alive(record.lease):  # type: ignore[attr-defined]
            self._nodes_seen.pop(node, None)
            return None  # the lease ran out (its instances went with it): the agent claims again
        stamp = iso_utc(self.clock.now())  # type: ignore[attr-defined]
        result = NodeBeatResult()
        wanted: dict[str, NodeItem] = {}
        with self._lock:  # type: ignore[attr-defined]
            mine = self._node_ids.get(node, set())
            for item in items:
                if item.instance_id in mine:
                    wanted[item.instance_id] = item
                else:
                    result.unknown.append(item.instance_id)
            others = [iid for iid in mine if iid not in wanted]
            if not full:
                wanted.update({iid: NodeItem(iid) for iid in others})
            renew = {iid: self._copy(iid) for iid in wanted}
            drop = {iid: self._copy(iid) for iid in others} if full else {}
        for entry in renew.values():
            _renew(entry, stamp, wanted[entry.inst.instance_id])
        ids = list(renew) + list(drop)
        for start in range(0, len(ids), TXN_KEYS):
            self._write_chunk(ids[start : start + TXN_KEYS], renew, drop, stamp, wanted)
        result.renewed = len(renew)
        result.removed = sorted(drop)
        return result

    def _copy(self, iid: str) -> Any:
        entry = self._entries[iid]  # type: ignore[attr-defined]
        return type(entry)(**{**entry.__dict__, "inst": copy_instance(entry.inst)})

    def _write_chunk(
        self, ids: list[str], renew: dict[str, Any], drop: dict[str, Any], stamp: str, wanted: dict[str, NodeItem]
    ) -> None:
        """One transaction for ``ids``. If another write got in between (a drain, a sweep, a beat through
        another replica whose change our watch has not delivered yet), read the current records in one
        round trip and try once more; then per-instance compare-and-set."""
        store = self.store  # type: ignore[attr-defined]
        for attempt in range(2):
            written, revision = store.txn(*self._chunk_ops(ids, renew, drop))
            if written:
                for iid in ids:
                    if iid in renew:
                        self._wrote(iid, renew[iid], revision, renew[iid].lease)  # type: ignore[attr-defined]
                    else:
                        self._deleted(iid, revision)  # type: ignore[attr-defined]
                return
            if attempt == 0:
                current = store.get_many(ids)
                ids = [iid for iid in ids if iid in current]  # gone meanwhile: nothing to renew or drop
                for iid in ids:
                    entry = self._entry_of(iid, current[iid])  # type: ignore[attr-defined]
                    if iid in renew:
                        _renew(entry, stamp, wanted[iid])
                        renew[iid] = entry
                    else:
                        drop[iid] = entry
        for iid in ids:
            if iid in renew:
                self._update(iid, lambda e, item=wanted[iid]: _renew(e, stamp, item))  # type: ignore[attr-defined]
            else:
                self._deleted(iid, store.delete(iid))  # type: ignore[attr-defined]

    def _chunk_ops(
        self, ids: list[str], renew: dict[str, Any], drop: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        store = self.store  # type: ignore[attr-defined]
        compare, ops = [], []
        for iid in ids:
            entry = renew.get(iid) or drop[iid]
            key = store.key(iid)
            compare.append(store.unchanged_since(key, entry.mod_revision))
            ops.append(store.put_op(key, _record_of(entry), entry.lease) if iid in renew else store.delete_op(key))
        return compare, ops

    def sweep_nodes(self) -> list[str]:
        """Nothing to forget by hand: a silent node's record goes with its lease."""
        return []


def _renew(entry: Any, stamp: str, item: NodeItem) -> None:
    entry.inst.last_heartbeat = stamp
    if item.load is not None:
        entry.inst.load = item.load
    if item.status is not None:
        entry.reported = item.status
    entry.ttl_critical = False
    entry.recompute()


def _record_of(entry: Any) -> dict[str, Any]:
    from services.registry.etcd_catalog import _record  # the catalog imports this module

    return _record(entry)
