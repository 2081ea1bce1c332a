"""The etcd catalog's mirror: etcd's records kept in memory through a listing and a watch.

Every replica applies every change from its watch, and the writer applies its own write at once
at the revision etcd gave it (read-your-writes). Each entry remembers its revision, and a deleted
id its tombstone, so a change that arrives late never overwrites a newer one.

Apart from :mod:`services.registry.etcd_catalog` (the writes and the leases) so that the node side,
:mod:`services.registry.etcd_nodes`, reads the record format here without importing the catalog.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from services.common.clock import Clock
from services.common.instance import Instance
from services.registry.etcd_store import EtcdStore
from services.registry.etcd_wire import KeyValue, WatchEvent
from services.registry.ownership import Owner
from services.registry.records import Entry, copy_instance

log = logging.getLogger(__name__)

# Fields whose change a blocking query must see; last_heartbeat and load are not among them.
_QUIET_FIELDS = ("last_heartbeat", "load")


@dataclass
class EtcdEntry(Entry):
    """An entry plus where it stands in etcd."""

    mod_revision: int = 0
    lease: int = 0


def record_of(entry: Entry) -> dict[str, Any]:
    """The JSON value stored under the instance's key."""
    return {
        "instance": entry.inst.to_dict(),
        "reported": entry.reported,
        "ttl_critical": entry.ttl_critical,
        "check_state": entry.check_state,
        "owner": entry.owner.to_dict() if entry.owner else None,
    }


def on_node(entry: Entry) -> bool:
    """Whether the instance sits on its node agent's lease (services.registry.etcd_nodes)."""
    return entry.owner is not None and bool(entry.owner.node)


def _visible(inst: Instance) -> dict[str, Any]:
    """What a blocking query sees of an instance: all but the quiet fields."""
    data = inst.to_dict()
    for name in _QUIET_FIELDS:
        data.pop(name)
    return data


class EtcdMirror:
    """The mirror side of :class:`~services.registry.etcd_catalog.EtcdCatalog`, mixed into it.

    Uses the catalog's lock, indexes and ``_add``/``_remove``/``_bump``, and the node side's
    ``_apply_beat``/``_overlay_beat``; the catalog sets the state below before its restore.
    """

    store: EtcdStore
    clock: Clock
    index: int
    _lock: threading.Lock
    _entries: dict[str, EtcdEntry]
    _applied: int  # the watch has delivered every change up to here
    _tombstones: dict[str, int]  # deleted id -> revision, until the watch passes it
    _stop: threading.Event

    def _restore(self) -> None:
        """Load every key; each instance starts a fresh grace period of one TTL."""
        items, revision = self.store.list_all()
        with self._lock:
            self._resync(items, revision)
        if self._entries:
            log.info("loaded %d instances from etcd at revision %d", len(self._entries), revision)

    def _resync(self, items: list[KeyValue], revision: int) -> None:
        """Replace the mirror with a full listing (at start, and after the watch fell behind compaction).

        Keys are applied in revision order, as the watch would deliver them: a node's beat after the
        records it renewed."""
        seen = set()
        for kv in sorted(items, key=lambda kv: kv.mod_revision):
            node = self.store.beat_node(kv.key)
            if node is not None:
                self._apply_beat(node, kv.value, kv.mod_revision, kv.lease)
            elif kv.key.startswith(self.store.prefix):
                iid = self.store.instance_id(kv.key)
                seen.add(iid)
                self._apply_put(iid, kv.value, kv.mod_revision, kv.lease)
        # Entries written after the listing (our own writes, applied locally) stay.
        gone = [iid for iid, e in self._entries.items() if iid not in seen and e.mod_revision <= revision]
        for iid in gone:
            name = self._entries[iid].inst.service_name
            self._remove(iid)
            self._bump([name], revision)
        self.index = max(self.index, revision)
        self._applied = max(self._applied, revision)

    def _watch(self) -> None:
        start = self._applied + 1
        while not self._stop.is_set():
            try:
                for item in self.store.watch(start, self._stop, self._holds):
                    if isinstance(item, int):  # compacted: our history is gone, list afresh
                        log.warning("etcd history compacted at %d; re-listing", item)
                        items, revision = self.store.list_all()
                        with self._lock:
                            self._resync(items, revision)
                        start = revision + 1
                        break
                    self._apply(item)
                    start = item.revision + 1
            except Exception:  # the mirror must never stop: log, wait, resume from `start`
                log.exception("etcd watch loop failed; resuming at revision %d", start)
                self._stop.wait(1.0)

    def _holds(self, key: str, revision: int) -> bool:
        """Whether the mirror already holds ``key`` at ``revision`` or later: our own write, applied when
        etcd answered it (about half of all beats and writes with two replicas). Its watch event then
        changes nothing, so its value is not decoded. Revisions only grow, so a True stays true."""
        node = self.store.beat_node(key)
        if node is not None:
            known = self._node_beats.get(node)  # type: ignore[attr-defined]
            return known is not None and known.revision >= revision
        if key.startswith(self.store.prefix):
            entry = self._entries.get(self.store.instance_id(key))
            return entry is not None and entry.mod_revision >= revision
        return False

    def _apply(self, event: WatchEvent) -> None:
        node = self.store.beat_node(event.key)
        iid = self.store.instance_id(event.key) if event.key.startswith(self.store.prefix) else None
        with self._lock:
            if event.held:
                pass  # already applied (our own write): only the revision moves on
            elif node is not None:
                self._apply_beat(node, event.value, event.revision, event.lease)
            elif iid is None:
                pass  # a node's claim record: read when a node is named here, not mirrored
            elif event.value is None:
                self._apply_delete(iid, event.revision)
            else:
                self._apply_put(iid, event.value, event.revision, event.lease)
            self._applied = max(self._applied, event.revision)
            # Every change up to here has arrived, so older tombstones can stop guarding.
            for gone in [i for i, rev in self._tombstones.items() if rev <= self._applied]:
                del self._tombstones[gone]

    def _apply_delete(self, iid: str, revision: int) -> None:
        """Mirror a deletion (lock held), unless the id was written again after it."""
        entry = self._entries.get(iid)
        if entry is not None and entry.mod_revision > revision:
            return
        self._tombstones[iid] = max(revision, self._tombstones.get(iid, 0))
        if entry is not None:
            self._remove(iid)
            self._bump([entry.inst.service_name], revision)

    def _apply_put(self, iid: str, value: dict[str, Any], revision: int, lease: int) -> None:
        """Mirror one stored record (lock held), unless a newer one or its deletion is here already."""
        old = self._entries.get(iid)
        if (old is not None and old.mod_revision >= revision) or self._tombstones.get(iid, 0) > revision:
            return
        entry = self._decode(iid, value, revision, lease)
        inst = entry.inst
        if old is not None:
            entry.check_fails, entry.check_oks, entry.next_check = old.check_fails, old.check_oks, old.next_check
        entry.recompute()
        if old is not None and _visible(old.inst) == _visible(inst) and old.owner == entry.owner:
            self._entries[iid] = entry  # same place in the indexes (and node): only time and load moved
            return
        names = {inst.service_name, *([old.inst.service_name] if old else [])}
        if old is not None:
            self._remove(iid)
        self._add(entry)
        self._bump(names, revision)

    def _wrote(self, iid: str, entry: Entry, revision: int, lease: int) -> None:
        """Apply our own successful write at its revision: read-your-writes, no wait for the watch.

        Skipped when the watch has already delivered that revision: the mirror then holds it, or
        something newer (even a deletion whose tombstone is gone), and must not be undone.
        """
        with self._lock:
            if revision > self._applied:
                self._apply_put(iid, record_of(entry), revision, lease)

    def _deleted(self, iid: str, revision: int) -> None:
        """Apply our own deletion at its revision, unless the watch has delivered it already."""
        with self._lock:
            if revision > self._applied:
                self._apply_delete(iid, revision)

    def _current(self, iid: str) -> EtcdEntry | None:
        """The instance as etcd has it now (the mirror may lag a write made elsewhere)."""
        kv = self.store.get(iid)
        return None if kv is None else self._entry_of(iid, kv)

    def _entry_of(self, iid: str, kv: KeyValue) -> EtcdEntry:
        """An entry for the record ``kv`` read from etcd (liveness as this replica last heard it)."""
        return self._decode(iid, kv.value, kv.mod_revision, kv.lease)

    def _decode(self, iid: str, value: dict[str, Any], revision: int, lease: int) -> EtcdEntry:
        """An entry for a stored record, brought up to its node's last beat; its liveness is when this
        replica last heard a beat (no fresh beat since the mirror's copy: the copy's time stays)."""
        entry = EtcdEntry(
            inst=Instance.from_dict(value["instance"]),
            last_beat=self.clock.monotonic(),
            reported=value.get("reported", "passing"),
            ttl_critical=bool(value.get("ttl_critical", False)),
            check_state=value.get("check_state"),
            owner=Owner.from_dict(value.get("owner")),
            mod_revision=revision,
            lease=lease,
        )
        self._overlay_beat(entry)  # a node's instance: its node's last beat may be newer than its record
        cached = self._entries.get(iid)
        if cached is not None and cached.inst.last_heartbeat == entry.inst.last_heartbeat:
            entry.last_beat = cached.last_beat
        return entry

    def _cached(self, iid: str) -> EtcdEntry | None:
        with self._lock:
            entry = self._entries.get(iid)
            if entry is None:
                return None
            copy = EtcdEntry(**{**entry.__dict__, "inst": copy_instance(entry.inst)})
        return copy
