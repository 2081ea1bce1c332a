"""RegistryClient: a local cache of the registry, kept fresh by blocking queries.

The first lookup of a service (or capability) asks the registry at once; after that a
background watcher per lookup holds one blocking query (``index=N&wait=W``) open and updates
the cache the moment membership or health changes, so a Router's lookup never does I/O and
the registry sees one long request per watched key instead of a polling storm.

Several registry URLs may be given; a failed one is skipped for the next. When every registry
is down, reconnects back off with full jitter (no thundering herd when it returns) and the
cache keeps serving the last known instances, marked ``stale`` with the reason.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import requests

from services.client.discovery import Snapshot, looks_like_service_name
from services.client.errors import ClientError, RegistryUnavailable
from services.client.registry_api import RegistryApi
from services.common.backoff import Backoff
from services.common.clock import Clock, SystemClock
from services.common.envelope_read import error_text
from services.common.instance import Instance

log = logging.getLogger(__name__)


def _query(name: str | None, capability: str | None) -> tuple[str, dict[str, str]]:
    """The cache key and query parameters of a lookup by name and/or capability."""
    params = {k: v for k, v in (("name", name), ("capability", capability)) if v}
    return "&".join(f"{k}={v}" for k, v in sorted(params.items())) or "*", params


@dataclass
class _Entry:
    params: dict[str, str]
    snapshot: Snapshot
    fetched_at: float  # monotonic time of the last good answer
    checked_at: float  # monotonic time of the last try, good or not (polling mode waits max_age_s after it)
    watcher: threading.Thread | None = None


class RegistryClient:
    """Discovery backed by one or more registries (implements :class:`~services.client.discovery.Discovery`).

    :param urls: registry base URLs, tried in order; a comma-separated string works too.
    :param watch: keep each looked-up key fresh with a background blocking query. Without it a
        lookup re-fetches when its entry is older than ``max_age_s`` (simple, but polls).
    :param wait_s: how long one blocking query may wait on the registry.
    :param timeout_s: timeout of a non-blocking registry call (a blocking one adds ``wait_s``).
    :param backoff_base_s, backoff_cap_s: reconnect delay ``uniform(0, min(cap, base × 2^n))``.
    :param token: sent on the writes (:meth:`set_maintenance`, FlashDock's drain button): the
        registry's operator token (or its one shared ``--token``), since the instance is not ours.

    Every HTTP call goes through :attr:`api`, the one client of the registry API.
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        watch: bool = True,
        wait_s: float = 30.0,
        timeout_s: float = 3.0,
        max_age_s: float = 1.0,
        backoff_base_s: float = 0.2,
        backoff_cap_s: float = 5.0,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        session: requests.Session | None = None,
        token: str = "",
    ) -> None:
        self.api = RegistryApi(urls, token=token, timeout_s=timeout_s, session=session)
        self.watch = watch
        self.wait_s = wait_s
        self.timeout_s = timeout_s
        self.max_age_s = max_age_s
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self._backoff = Backoff(base=backoff_base_s, cap=backoff_cap_s)
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._fetch_locks: dict[str, threading.Lock] = {}
        self._stop = threading.Event()
        self._reach: tuple[float, str] | None = None  # (when, '' or why no registry answered)

    @property
    def urls(self) -> list[str]:
        return self.api.urls

    # -- the Discovery protocol -------------------------------------------------------------

    def lookup(self, target: str) -> Snapshot:
        """Instances of the service called ``target``; if there are none, those with that capability."""
        if looks_like_service_name(target):
            snap = self.instances(name=target)
            if snap.instances:
                return snap
            by_cap = self.instances(capability=target)
            return by_cap if by_cap.instances or not snap.stale else snap
        return self.instances(capability=target)

    # -- queries --------------------------------------------------------------------------------

    def instances(self, name: str | None = None, capability: str | None = None) -> Snapshot:
        """The cached snapshot for this query; the first call fetches (and starts its watcher).

        Raises :class:`RegistryUnavailable` only when no registry answers and nothing is cached.
        """
        key, params = _query(name, capability)
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and self._fresh_enough(entry):
            return self._aged(entry)
        with self._fetch_lock(key):  # one fetch per key, however many threads ask at once
            with self._lock:
                entry = self._entries.get(key)
            if entry is not None and self._fresh_enough(entry):
                return self._aged(entry)
            return self._refresh(key, params, entry)

    def refresh(self, name: str | None = None, capability: str | None = None) -> Snapshot:
        """Fetch now, whatever the cache holds (tests, and callers who know something changed)."""
        key, params = _query(name, capability)
        with self._lock:
            entry = self._entries.get(key)
        return self._refresh(key, params, entry)

    def cached(self, name: str | None = None, capability: str | None = None) -> Snapshot | None:
        """The snapshot held for this query, without any I/O (None when it was never fetched)."""
        with self._lock:
            entry = self._entries.get(_query(name, capability)[0])
        return None if entry is None else self._aged(entry)

    def check(self, max_age_s: float = 3.0) -> str:
        """'' when a registry answers, else why none did: at most one ``/health`` probe per ``max_age_s``.

        A UI asks on every render; any answer of the last ``max_age_s`` (a probe, a query, a failed
        one) stands in, so neither a live registry nor a hanging one is paid for once per widget.
        """
        with self._lock:
            reach = self._reach
        if reach is not None and self._clock.monotonic() - reach[0] < max_age_s:
            return reach[1]
        try:
            self.api.ping()
        except RegistryUnavailable as exc:
            self._note_reach(str(exc))
            return str(exc)
        self._note_reach("")
        return ""

    def set_maintenance(self, instance_id: str, enabled: bool, reason: str = "") -> None:
        """Drain (or undrain) one instance, then refresh the cache; :class:`ClientError` says why not."""
        resp = self.api.set_maintenance(instance_id, enabled, reason)
        if resp is None:
            raise RegistryUnavailable(f"the registry did not answer at {', '.join(self.urls)}")
        if resp.status_code == 401:
            raise ClientError(
                "the registry refused the token: draining another's instance needs the registry's "
                f"operator token (set REGISTRY_TOKEN to it): {error_text(resp)}"
            )
        if not resp.ok:
            raise ClientError(f"the registry answered {resp.status_code}: {error_text(resp)}")
        self.refresh()

    @property
    def stale(self) -> bool:
        """True when any cached query is being served from stale data."""
        with self._lock:
            return any(e.snapshot.stale for e in self._entries.values())

    def close(self, timeout: float = 1.0) -> None:
        """Stop the watchers, waiting up to ``timeout`` in all for them to end.

        A watcher inside a blocking query ends when that query returns (at most ``wait_s``);
        its thread is a daemon, so it never holds up the process.
        """
        self._stop.set()
        with self._lock:
            threads = [e.watcher for e in self._entries.values() if e.watcher is not None]
        ends = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, ends - time.monotonic()))
        self.api.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------

    def _fetch_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._fetch_locks.setdefault(key, threading.Lock())

    def _fresh_enough(self, entry: _Entry) -> bool:
        """Watched entries are always current; polled ones for ``max_age_s`` after the last try."""
        return self.watch or self._clock.monotonic() - entry.checked_at < self.max_age_s

    def _aged(self, entry: _Entry) -> Snapshot:
        return replace(entry.snapshot, age_s=round(self._clock.monotonic() - entry.fetched_at, 3))

    def _note_reach(self, error: str) -> None:
        with self._lock:
            self._reach = (self._clock.monotonic(), error)

    def _refresh(self, key: str, params: dict[str, str], entry: _Entry | None) -> Snapshot:
        try:
            instances, index, url = self._fetch(params, None, None)
        except RegistryUnavailable as exc:
            self._note_reach(str(exc))
            if entry is None:
                raise
            return self._mark_stale(key, str(exc))
        snap = self._store(key, params, instances, index, url)
        if self.watch and not self._stop.is_set():
            self._ensure_watcher(key)
        return snap

    def _store(self, key: str, params: dict[str, str], instances: list[Instance], index: int, url: str) -> Snapshot:
        snap = Snapshot(key=key, instances=tuple(instances), index=index, source=url)
        with self._lock:
            self._reach = (self._clock.monotonic(), "")
            old = self._entries.get(key)
            if old is not None and old.snapshot.stale:
                log.warning("registry %s reachable again; %s is fresh (%d instances)", url, key, len(instances))
            now = self._clock.monotonic()
            if old is None:
                self._entries[key] = _Entry(params, snap, now, now)
            else:
                old.snapshot, old.fetched_at, old.checked_at = snap, now, now
        return snap

    def _mark_stale(self, key: str, error: str) -> Snapshot:
        with self._lock:
            entry = self._entries[key]
            if not entry.snapshot.stale:
                log.warning(
                    "every registry is down (%s); serving %d cached instance(s) of %s, marked stale",
                    error,
                    len(entry.snapshot.instances),
                    key,
                )
            entry.snapshot = replace(entry.snapshot, stale=True, error=error)
            entry.checked_at = self._clock.monotonic()
            self._reach = (entry.checked_at, error)
            return self._aged(entry)

    def _fetch(
        self, params: dict[str, str], session: requests.Session | None, index: int | None
    ) -> tuple[list[Instance], int, str]:
        """One query through :attr:`api`, every registry in turn; blocking when ``index`` is given."""
        return self.api.list_instances(params, index=index, wait_s=self.wait_s, session=session)

    def _ensure_watcher(self, key: str) -> None:
        with self._lock:
            entry = self._entries[key]
            if entry.watcher is not None:
                return
            entry.watcher = threading.Thread(
                target=self._watch, args=(key,), name=f"registry-watch[{key}]", daemon=True
            )
            entry.watcher.start()

    def _watch(self, key: str) -> None:
        """Hold a blocking query open for ``key`` until :meth:`close`; reconnect with jittered backoff."""
        session = requests.Session()
        failures = 0
        try:
            while not self._stop.is_set():
                with self._lock:
                    entry = self._entries[key]
                    params, index, was_stale = entry.params, entry.snapshot.index, entry.snapshot.stale
                started = self._clock.monotonic()
                try:
                    # After an outage ask without blocking: the registry may have restarted with news.
                    instances, new_index, url = self._fetch(params, session, None if was_stale else index)
                except RegistryUnavailable as exc:
                    failures += 1
                    self._mark_stale(key, str(exc))
                    self._stop.wait(self._backoff.delay(failures, self._rng))
                    continue
                except ClientError as exc:  # the registry refused the query itself: retrying won't help soon
                    log.error("watch of %s paused: %s", key, exc)
                    self._stop.wait(self.backoff_cap_s)
                    continue
                except Exception:  # a bug must not silently freeze the cache: log it and carry on
                    log.exception("watch of %s failed; retrying", key)
                    self._stop.wait(self.backoff_cap_s)
                    continue
                failures = 0
                self._store(key, params, instances, new_index, url)
                quick = self._clock.monotonic() - started < self.wait_s / 10
                if new_index == index and quick and not was_stale:
                    self._stop.wait(self.backoff_base_s)  # a registry that does not block: do not spin
        finally:
            session.close()
