"""Background health work: the TTL sweep, batched heartbeat flushes and active HTTP checks (all Periodic)."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from services.common.periodic import Periodic
from services.registry.catalog import Catalog
from services.registry.metrics import RegistryMetrics

log = logging.getLogger(__name__)


class HealthSweeper:
    """The TTL sweep at least once per heartbeat interval, and the batched heartbeat flush to disk."""

    def __init__(self, catalog: Catalog, metrics: RegistryMetrics, sweep_every: float, flush_every: float) -> None:
        self.catalog = catalog
        self.metrics = metrics
        self.sweep_every = sweep_every
        self.flush_every = flush_every
        self._sweep = Periodic("health-sweeper", sweep_every, self.run_once)
        # Both take the catalog lock, then the store's: the same order as every write, so two threads are safe.
        self._flush = Periodic(
            "heartbeat-flush", flush_every, catalog.flush_heartbeats, on_stop=catalog.flush_heartbeats
        )

    def start(self) -> None:
        self._sweep.start()
        self._flush.start()

    def stop(self) -> None:
        self._sweep.stop()
        self._flush.stop()  # and one last flush

    def run_once(self) -> None:
        started = time.perf_counter()
        went_critical, removed = self.catalog.sweep()
        self.catalog.sweep_nodes()  # forget long-silent nodes with no instances (services.registry.nodes)
        self.metrics.sweep_seconds.observe(time.perf_counter() - started)
        for inst in went_critical:
            log.warning(
                "instance %s (%s) is critical: no heartbeat within the TTL", inst.instance_id, inst.service_name
            )
        for inst in removed:
            self.metrics.deregistrations.labels(reason="expired").inc()
            log.warning("instance %s (%s) removed: critical past deregister_after", inst.instance_id, inst.service_name)


class ActiveChecker:
    """Probes each instance's check URL on its own interval; thresholds live in the catalog.

    The URL is the instance's own host and port plus a plain path (``records.check_url``); a
    redirect is an answer (2xx/3xx pass), never followed; proxies from the environment are not used.

    A dispatcher every ``tick`` hands the checks that are due (the catalog knows each one's
    interval) to a pool; an instance whose last probe still runs is skipped, not queued.
    """

    def __init__(self, catalog: Catalog, tick: float = 0.1, max_parallel: int = 16) -> None:
        self.catalog = catalog
        self.tick = tick
        self._pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="active-check")
        self._session = requests.Session()
        self._session.trust_env = False  # no proxy or netrc from the environment: straight to the worker
        adapter = requests.adapters.HTTPAdapter(pool_connections=max_parallel, pool_maxsize=max_parallel)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._inflight: set[str] = set()
        self._lock = threading.Lock()
        self._dispatch = Periodic("active-checker", tick, self.dispatch)

    def start(self) -> None:
        self._dispatch.start()

    def stop(self) -> None:
        self._dispatch.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def dispatch(self) -> None:
        """Submit every due check whose instance has no probe in flight."""
        for instance_id, url, spec in self.catalog.due_checks():
            with self._lock:
                if instance_id in self._inflight:
                    continue
                self._inflight.add(instance_id)
            self._pool.submit(self._probe, instance_id, url, spec.timeout_s)

    def _probe(self, instance_id: str, url: str, timeout: float) -> None:
        try:
            try:
                # Never follow a redirect: a worker must not point the registry at another host.
                resp = self._session.get(url, timeout=timeout, allow_redirects=False, stream=True)
                ok = resp.status_code < 400
                resp.close()  # the body is not read: a check answers by its status alone
            except requests.RequestException:
                ok = False
            self.catalog.record_check(instance_id, ok)
        finally:
            with self._lock:
                self._inflight.discard(instance_id)
