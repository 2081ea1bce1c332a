"""The registry's live view: instances, their health, and the change index watchers wait on.

Everything here is memory-speed and guarded by one condition variable. Durable changes
(register, state change, maintenance, deregister) are written to the store before the call
returns; heartbeat timestamps are only marked dirty and flushed in batches by the sweeper.
The index moves when membership or a state changes, never for a mere heartbeat, so a
blocking query wakes only when its answer changed.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any, NamedTuple

from services.common.clock import Clock, iso_utc
from services.common.instance import CheckSpec, Instance
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

__all__ = ["Beat", "Catalog", "Entry", "Query"]  # the records live in records.py; callers may import them here

log = logging.getLogger(__name__)
FLUSH_CHUNK = 500  # heartbeat timestamps per SQLite transaction in a flush (a few ms each)


class LoadRow(NamedTuple):
    """What the load history and the metrics read of an instance."""

    instance_id: str
    service_name: str
    status: str
    load: dict[str, Any]


class Catalog(NodeBeats):
    """Thread-safe registry state with a monotonically increasing change index."""

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
            entry = self._entries.get(instance_id)
            if entry is None:
                return None
            if caller is not None:
                require_write(entry.owner, caller, instance_id)
            entry.last_beat = self.clock.monotonic()
            entry.inst.last_heartbeat = iso_utc(self.clock.now())
            entry.beat_dirty = True
            if load is not None:
                entry.inst.load = load
            if status is not None:
                entry.reported = status
            was_ttl_critical = entry.ttl_critical
            entry.ttl_critical = False
            if entry.recompute() or was_ttl_critical:
                # Visible at once; on disk with the next flush. No synchronous write here:
                # a fleet reviving after an outage must not serialise on SQLite commits, and a
                # crash before the flush only restores the older state until the next beat.
                self._bump([entry.inst.service_name])
                entry.state_dirty = True
            return Beat(entry.inst.status, entry.inst.last_heartbeat)

    def set_maintenance(
        self, instance_id: str, enabled: bool, reason: str, caller: Caller | None = None
    ) -> Instance | None:
        with self._lock:
            entry = self._entries.get(instance_id)
            if entry is None:
                return None
            if caller is not None:
                require_write(entry.owner, caller, instance_id)
            entry.inst.maintenance = enabled
            entry.inst.maintenance_reason = reason if enabled else ""
            entry.recompute()
            index = self._bump([entry.inst.service_name])
            self.store.put(entry.stored(), index)
            return copy_instance(entry.inst)

    def deregister(self, instance_id: str, caller: Caller | None = None) -> Instance | None:
        with self._lock:
            entry = self._entries.get(instance_id)
            if entry is None:
                return None
            if caller is not None:
                require_write(entry.owner, caller, instance_id)
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

    # ----- reads -------------------------------------------------------------------------
    def get(self, instance_id: str) -> Instance | None:
        with self._lock:
            entry = self._entries.get(instance_id)
            return copy_instance(entry.inst) if entry else None

    def query(self, q: Query) -> tuple[list[Instance], int]:
        with self._lock:
            items = [copy_instance(e.inst) for e in self._candidates(q) if q.matches(e.inst)]
            index = self._query_index(q)
        items.sort(key=lambda i: (i.service_name, i.instance_id))
        return items, index

    def wait(self, q: Query, after_index: int, timeout: float) -> int:
        """Block until the index relevant to ``q`` passes ``after_index`` or time runs out.

        An ``after_index`` ahead of ours (a client that saw another registry or an older
        life of this one) answers at once so the client resets.
        """
        deadline = time.monotonic() + timeout  # real time: this bounds a request, not a TTL
        while True:
            with self._lock:
                current = self._query_index(q)
                remaining = deadline - time.monotonic()
                if current != after_index or remaining <= 0 or self._released:
                    return current
                woken = threading.Event()
                self._waiters.setdefault(q.name, set()).add(woken)
            try:
                woken.wait(remaining)
            finally:
                with self._lock:
                    waiting = self._waiters.get(q.name)
                    if waiting is not None:
                        waiting.discard(woken)
                        if not waiting:
                            del self._waiters[q.name]

    def query_dicts(self, q: Query) -> tuple[list[dict[str, Any]], int]:
        """Like :meth:`query` but JSON-ready dicts, built under the lock without copying.

        Safe because the catalog never mutates a tags/metadata/load object in place: a
        registration or heartbeat swaps in a new one.
        """
        with self._lock:
            items = [e.inst.to_dict() for e in self._candidates(q) if q.matches(e.inst)]
            index = self._query_index(q)
        items.sort(key=lambda d: (d["service_name"], d["instance_id"]))
        return items, index

    def current_index(self, q: Query) -> int:
        """The index a blocking query with these filters compares against."""
        with self._lock:
            return self._query_index(q)

    def snapshot(self) -> list[Instance]:
        with self._lock:
            return [copy_instance(e.inst) for e in self._entries.values()]

    def load_rows(self, limit: int | None = None) -> list[LoadRow]:
        """Id, service, status and load of the first ``limit`` instances, for the load history and
        the metrics: no copies (load dicts are swapped, never mutated). At 10,000 instances a full
        :meth:`snapshot` held the lock, and under gevent every request, for ~50-100 ms a sample."""
        with self._lock:
            entries = itertools.islice(self._entries.values(), limit)
            return [LoadRow(e.inst.instance_id, e.inst.service_name, e.inst.status, e.inst.load) for e in entries]

    def count(self) -> int:
        with self._lock:
            return len(self._entries)

    def release_waiters(self) -> None:
        """Answer every blocking query now (shutdown): a clean 200 instead of a cut connection."""
        with self._lock:
            self._released = True
            waiting = [e for events in self._waiters.values() for e in events]
            self._waiters.clear()
        for woken in waiting:
            woken.set()

    def close(self) -> None:
        self.store.close()

    # ----- internals ---------------------------------------------------------------------
    def _candidates(self, q: Query) -> Iterable[Entry]:
        """The entries ``q`` can match (lock held): its service's, or every one."""
        if q.name is not None:
            return [self._entries[iid] for iid in self._by_name.get(q.name, ())]
        return self._entries.values()

    def _query_index(self, q: Query) -> int:
        if q.name is not None:
            return self._name_index.get(q.name, 1)
        return self.index

    def _bump(self, names: Iterable[str], index: int | None = None) -> int:
        """Advance the index (by one, or to ``index``) for ``names`` and wake their watchers.

        One event per waiting query (not one shared condition): a change to one service
        wakes its watchers and the unfiltered ones, not hundreds of unrelated threads.
        """
        self.index = max(self.index + 1, index or 0)
        touched = set(names)
        for name in touched:
            self._name_index[name] = self.index
        for key in (*touched, None):
            for woken in self._waiters.pop(key, ()):
                woken.set()
        return self.index

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
