"""The mesh as FlashDock sees it: one RegistryClient (whose ``api`` makes every registry call) + Router.

Plain Python (no Streamlit) so it can be tested and cached as one shared object per registry URL.
Every call has a short timeout: a page must never hang on a dead registry or worker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests

from flashdock.metrics import ScrapeStats, summarize
from flashdock.settings import Settings
from services.client import RegistryClient, RegistryUnavailable, Router
from services.client.call import CallResult
from services.common.envelope_read import error_text
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
        self.router = Router(
            self.registry,
            fallbacks={"compass": ["compass-lite"]},
            deadline_s=settings.predict_deadline_s,
            connect_timeout_s=0.5,
            try_timeout_s=settings.predict_try_timeout_s,
            client_id="flashdock",
        )
        self.session = requests.Session()
        self._scrapes: dict[str, tuple[float, ScrapeStats]] = {}
        self._lock = threading.Lock()
        self._failed_fleet: tuple[float, Fleet] | None = None

    def close(self) -> None:
        self.router.close()
        self.registry.close()
        self.session.close()

    # -- registry -------------------------------------------------------------------------------

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.token}"} if self.settings.token else {}

    def fleet(self) -> Fleet:
        """All instances from the watched cache (no I/O after the first call); stale when the registry is down."""
        with self._lock:
            failed = self._failed_fleet
        if failed is not None and time.monotonic() - failed[0] < FAILURE_MEMO_S:
            return failed[1]  # a dead registry costs one timeout per FAILURE_MEMO_S, not one per widget
        try:
            snap = self.registry.instances()
        except RegistryUnavailable as exc:
            return self._remember_failure(Fleet((), False, str(exc)))
        if snap.stale:
            return Fleet(snap.instances, False, snap.error, snap.age_s)
        # The watcher notices a dead registry only when its blocking query fails; a cheap probe says it now.
        try:
            self.registry.api.ping()
        except RegistryUnavailable as exc:
            return self._remember_failure(Fleet(snap.instances, False, str(exc), snap.age_s))
        with self._lock:
            self._failed_fleet = None
        return Fleet(snap.instances, True, "", snap.age_s)

    def _remember_failure(self, fleet: Fleet) -> Fleet:
        with self._lock:
            self._failed_fleet = (time.monotonic(), fleet)
        return fleet

    def set_maintenance(self, instance_id: str, enabled: bool, reason: str = "") -> None:
        """Drain (or undrain) one instance; raises ``RuntimeError`` with the registry's reason."""
        resp = self.registry.api.set_maintenance(instance_id, enabled, reason)
        if resp is None:
            raise RuntimeError(f"the registry did not answer at {', '.join(self.registry.urls)}")
        if resp.status_code == 401:
            raise RuntimeError("the registry refused the token (set REGISTRY_TOKEN for FlashDock)")
        if not resp.ok:
            raise RuntimeError(f"the registry answered {resp.status_code}: {error_text(resp)}")
        self.registry.refresh()

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
            with self._lock:
                for inst, text in zip(due, texts, strict=True):
                    prev = self._scrapes.get(inst.instance_id)
                    self._scrapes[inst.instance_id] = (now, summarize(text, now, prev[1] if prev else None))
        with self._lock:
            return {i.instance_id: self._scrapes[i.instance_id][1] for i in instances if i.instance_id in self._scrapes}

    def _get_metrics(self, inst: Instance) -> str | None:
        try:
            resp = self.session.get(
                inst.base_url + "/metrics", timeout=self.settings.scrape_timeout_s, headers={"X-Client-ID": "flashdock"}
            )
            return resp.text if resp.ok else None
        except requests.RequestException:
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
        resp = self.session.get(base_url + API + path, timeout=timeout)
        resp.raise_for_status()
        return resp.content
