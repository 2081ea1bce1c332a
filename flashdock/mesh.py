"""The mesh as FlashDock sees it: one RegistryClient + one Router, its only way to the registry and workers.

Plain Python (no Streamlit) so it can be tested and cached as one shared object per registry URL.
Every call has a short timeout: a page must never hang on a dead registry or worker.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests

from flashdock.metrics import ScrapeStats, summarize
from flashdock.settings import Settings
from services.client import ClientError, RegistryClient, RegistryUnavailable, Router
from services.client.call import CallResult
from services.common.instance import Instance

API = "/api/v1"
# Model choices on the Predict page: (target service, fallback chain).
MODEL_CHOICES: dict[str, tuple[str, list[str]]] = {
    "auto": ("compass", ["compass-lite"]),
    "COMPASS": ("compass", []),
    "compass-lite": ("compass-lite", []),
}
COMPASS_SERVICES = ("compass", "compass-lite")
FAILURE_MEMO_S = 3.0
SCRAPE_HISTORY_S = 3600.0  # requests/s and p99 per instance as the Monitor scraped them: the last hour
# Prometheus queries for the Monitor's history charts (labels as the registry's HTTP SD gives them).
PROM_QUERIES = {
    "requests/s": 'sum by (service) (rate(worker_requests_total{route!~"/health.*|/metrics"}[1m]))',
    "errors/s": 'sum by (service) (rate(worker_requests_total{code=~"5..",route!~"/health.*|/metrics"}[1m]))',
    "p99 ms": "1000 * histogram_quantile(0.99, sum by (service, le) "
    "(rate(worker_request_duration_seconds_bucket[5m])))",
}


@dataclass(frozen=True)
class Fleet:
    """Every registered instance, and whether the registry itself answered."""

    instances: tuple[Instance, ...]
    reachable: bool
    error: str = ""
    age_s: float = 0.0


class Mesh:
    """Shared by every session of the app (thread-safe: Router and RegistryClient are)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = RegistryClient(
            settings.registry_url, wait_s=10.0, timeout_s=settings.registry_timeout_s, token=settings.token
        )
        self.router = Router.from_settings(  # CLIENT_TOKEN and the other client settings of the environment
            discovery=self.registry,
            fallbacks={"compass": ["compass-lite"]},
            deadline_s=settings.predict_deadline_s,
            connect_timeout_s=0.5,
            try_timeout_s=settings.predict_try_timeout_s,
            client_id="flashdock",
        )
        self._scrapes: dict[str, tuple[float, ScrapeStats]] = {}
        self._scrape_log: deque[tuple[float, str, str, ScrapeStats]] = deque()  # (unix time, service, id, stats)
        self._fresh: tuple[float, Fleet] | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self.router.close()
        self.registry.close()

    # -- registry -------------------------------------------------------------------------------

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.token}"} if self.settings.token else {}

    def fleet(self) -> Fleet:
        """All instances from the watched cache (no I/O after the first call); stale when the registry is down.

        Reachability is the RegistryClient's remembered answer: one probe per ``FAILURE_MEMO_S`` for
        all sessions, so a live registry is not pinged per widget nor a dead one waited on per widget.
        """
        error = self.registry.check(FAILURE_MEMO_S)
        if error:
            known = self.registry.cached()
            return Fleet(known.instances, False, error, known.age_s) if known else Fleet((), False, error)
        try:
            snap = self.registry.instances()
        except RegistryUnavailable as exc:
            return Fleet((), False, str(exc))
        return Fleet(snap.instances, not snap.stale, snap.error, snap.age_s)

    def fresh_fleet(self, max_age_s: float = 1.0) -> Fleet:
        """The fleet fetched now (heartbeat times move without a watch event), at most once per ``max_age_s``.

        Shared by every session: however many people watch the Monitor, the registry sees one list per second.
        """
        now = time.monotonic()
        with self._lock:
            if self._fresh is not None and now - self._fresh[0] < max_age_s:
                return self._fresh[1]
        try:
            snap = self.registry.refresh()
            fleet = Fleet(snap.instances, not snap.stale, snap.error, snap.age_s)
        except RegistryUnavailable:
            fleet = self.fleet()
        with self._lock:
            self._fresh = (now, fleet)
        return fleet

    def registry_history(self, minutes: float = 60) -> dict[str, Any] | None:
        """The registry's sampled load per instance (``GET /api/v1/history``); None when it has none."""
        try:
            raw = self.router.fetch(self.settings.registry_url, f"{API}/history?minutes={minutes:g}", timeout=2.0)
            return json.loads(raw)["data"]
        except (ClientError, ValueError, KeyError):
            return None

    def prometheus_history(self, minutes: float = 60) -> dict[str, list[dict[str, Any]]] | None:
        """Requests, errors and p99 per service from Prometheus (``FLASHDOCK_PROMETHEUS_URL``); None without one."""
        if not self.settings.prometheus_url:
            return None
        end = time.time()
        out: dict[str, list[dict[str, Any]]] = {}
        for name, query in PROM_QUERIES.items():
            params = {"query": query, "start": end - minutes * 60, "end": end, "step": max(15, minutes)}
            try:
                resp = requests.get(self.settings.prometheus_url + "/api/v1/query_range", params=params, timeout=3)
                series = resp.json()["data"]["result"]
            except (requests.RequestException, ValueError, KeyError):
                return None
            out[name] = [
                {"t": float(t), "service": s["metric"].get("service", "?"), "value": float(v)}
                for s in series
                for t, v in s["values"]
                if v not in ("NaN", "+Inf", "-Inf")
            ]
        return out

    def scrape_history(self) -> list[dict[str, Any]]:
        """What this process's scrapes saw over the last hour: one row per scrape with a rate."""
        with self._lock:
            return [
                {"t": t, "service": service, "instance": iid, "requests/s": s.rate_per_s, "p99 ms": s.p99_ms}
                for t, service, iid, s in self._scrape_log
                if s.up and s.rate_per_s is not None
            ]

    def set_maintenance(self, instance_id: str, enabled: bool, reason: str = "") -> None:
        """Drain (or undrain) one instance; raises ``ClientError`` with the registry's reason.

        The shared fresh list is dropped, so the next page shows the change instead of a list from before it.
        """
        self.registry.set_maintenance(instance_id, enabled, reason)
        with self._lock:
            self._fresh = None

    # -- worker metrics -------------------------------------------------------------------------

    def scrape(self, instances: list[Instance], min_interval_s: float = 2.0) -> dict[str, ScrapeStats]:
        """Request rate and latency per instance from its ``/metrics``, at most once per ``min_interval_s``.

        The interval is enforced here, for all sessions together, so however many people watch the
        Monitor a worker sees at most one scrape per interval (far below any rate limit).
        """
        now = time.monotonic()
        due = []
        with self._lock:
            for inst in instances:
                last = self._scrapes.get(inst.instance_id)
                if last is None or now - last[0] >= min_interval_s:
                    due.append(inst)
        if due:
            with ThreadPoolExecutor(max_workers=min(8, len(due))) as pool:
                texts = list(pool.map(self._get_metrics, due))
            wall = time.time()
            with self._lock:
                for inst, text in zip(due, texts, strict=True):
                    prev = self._scrapes.get(inst.instance_id)
                    stats = summarize(text, now, prev[1] if prev else None)
                    self._scrapes[inst.instance_id] = (now, stats)
                    self._scrape_log.append((wall, inst.service_name, inst.instance_id, stats))
                while self._scrape_log and wall - self._scrape_log[0][0] > SCRAPE_HISTORY_S:
                    self._scrape_log.popleft()
        with self._lock:
            return {i.instance_id: self._scrapes[i.instance_id][1] for i in instances if i.instance_id in self._scrapes}

    def _get_metrics(self, inst: Instance) -> str | None:
        try:
            return self.router.fetch(inst.base_url, "/metrics", timeout=self.settings.scrape_timeout_s).decode()
        except (ClientError, UnicodeDecodeError):
            return None

    # -- calls through the Router ---------------------------------------------------------------

    def predict_complex(
        self, choice: str, protein: tuple[str, bytes], ligand: tuple[str, bytes], deadline: float | None = None
    ) -> CallResult:
        """One affinity prediction; ``choice`` is a key of :data:`MODEL_CHOICES`."""
        target, fallbacks = MODEL_CHOICES[choice]
        files = {"protein": protein, "ligand": ligand}
        return self.router.call(target, "POST", "/predict", files=files, fallbacks=fallbacks, deadline=deadline)

    def compass_api(self, service: str, method: str, path: str, *, deadline: float = 5.0, **kwargs: Any) -> CallResult:
        """A COMPASS worker route under ``/api/v1`` (jobs, datasets, models) on ``service``, token attached."""
        headers: Mapping[str, str] = {**kwargs.pop("headers", {}), **self.auth}
        # Uploads and job actions may need the whole deadline in one try (no other instance has their state).
        limits = {"deadline": deadline, "try_timeout": deadline}
        return self.router.call(service, method, API + path, headers=headers, fallbacks=[], **limits, **kwargs)

    def sequence(self, capability: str, payload: dict[str, Any], deadline: float = 60.0) -> CallResult:
        """A sequence-model ``/predict`` by capability (antibody, splice, codon)."""
        # Long sequences may take a while on CPU: one try may use the whole deadline.
        return self.router.call(
            capability, "POST", "/predict", json=payload, fallbacks=[], deadline=deadline, try_timeout=deadline
        )

    def download(self, base_url: str, path: str, timeout: float = 10.0) -> bytes:
        """Raw bytes from a worker the Router already named (model download)."""
        return self.router.fetch(base_url, API + path, timeout=timeout)
