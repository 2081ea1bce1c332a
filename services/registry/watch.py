"""Shared answers for blocking queries.

When a service changes, every query watching it wakes at once. Serialising the same listing
for each of them made the registry spend ~2 ms of CPU per watcher per change (a few hundred
watchers capped registrations at ~40/s). Watchers of the same filters at the same index now
share one serialised answer, and a short coalescing window folds a burst of changes
(a fleet registering) into one wake-up per watcher.
"""

from __future__ import annotations

import json
import threading
import time

from services.registry.catalog import Catalog, Query

_MAX_ENTRIES = 4096


def query_key(q: Query) -> tuple:
    return (q.name, tuple(q.tags), tuple(sorted(q.statuses)), q.capability, tuple(sorted(q.meta.items())))


class WatchCache:
    """(filters, index) → serialised ``data`` JSON, reused for ``max_age_s`` seconds."""

    def __init__(self, catalog: Catalog, max_age_s: float = 1.0) -> None:
        self.catalog = catalog
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._entries: dict[tuple, tuple[int, float, str, int]] = {}

    def answer(self, q: Query) -> tuple[str, int, int]:
        """(data JSON, index, instance count) for ``q`` at the current index."""
        key = query_key(q)
        index_now = self.catalog.current_index(q)
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and hit[0] == index_now and now - hit[1] <= self.max_age_s:
            return hit[2], hit[0], hit[3]
        items, index = self.catalog.query_dicts(q)
        data = json.dumps({"instances": items, "index": index}, separators=(",", ":"))
        with self._lock:
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (index, now, data, len(items))
        return data, index, len(items)
