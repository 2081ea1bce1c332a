"""The catalog's read side: queries, and the change index that blocking queries wait on.

Apart from :mod:`services.registry.catalog` so that module holds the writes and the health
rules; both catalogs (SQLite and etcd) share this one read path. The index moves only when
membership or a state changes (:meth:`CatalogReads._bump`), so a blocking query wakes only
when its answer changed.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable
from typing import Any, NamedTuple

from services.common.instance import Instance
from services.registry.records import Entry, Query, copy_instance


class LoadRow(NamedTuple):
    """What the load history and the metrics read of an instance."""

    instance_id: str
    service_name: str
    status: str
    load: dict[str, Any]


class CatalogReads:
    """Reads and blocking waits, under the catalog's lock; mixed into :class:`~services.registry.catalog.Catalog`.

    The catalog owns the state below (set in its ``__init__``); this class only reads it, and
    :meth:`_bump` is the one place the index moves and watchers wake.
    """

    index: int
    _lock: threading.Lock
    _entries: dict[str, Entry]
    _by_name: dict[str, set[str]]
    _name_index: dict[str, int]
    _waiters: dict[str | None, set[threading.Event]]
    _released: bool

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

    # ----- internals (lock held) ---------------------------------------------------------
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
