"""The registry's live view: instances, their health, and the change index watchers wait on.

Everything here is memory-speed and guarded by one condition variable. Durable changes
(register, state change, maintenance, deregister) are written to the store before the call
returns; heartbeat timestamps are only marked dirty and flushed in batches by the sweeper.
The index moves when membership or a state changes, never for a mere heartbeat, so a
blocking query wakes only when its answer changed. This module holds the writes and the health
rules; the reads and the blocking waits are :mod:`services.registry.catalog_reads`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from services.common.clock import Clock, iso_utc
from services.common.instance import CheckSpec, Instance
from services.registry.catalog_reads import CatalogReads, LoadRow
from services.registry.nodes import NodeBeats
from services.registry.ownership import TRUSTED, Caller, registration_owner, require_replace, require_write
from services.registry.records import (
    Beat,
    Entry,
    Query,
    check_url,
    copy_instance,
    next_check_state,
    require_serialisable,
    stored_copy,
)
from services.registry.store import Store, StoredInstance

# The records live in records.py and the reads in catalog_reads.py; callers may import them here.
__all__ = ["Beat", "Catalog", "Entry", "LoadRow", "Query"]

log = logging.getLogger(__name__)
FLUSH_CHUNK = 500  # heartbeat timestamps per SQLite transaction in a flush (a few ms each)


class Catalog(CatalogReads, NodeBeats):
    """Thread-safe registry state with a monotonically increasing change index.

    Writes and health live here; reads and blocking waits in :class:`CatalogReads`, node
    agents in :class:`NodeBeats`.
    """

    def __init__(self, store: Store, clock: Clock, ttl_s: float, deregister_after_s: float) -> None:
        self.store = store
        self.clock = clock
        self.ttl_s = ttl_s
        self.deregister_after_s = deregister_after_s
        self._lock = threading.Lock()
        # Waiting blocking queries by service name (None = any change); woken only when it changes.
        self._waiters: dict[str | None, set[threading.Event]] = {}
        self._entries: dict[str, Entry] = {}
        self._by_address: dict[tuple[str, str, int], str] = {}
        # Ids by service: a blocking query for one service reads its own instances, not all 10,000
        # (each watcher's answer scanned every entry, ~5-10 ms at 10,000, holding every greenlet).
        self._by_name: dict[str, set[str]] = {}
        self._checked: set[str] = set()  # ids with an active check: the checker never scans the rest
        self._name_index: dict[str, int] = {}
        self._released = False  # shutting down: blocking queries answer at once
        self._init_nodes()  # node agents' claims and index (services.registry.nodes)
        self.index = 1
        self._restore()

    # ----- restore -----------------------------------------------------------------------
    def _restore(self) -> None:
        """Rebuild from the store; every instance starts a fresh grace period of one TTL."""
        items, index = self.store.load()
        now = self.clock.monotonic()
        for item in items:
            entry = Entry(
                inst=item.instance,
                last_beat=now,
                reported=item.reported,
                ttl_critical=item.ttl_critical,
                check_state=item.check_state,
                owner=item.owner,
            )
            entry.recompute()
            self._add(entry)
        # Never reuse an index a client may have seen before the restart.
        self.index = index + 1
        for entry in self._entries.values():
            self._name_index[entry.inst.service_name] = self.index
        if items:
            log.info("restored %d instances at index %d", len(items), self.index)

    # ----- writes ------------------------------------------------------------------------
    def register(self, inst: Instance, caller: Caller = TRUSTED) -> tuple[Instance, bool, str | None]:
        """Insert or replace; a new id at an address already registered replaces the old row.

        Returns the instance, whether it is new, and its secret when one was minted (None: the
        caller sent the right one). A live id or address of another registrant is a 409
        (:mod:`services.registry.ownership`).
        """
        require_serialisable(inst)
        now_wall = self.clock.now()
        inst.registered_at = iso_utc(now_wall)
        inst.last_heartbeat = inst.registered_at
        entry = Entry(inst=inst, last_beat=self.clock.monotonic(), reported=inst.health)
        entry.recompute()
        with self._lock:
            created = inst.instance_id not in self._entries
            address = (inst.service_name, inst.host.lower(), inst.port)
            stale_id = self._by_address.get(address)
            old = self._entries.get(inst.instance_id)
            now = self.clock.monotonic()
            live = old is not None and old.live(now, self.ttl_s)
            secret, entry.owner = registration_owner(old.owner if old else None, live, caller, inst.instance_id)
            if stale_id is not None and stale_id != inst.instance_id:
                stale = self._entries[stale_id]
                require_replace(stale.owner, stale.live(now, self.ttl_s), caller, stale_id)
            # Wake the watchers of every service this touches (an id may move between services).
            index = self._bump({inst.service_name, *([old.inst.service_name] if old else [])})
            if stale_id is not None and stale_id != inst.instance_id:
                self._remove(stale_id)
                self.store.delete([stale_id], index)
                log.info("instance %s replaces %s at %s:%d", inst.instance_id, stale_id, inst.host, inst.port)
            if old is not None:
                self._remove(inst.instance_id)
            self.store.put(entry.stored(), index)
            self._add(entry)
            return copy_instance(inst), created, secret

    def heartbeat(
        self, instance_id: str, status: str | None, load: dict[str, Any] | None, caller: Caller | None = None
    ) -> Beat | None:
        """Record a heartbeat; None when the id is unknown (the worker must re-register).

        Answers only what a heartbeat reply needs: copying the whole instance per beat
        showed in the profile at 2,000 beats/s. ``caller`` None: the registry itself (no check).
        """
        with self._lock:
            entry = self._writable(instance_id, caller)
            if entry is None:
                return None
            if entry.renew(self.clock.monotonic(), iso_utc(self.clock.now()), status, load):
                # Visible at once; on disk with the next flush. No synchronous write here:
                # a fleet reviving after an outage must not serialise on SQLite commits, and a
                # crash before the flush only restores the older state until the next beat.
                self._bump([entry.inst.service_name])
            return Beat(entry.inst.status, entry.inst.last_heartbeat)

    def set_maintenance(
        self, instance_id: str, enabled: bool, reason: str, caller: Caller | None = None
    ) -> Instance | None:
        with self._lock:
            entry = self._writable(instance_id, caller)
            if entry is None:
                return None
            entry.inst.maintenance = enabled
            entry.inst.maintenance_reason = reason if enabled else ""
            entry.recompute()
            index = self._bump([entry.inst.service_name])
            self.store.put(entry.stored(), index)
            return copy_instance(entry.inst)

    def deregister(self, instance_id: str, caller: Caller | None = None) -> Instance | None:
        with self._lock:
            entry = self._writable(instance_id, caller)
            if entry is None:
                return None
            index = self._bump([entry.inst.service_name])
            self._remove(instance_id)
            self.store.delete([instance_id], index)
            return entry.inst

    # ----- health ------------------------------------------------------------------------
    def sweep(self) -> tuple[list[Instance], list[Instance]]:
        """Expire TTLs and remove long-dead instances; returns (turned critical, removed)."""
        now = self.clock.monotonic()
        went_critical: list[Entry] = []
        removed: list[Entry] = []
        with self._lock:
            for entry in self._entries.values():
                silent_for = now - entry.last_beat
                if silent_for > self.ttl_s + self.deregister_after_s:
                    removed.append(entry)
                elif silent_for > self.ttl_s and not entry.ttl_critical:
                    entry.ttl_critical = True
                    entry.recompute()
                    went_critical.append(entry)
            if not went_critical and not removed:
                return [], []
            index = self._bump([e.inst.service_name for e in went_critical + removed])
            if went_critical:
                self.store.put_many([e.stored() for e in went_critical], index)
            if removed:
                for entry in removed:
                    self._remove(entry.inst.instance_id)
                self.store.delete([e.inst.instance_id for e in removed], index)
        return [copy_instance(e.inst) for e in went_critical], [e.inst for e in removed]

    def flush_heartbeats(self) -> int:
        """Write heartbeat-driven state changes in one batch, then heartbeat timestamps in chunks.

        The store's write lock is taken before the catalog lock is released, so a registration
        or drain written right after the snapshot lands after the state changes, never under them.
        Timestamps go in chunks of FLUSH_CHUNK rows, yielding between them: under gevent a SQLite
        call holds the whole process, and one batch of 10,000 node-renewed rows stalled every
        request for 30-65 ms every flush (the node beats' p99). A chunk never moves a row's
        stamp backwards (``SQLiteStore.touch``), so a write landing between chunks stays.
        """
        self._lock.acquire()
        try:
            beats: dict[str, str] = {}
            states: list[StoredInstance] = []
            for iid, entry in self._entries.items():
                if entry.state_dirty:
                    states.append(stored_copy(entry))
                elif entry.beat_dirty and entry.inst.last_heartbeat:
                    beats[iid] = entry.inst.last_heartbeat
                entry.beat_dirty = entry.state_dirty = False
            index = self.index
            self.store.write_lock.acquire()
        finally:
            self._lock.release()
        try:
            if states:
                self.store.put_many(states, index)
        finally:
            self.store.write_lock.release()
        stamps = list(beats.items())
        for start in range(0, len(stamps), FLUSH_CHUNK):
            if start:
                time.sleep(0)  # under gevent: let waiting requests run between chunks
            self.store.touch(dict(stamps[start : start + FLUSH_CHUNK]))
        return len(beats) + len(states)

    def due_checks(self) -> list[tuple[str, str, CheckSpec]]:
        """(instance id, url, spec) of every active check whose time has come."""
        now = self.clock.monotonic()
        due = []
        with self._lock:
            for iid in self._checked:
                entry = self._entries[iid]
                spec = entry.inst.check
                if spec is not None and now >= entry.next_check:
                    entry.next_check = now + spec.interval_s
                    due.append((iid, check_url(entry.inst), spec))
        return due

    def record_check(self, instance_id: str, success: bool) -> None:
        """Apply one active-check result with the spec's consecutive thresholds (no flapping)."""
        with self._lock:
            entry = self._entries.get(instance_id)
            if entry is None or entry.inst.check is None:
                return
            entry.check_state = next_check_state(entry, success)
            if entry.recompute():
                index = self._bump([entry.inst.service_name])
                self.store.put(entry.stored(), index)

    def close(self) -> None:
        self.store.close()

    # ----- internals ---------------------------------------------------------------------
    def _writable(self, instance_id: str, caller: Caller | None) -> Entry | None:
        """The entry a write by ``caller`` may change (lock held); None if unknown, 401 if not theirs.

        ``caller`` None: the registry itself, which may change any entry.
        """
        entry = self._entries.get(instance_id)
        if entry is not None and caller is not None:
            require_write(entry.owner, caller, instance_id)
        return entry

    def _add(self, entry: Entry) -> None:
        inst = entry.inst
        self._entries[inst.instance_id] = entry
        self._by_name.setdefault(inst.service_name, set()).add(inst.instance_id)
        self._index_node(entry, added=True)
        if inst.check is not None:
            self._checked.add(inst.instance_id)
        self._by_address[(inst.service_name, inst.host.lower(), inst.port)] = inst.instance_id

    def _remove(self, instance_id: str) -> None:
        entry = self._entries.pop(instance_id)
        named = self._by_name.get(entry.inst.service_name)
        if named is not None:
            named.discard(instance_id)
            if not named:
                del self._by_name[entry.inst.service_name]
        self._index_node(entry, added=False)
        self._checked.discard(instance_id)
        inst = entry.inst
        address = (inst.service_name, inst.host.lower(), inst.port)
        if self._by_address.get(address) == instance_id:
            del self._by_address[address]
