"""Node agents on the etcd store: one lease per node, renewed by the node's beat.

A claimed node is a key ``<prefix>nodes/<node>`` (the digest of its secret) on a lease of its
own; every instance registered through the node is put on that same lease, not on one of its own.
So the node's beat keeps one lease alive for all of its instances, and a node that dies takes its
instances with it when that lease runs out, even with every registry replica down (the lease TTL
spans the critical window plus ``deregister_after``, as an instance's own lease does).

Writes per beat (measured by ``bench/registry_nodes.py``): one etcd transaction that puts **one
key**, ``<prefix>beats/<node>`` (the beat's time and its instances' loads, on the node's lease),
and an instance record only where the beat changes what the record holds (a reported status, a
TTL-critical instance revived), plus deletions of the ones a full beat dropped; and a lease
keep-alive at most once per TTL per node, whichever replica takes the beat (the beat key says
it kept the lease alive, and the other replicas' watches note it), sent beside the transaction
rather than before it, so a beat waits for one round trip. Beats that arrive while another
beat's transaction is in flight share the next one (group commit, :mod:`services.registry.etcd_batch`):
under a burst the round trips no longer pile up. Every replica watches the beat key and applies it
to the node's instances in its mirror: each one's liveness, ``last_heartbeat`` (the later of its
record's and its node's beat) and load. It used to put every renewed record (N puts per beat:
at 10,000 instances, 2,000 puts/s that each replica's watch decoded, and registrations starved).

The transaction compares every renewed record's revision (compares are not writes), so a beat
never overwrites a drain or a sweep written meanwhile and never misses one it must undo: should
any compare fail, it reads those records and decides again, then falls back to one
compare-and-set per instance. A TTL sweep of a node's instance compares the node's beat key too,
so a beat that landed through another replica wins, as a record write did before.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from etcd3gw.exceptions import Etcd3Exception

from services.common.clock import iso_utc
from services.common.envelope import ApiError, ErrorCode
from services.registry.etcd_batch import GroupCommit
from services.registry.etcd_mirror import record_of
from services.registry.nodes import NodeBeatResult, NodeItem, NodeRecord, claim_decision
from services.registry.ownership import Caller, secret_digest
from services.registry.records import copy_instance

log = logging.getLogger(__name__)

CLAIM_TRIES = 5
TXN_KEYS = 64  # instance keys per transaction; etcd refuses more than --max-txn-ops (128) operations


class EtcdNodeBeats:
    """The etcd catalog's node side; mixed into :class:`~services.registry.etcd_catalog.EtcdCatalog`.

    Uses the catalog's mirror (``_entries``, ``_node_ids``, ``_applied``), its lease bookkeeping
    (``_refreshed``, ``_keep_alive``, ``lease_ttl``) and the mirror's own-write appliers (``_wrote``,
    ``_deleted``: :class:`~services.registry.etcd_mirror.EtcdMirror`); the mirror calls
    :meth:`_apply_beat` for every beat key its watch or listing brings.
    """

    _node_ids: dict[str, set[str]]
    _nodes_seen: dict[str, NodeRecord]
    _node_beats: dict[str, NodeBeatSeen]
    _beat_txns: GroupCommit

    def _init_nodes(self) -> None:
        """No restore: node records are read from etcd when a node is first named here; beats come
        with the listing and the watch."""
        self._node_ids = {}
        self._nodes_seen = {}
        self._node_beats = {}
        self._beat_txns = GroupCommit(lambda compare, success: self.store.txn(compare, success))  # type: ignore[attr-defined]

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
        if record is None:
            return None  # unknown here, or its lease ran out (its instances went with it): the agent claims again
        kept = self._keep_alive_beside(node, record.lease)
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
            seen = {iid: self._copy(iid) for iid in [*wanted, *(others if full else [])]}
        drop = set(others) if full else set()
        loads = {iid: (wanted[iid].load if wanted[iid].load is not None else seen[iid].inst.load) for iid in wanted}
        # "kept": this beat kept the node's lease alive, so the other replicas need not (one keep-alive
        # per node per TTL in all, not one per replica).
        beat = {"node": node, "at": stamp, "loads": loads, "kept": kept}
        ids = list(seen)
        try:
            for start in range(0, max(1, len(ids)), TXN_KEYS):  # the beat key goes with the first chunk
                chunk = ids[start : start + TXN_KEYS]
                self._write_chunk(node, chunk, seen, drop, stamp, wanted, beat if start == 0 else None, record.lease)
        except Etcd3Exception as exc:
            if "lease not found" not in f"{exc} {getattr(exc, 'detail_text', '')}":
                raise
            self._nodes_seen.pop(node, None)
            return None  # the lease ran out since another replica last kept it alive: claim again
        result.renewed = len(wanted)
        result.removed = sorted(drop)
        return result

    def _keep_alive_beside(self, node: str, lease: int) -> bool:
        """Keep the node's lease alive if this replica has not, nor heard that another did, within a
        TTL; True when this beat does (its beat key says so). The keep-alive runs beside the beat's
        transaction, not before it: a beat need not wait for a second etcd round trip, and it still
        learns that the lease ran out from its own transaction ("lease not found": claim again). A
        keep-alive that finds the lease gone makes the node's next beat claim again; one that fails
        is tried again by the next beat."""
        now = time.monotonic()
        if now - self._refreshed.get(lease, -math.inf) < self.refresh_every:  # type: ignore[attr-defined]
            return False
        self._refreshed[lease] = now  # type: ignore[attr-defined]  # one keep-alive at a time per lease

        def keep_alive() -> None:
            try:
                alive = self.store.refresh(lease)  # type: ignore[attr-defined]
            except Exception as exc:  # etcd unreachable: the next beat tries again
                log.warning("keep-alive of node %s's lease failed: %s", node, exc)
                alive = None
            if not alive and self._refreshed.get(lease) == now:  # type: ignore[attr-defined]
                self._refreshed.pop(lease, None)  # type: ignore[attr-defined]  # the next beat tries again
            if alive is False:
                seen = self._nodes_seen.get(node)
                if seen is not None and seen.lease == lease:
                    self._nodes_seen.pop(node, None)

        threading.Thread(target=keep_alive, name=f"keep-alive-{node}", daemon=True).start()
        return True

    def _copy(self, iid: str) -> Any:
        entry = self._entries[iid]  # type: ignore[attr-defined]
        return type(entry)(**{**entry.__dict__, "inst": copy_instance(entry.inst)})

    def _write_chunk(
        self,
        node: str,
        ids: list[str],
        seen: dict[str, Any],
        drop: set[str],
        stamp: str,
        wanted: dict[str, NodeItem],
        beat: dict[str, Any] | None,
        lease: int,
    ) -> None:
        """One transaction for ``ids`` (and the beat key, if given). If another write got in between
        (a drain, a sweep, a beat through another replica whose change our watch has not delivered
        yet), read the current records in one round trip and decide once more; then one
        compare-and-set per instance."""
        store = self.store  # type: ignore[attr-defined]
        beat_op = [store.put_op(store.beat_key(node), beat, lease)] if beat is not None else []
        for attempt in range(2):
            compare, ops, changed = self._chunk_ops(ids, seen, drop, stamp, wanted)
            # First try: beside the beats that arrive with it, in one transaction (etcd_batch).
            grouped = self._beat_txns.submit(compare, beat_op + ops) if attempt == 0 else None
            written, revision = grouped if grouped is not None else store.txn(compare, beat_op + ops)
            if written:
                if beat is not None:
                    self._beat_wrote(node, beat, revision, lease)
                for iid in changed:
                    self._wrote(iid, changed[iid], revision, changed[iid].lease)  # type: ignore[attr-defined]
                for iid in ids:
                    if iid in drop:
                        self._deleted(iid, revision)  # type: ignore[attr-defined]
                return
            if attempt == 0:
                current = store.get_many(ids)
                ids = [iid for iid in ids if iid in current]  # gone meanwhile: nothing to renew or drop
                seen = {iid: self._entry_of(iid, current[iid]) for iid in ids}  # type: ignore[attr-defined]
        if beat is not None:
            _, revision = store.txn([], beat_op)
            self._beat_wrote(node, beat, revision, lease)
        for iid in ids:
            if iid in drop:
                self._deleted(iid, store.delete(iid))  # type: ignore[attr-defined]
            else:
                self._update(iid, lambda e, item=wanted[iid]: _renew(e, stamp, item))  # type: ignore[attr-defined]

    def _chunk_ops(
        self, ids: list[str], seen: dict[str, Any], drop: set[str], stamp: str, wanted: dict[str, NodeItem]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
        """Compare every record of the chunk; put the ones the beat changes, delete the dropped ones."""
        store = self.store  # type: ignore[attr-defined]
        compare, ops, changed = [], [], {}
        for iid in ids:
            entry = seen[iid]
            key = store.key(iid)
            compare.append(store.unchanged_since(key, entry.mod_revision))
            if iid in drop:
                ops.append(store.delete_op(key))
                continue
            renewed = type(entry)(**{**entry.__dict__, "inst": copy_instance(entry.inst)})
            if _renew(renewed, stamp, wanted[iid]):
                changed[iid] = renewed
                ops.append(store.put_op(key, record_of(renewed), entry.lease))
        return compare, ops, changed

    # ----- the mirror's side of a beat (every replica, from the watch or its own write) ----
    def _beat_wrote(self, node: str, beat: dict[str, Any], revision: int, lease: int) -> None:
        """Apply our own beat at its revision: read-your-writes, no wait for the watch."""
        with self._lock:  # type: ignore[attr-defined]
            if revision > self._applied:  # type: ignore[attr-defined]
                self._apply_beat(node, beat, revision, lease)

    def _apply_beat(self, node: str, beat: dict[str, Any] | None, revision: int, lease: int) -> None:
        """Mirror a node's beat (lock held): its instances are alive now, with its time and loads.

        A deleted beat key (the node's lease ran out) only forgets it: its instances go by their own
        deletions, on the same lease. A beat is quiet: it moves no index, as a plain heartbeat.
        """
        known = self._node_beats.get(node)
        if known is not None and known.revision >= revision:
            return
        if beat is None:
            self._node_beats.pop(node, None)
            return
        now = self.clock.monotonic()  # type: ignore[attr-defined]
        stamp, loads = str(beat.get("at", "")), beat.get("loads") or {}
        if beat.get("kept") and lease:
            self._refreshed[lease] = time.monotonic()  # type: ignore[attr-defined]
        self._node_beats[node] = NodeBeatSeen(stamp, now, revision)
        for iid in self._node_ids.get(node, ()):
            entry = self._entries[iid]  # type: ignore[attr-defined]
            if iid not in loads:
                continue  # registered after this beat was built: its own registration renewed it
            entry.last_beat = now
            if stamp > (entry.inst.last_heartbeat or ""):
                entry.inst.last_heartbeat = stamp
            if isinstance(loads[iid], dict):
                entry.inst.load = loads[iid]  # swapped, never mutated in place (query_dicts relies on it)

    def _overlay_beat(self, entry: Any) -> None:
        """An entry read from its record, brought up to its node's last beat as this replica saw it."""
        node = entry.owner.node if entry.owner is not None else ""
        known = self._node_beats.get(node) if node else None
        if known is not None and known.stamp > (entry.inst.last_heartbeat or ""):
            entry.inst.last_heartbeat = known.stamp
            entry.last_beat = max(entry.last_beat, known.seen)

    def beat_guard(self, entry: Any) -> list[dict[str, Any]]:
        """Extra compares for a sweep marking ``entry`` critical: its node has not beaten since we saw it."""
        node = entry.owner.node if entry.owner is not None else ""
        if not node:
            return []
        known = self._node_beats.get(node)
        store = self.store  # type: ignore[attr-defined]
        return [store.unchanged_since(store.beat_key(node), known.revision if known else 0)]

    def sweep_nodes(self) -> list[str]:
        """Nothing to forget by hand: a silent node's record goes with its lease."""
        return []


@dataclass
class NodeBeatSeen:
    """A node's last beat as this replica saw it: its time, when it arrived (monotonic), its revision."""

    stamp: str
    seen: float
    revision: int


def _renew(entry: Any, stamp: str, item: NodeItem) -> bool:
    """Apply one beat to an entry; True when its record must be written (what it stores changed).

    Time and load alone do not count: they travel in the node's beat key.
    """
    before = (entry.reported, entry.ttl_critical, entry.inst.health, entry.inst.status, entry.inst.status_reason)
    if stamp > (entry.inst.last_heartbeat or ""):
        entry.inst.last_heartbeat = stamp
    if item.load is not None:
        entry.inst.load = item.load
    if item.status is not None:
        entry.reported = item.status
    entry.ttl_critical = False
    entry.recompute()
    after = (entry.reported, entry.ttl_critical, entry.inst.health, entry.inst.status, entry.inst.status_reason)
    return before != after
