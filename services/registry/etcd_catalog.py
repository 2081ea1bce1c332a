"""The catalog of a stateless registry replica: etcd holds the truth, a watch mirrors it here.

Any number of replicas share one etcd cluster. Writes go to etcd first (compare-and-set, so
two replicas never overwrite each other's changes); the writer applies its own write at once at
the revision etcd gave it (read-your-writes without waiting), and every replica applies every
change from its watch. Each entry remembers its revision, and a deleted id its tombstone, so a
change that arrives late never overwrites a newer one. That gives:

- **one lease per instance** whose TTL spans the critical window plus ``deregister_after``;
  each heartbeat keeps it alive, and etcd itself deletes a dead instance, even with every
  registry replica down;
- **the index is etcd's revision** of the last visible change, so a blocking query can move
  between replicas and an index never repeats after a restart;
- **critical state is derived** locally from when this replica last saw a heartbeat (no
  cross-host clock comparison), then written with compare-and-set so every replica agrees.

A mere heartbeat (time and load) does not move the index, as in the SQLite catalog. This module
holds the writes and the leases; the watch and the mirror are :mod:`services.registry.etcd_mirror`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from services.common.clock import Clock, iso_utc
from services.common.instance import Instance
from services.registry.catalog import Catalog
from services.registry.etcd_mirror import EtcdEntry, EtcdMirror, on_node, record_of
from services.registry.etcd_nodes import EtcdNodeBeats
from services.registry.etcd_store import EtcdStore
from services.registry.ownership import TRUSTED, Caller, registration_owner, require_replace, require_write
from services.registry.records import Beat, Entry, copy_instance, next_check_state, require_serialisable

__all__ = ["CAS_TRIES", "EtcdCatalog", "EtcdEntry"]  # EtcdEntry lives in etcd_mirror.py; importable here

log = logging.getLogger(__name__)

CAS_TRIES = 5


class EtcdCatalog(EtcdNodeBeats, EtcdMirror, Catalog):
    """:class:`Catalog` over etcd: same reads, writes through etcd, state from a watch.

    The watch and the mirror it feeds are :class:`EtcdMirror`; node agents :class:`EtcdNodeBeats`.
    """

    def __init__(self, store: EtcdStore, clock: Clock, ttl_s: float, deregister_after_s: float) -> None:
        # A lease is kept alive at most once per TTL (not on every beat: a keep-alive is an etcd
        # round trip), so it spans TTL + deregister_after plus that one refresh period; etcd
        # leases are whole seconds. A dead instance is removed at most one TTL late.
        self.refresh_every = ttl_s
        self.lease_ttl = max(1, math.ceil(ttl_s + deregister_after_s + self.refresh_every))
        self._refreshed: dict[int, float] = {}  # lease -> when this replica last kept it alive
        self._applied = 0  # the watch has delivered every change up to here
        self._tombstones: dict[str, int] = {}  # deleted id -> revision, until the watch passes it
        self._stop = threading.Event()
        super().__init__(store, clock, ttl_s, deregister_after_s)  # type: ignore[arg-type]
        self.store: EtcdStore = store
        self._watcher = threading.Thread(target=self._watch, name="etcd-watch", daemon=True)
        self._watcher.start()

    def _update(self, iid: str, change: Callable[[EtcdEntry], bool | None]) -> tuple[EtcdEntry, int] | None:
        """Compare-and-set ``change(entry)`` onto the instance; None when it does not exist."""
        entry = self._cached(iid) or self._current(iid)
        for _ in range(CAS_TRIES):
            if entry is None:
                return None
            if change(entry) is False:
                return entry, entry.mod_revision
            entry.recompute()
            revision = self.store.put_if(iid, record_of(entry), entry.lease, entry.mod_revision)
            if revision is not None:
                self._wrote(iid, entry, revision, entry.lease)
                return entry, revision
            entry = self._current(iid)  # someone else wrote first: start from theirs
        raise RuntimeError(f"instance {iid} kept changing under {CAS_TRIES} compare-and-set attempts")

    # ----- writes ------------------------------------------------------------------------
    def register(self, inst: Instance, caller: Caller = TRUSTED) -> tuple[Instance, bool, str | None]:
        """Compare-and-set against the id's current record, so the ownership decision holds in etcd."""
        require_serialisable(inst)
        inst.registered_at = iso_utc(self.clock.now())
        inst.last_heartbeat = inst.registered_at
        entry = Entry(inst=inst, last_beat=self.clock.monotonic(), reported=inst.health)
        entry.recompute()
        # The mirror's view, not a read: a new id (the common case) costs one etcd round trip, and
        # should etcd hold something else, the compare below fails and we decide again on it.
        old = self._cached(inst.instance_id)
        for _ in range(CAS_TRIES):
            now = self.clock.monotonic()
            live = old is not None and old.live(now, self.ttl_s)
            secret, entry.owner = registration_owner(old.owner if old else None, live, caller, inst.instance_id)
            with self._lock:
                stale = self._by_address.get((inst.service_name, inst.host.lower(), inst.port))
                stale_entry = self._entries.get(stale) if stale and stale != inst.instance_id else None
            if stale_entry is not None:
                require_replace(
                    stale_entry.owner, stale_entry.live(now, self.ttl_s), caller, stale_entry.inst.instance_id
                )
            replaced = [e.lease for e in (old, stale_entry) if e and not on_node(e)]  # a node's lease stays
            lease, own_lease = self._lease_for(caller)  # its node's lease, or one of its own
            written, revision = self.store.create_or_replace(
                inst.instance_id,
                record_of(entry),
                lease,
                [stale_entry.inst.instance_id] if stale_entry else [],
                expect_revision=old.mod_revision if old else 0,
            )
            if written:
                break
            if own_lease:
                self.store.revoke(lease)  # someone wrote the id first: decide again on theirs
            old = self._current(inst.instance_id)
        else:
            raise RuntimeError(f"instance {inst.instance_id} kept changing under {CAS_TRIES} compare-and-set attempts")
        for old_lease in replaced:  # its keys moved to the new lease or were deleted above
            if old_lease and old_lease != lease:
                self.store.revoke(old_lease)
        self._wrote(inst.instance_id, entry, revision, lease)
        if stale_entry is not None:
            self._deleted(stale_entry.inst.instance_id, revision)
            log.info("instance %s replaces %s at %s:%d", inst.instance_id, stale, inst.host, inst.port)
        return copy_instance(inst), old is None, secret

    def heartbeat(
        self, instance_id: str, status: str | None, load: dict[str, Any] | None, caller: Caller | None = None
    ) -> Beat | None:
        entry = self._cached(instance_id) or self._current(instance_id)
        if entry is not None and caller is not None:
            require_write(entry.owner, caller, instance_id)
        if entry is not None and not self._keep_alive(entry.lease):
            # Our mirror may hold the lease of a registration another replica just replaced.
            fresh = self._current(instance_id)
            entry = fresh if fresh is not None and fresh.lease != entry.lease else None
            if entry is not None and not self._keep_alive(entry.lease):
                entry = None
        if entry is None:
            return None  # unknown, or its lease ran out: the worker must register again

        def beat(e: EtcdEntry) -> None:
            if caller is not None:
                require_write(e.owner, caller, instance_id)  # again on etcd's current record
            e.inst.last_heartbeat = iso_utc(self.clock.now())
            if load is not None:
                e.inst.load = load
            if status is not None:
                e.reported = status
            e.ttl_critical = False

        done = self._update(instance_id, beat)
        if done is None:
            return None
        return Beat(done[0].inst.status, done[0].inst.last_heartbeat)

    def _keep_alive(self, lease: int) -> bool:
        """Refresh ``lease`` if this replica has not done so within one TTL; False if it expired.

        Between refreshes a heartbeat only writes the record, compare-and-set: should the lease
        have expired meanwhile, its key is gone, the compare fails and the worker re-registers.
        """
        now = time.monotonic()
        if now - self._refreshed.get(lease, -math.inf) < self.refresh_every:
            return True
        if not self.store.refresh(lease):
            self._refreshed.pop(lease, None)
            return False
        self._refreshed[lease] = now
        return True

    def set_maintenance(
        self, instance_id: str, enabled: bool, reason: str, caller: Caller | None = None
    ) -> Instance | None:
        def drain(e: EtcdEntry) -> None:
            if caller is not None:
                require_write(e.owner, caller, instance_id)
            e.inst.maintenance = enabled
            e.inst.maintenance_reason = reason if enabled else ""

        done = self._update(instance_id, drain)
        return None if done is None else done[0].inst

    def deregister(self, instance_id: str, caller: Caller | None = None) -> Instance | None:
        entry = self._cached(instance_id) or self._current(instance_id)
        if entry is None:
            return None
        if caller is not None:
            require_write(entry.owner, caller, instance_id)
        revision = self.store.delete(instance_id)
        if entry.lease and not on_node(entry):  # a node's lease carries its other instances
            self.store.revoke(entry.lease)
        self._deleted(instance_id, revision)
        return entry.inst

    # ----- health ------------------------------------------------------------------------
    def sweep(self) -> tuple[list[Instance], list[Instance]]:
        """Mark instances silent for a TTL critical; removal is etcd's lease expiry, not ours."""
        forget = time.monotonic() - self.lease_ttl
        for lease in [k for k, at in list(self._refreshed.items()) if at < forget]:
            del self._refreshed[lease]  # expired, or kept alive by another replica since
        now = self.clock.monotonic()
        with self._lock:
            silent = [iid for iid, e in self._entries.items() if not e.ttl_critical and now - e.last_beat > self.ttl_s]
        went_critical = []
        for iid in silent:
            with self._lock:  # the guard before the copy: a beat applied in between fails the compare
                seen = self._entries.get(iid)
                guard = self.beat_guard(seen) if seen is not None else []
            entry = self._cached(iid)
            if entry is None or entry.ttl_critical or now - entry.last_beat <= self.ttl_s:
                continue  # gone, or renewed (a node beat is applied in place) since we looked
            entry.ttl_critical = True
            entry.recompute()
            # Compare-and-set against the revision we saw, and for a node's instance against the
            # node's beat as we saw it: a heartbeat or node beat that landed since wins.
            key = self.store.key(iid)
            written, revision = self.store.txn(
                [self.store.unchanged_since(key, entry.mod_revision), *guard],
                [self.store.put_op(key, record_of(entry), entry.lease)],
            )
            if written:
                self._wrote(iid, entry, revision, entry.lease)
                went_critical.append(entry.inst)
        return went_critical, []

    def flush_heartbeats(self) -> int:
        """Nothing to flush: every heartbeat is written to etcd before it is answered."""
        return 0

    def record_check(self, instance_id: str, success: bool) -> None:
        with self._lock:
            entry = self._entries.get(instance_id)
            if entry is None or entry.inst.check is None:
                return
            wanted = next_check_state(entry, success)
            if wanted == entry.check_state:
                return

        def set_check(e: EtcdEntry) -> None:
            e.check_state = wanted

        self._update(instance_id, set_check)

    def close(self) -> None:
        self._stop.set()
        self.store.close()  # also ends the watch's open stream
        self._watcher.join(timeout=5)
