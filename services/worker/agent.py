"""The registry agent: registers the worker, heartbeats its load, re-registers, and leaves cleanly.

It runs in one background thread and never raises into the worker: a registry outage only
delays registration (jittered exponential backoff) while the worker keeps serving direct
callers. All of its decisions live in :meth:`RegistryAgent.step`, which returns how long to
wait, so tests drive it without threads or real time.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import requests

from services.client.registry_api import RegistryApi
from services.common.backoff import Backoff
from services.common.envelope_read import error_text

log = logging.getLogger(__name__)

_DEFAULT_INTERVAL_S = 2.0


class RegistryAgent:
    """Keeps one worker registered with any of several registry URLs (tried in turn on failure).

    ``registration`` builds the register body; ``status`` and ``load`` are sampled for each
    heartbeat. The agent adopts the heartbeat interval the registry answers with. Its HTTP calls
    (failover between registry URLs, token, timeout) are :class:`RegistryApi`'s, like every client's.
    """

    def __init__(
        self,
        urls: Sequence[str],
        registration: Callable[[], dict[str, Any]],
        *,
        status: Callable[[], str],
        load: Callable[[], dict[str, Any]],
        token: str = "",
        timeout: float = 3.0,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        session: requests.Session | None = None,
        on_registered: Callable[[str], None] | None = None,
    ) -> None:
        self._api = RegistryApi(urls, token=token, timeout_s=timeout, session=session)
        self.urls = self._api.urls
        self._registration = registration
        self._status = status
        self._load = load
        self._timeout = timeout
        self._backoff = backoff or Backoff()
        self._rng = rng or random.Random()
        self._on_registered = on_registered
        self._failures = 0
        self._leaving = False
        self._stop = threading.Event()
        self._wake = threading.Event()  # cuts a wait short (stop, or metadata to publish now)
        self._refresh = False
        self._thread: threading.Thread | None = None
        self.instance_id: str | None = None
        self.heartbeat_interval = _DEFAULT_INTERVAL_S
        self.ttl_s: float | None = None
        self.registered = threading.Event()
        self.registrations = 0

    @property
    def registry_url(self) -> str:
        """The registry URL currently in use."""
        return self._api.url

    def _retry_delay(self, what: str, detail: str, cap: float | None = None) -> float:
        self._failures += 1
        level = logging.WARNING if self._failures == 1 or self._failures % 10 == 0 else logging.DEBUG
        log.log(level, "%s failed (attempt %d): %s", what, self._failures, detail)
        delay = self._backoff.delay(self._failures - 1, self._rng)
        return min(delay, cap) if cap is not None else delay

    # -- the state machine -------------------------------------------------------------------

    def step(self) -> float:
        """Do the next registry call (register or heartbeat) and return the seconds until the next."""
        if self.instance_id is None:
            return self._register() if not self._leaving else self.heartbeat_interval
        if self._refresh and not self._leaving:
            # Re-registering is idempotent on the registry and the only way to change metadata.
            self._refresh = False
            before = self.registrations
            delay = self._register()
            self._refresh = self.registrations == before  # failed: try again at the next step
            return delay
        return self._heartbeat()

    def refresh(self) -> None:
        """Publish a changed registration (metadata, models) now instead of at the next re-register."""
        self._refresh = True
        self._wake.set()

    def _register(self) -> float:
        resp = self._api.register(self._registration())
        if resp is None:
            return self._retry_delay("registration", f"no registry reachable at {', '.join(self.urls)}")
        if resp.status_code not in (200, 201):
            return self._retry_delay("registration", f"HTTP {resp.status_code}: {error_text(resp)}")
        try:
            data = resp.json()["data"]
            instance_id = str(data["instance_id"])
            interval = float(data.get("heartbeat_interval_s") or _DEFAULT_INTERVAL_S)
        except (ValueError, KeyError, TypeError) as exc:
            return self._retry_delay("registration", f"unexpected answer: {exc!r}")
        self.instance_id = instance_id
        self.heartbeat_interval = max(0.05, interval)
        self.ttl_s = data.get("ttl_s")
        self._failures = 0
        self.registrations += 1
        self.registered.set()
        log.info(
            "registered as %s with %s (heartbeat every %.2fs)", instance_id, self.registry_url, self.heartbeat_interval
        )
        if self._on_registered is not None:
            self._on_registered(instance_id)
        return self.heartbeat_interval

    def _heartbeat(self) -> float:
        body = {"status": self._status(), "load": self._load()}
        resp = self._api.heartbeat(self.instance_id, body)
        if resp is None:
            return self._retry_delay("heartbeat", "no registry reachable", cap=self.heartbeat_interval)
        if resp.status_code == 404:
            log.info("registry no longer knows %s; registering again", self.instance_id)
            self.instance_id = None
            self.registered.clear()
            self._failures = 0
            return 0.0
        if not resp.ok:
            return self._retry_delay(
                "heartbeat", f"HTTP {resp.status_code}: {error_text(resp)}", cap=self.heartbeat_interval
            )
        self._failures = 0
        return self.heartbeat_interval

    # -- thread and shutdown ---------------------------------------------------------------

    def run(self) -> None:
        """The thread body: step until stopped; an unexpected error is logged, never raised."""
        delay = 0.0
        while not self._stop.is_set():
            self._wake.wait(delay)
            self._wake.clear()
            if self._stop.is_set():
                break
            started = time.monotonic()
            try:
                delay = self.step()
            except Exception:  # the agent must never take the worker down
                log.exception("registry agent error")
                delay = self._retry_delay("registry agent step", "unexpected error", cap=self.heartbeat_interval)
            delay = max(0.0, delay - (time.monotonic() - started))

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="registry-agent", daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else self._timeout * len(self.urls) + 1)

    def set_maintenance(self, enabled: bool, reason: str) -> bool:
        """Tell the registry to route around (or back to) this worker; never re-registers."""
        self._leaving = self._leaving or enabled
        instance_id = self.instance_id
        if instance_id is None:
            return False
        resp = self._api.set_maintenance(instance_id, enabled, reason)
        if resp is None or not resp.ok:
            log.warning("could not set maintenance=%s on %s: %s", enabled, instance_id, _describe(resp))
            return False
        log.info("maintenance=%s on %s (%s)", enabled, instance_id, reason)
        return True

    def deregister(self) -> bool:
        """Stop heartbeating, then remove the registration (a 404 means it is already gone)."""
        self._leaving = True
        self.stop()
        instance_id = self.instance_id
        if instance_id is None:
            return False
        resp = self._api.deregister(instance_id)
        if resp is None or not (resp.ok or resp.status_code == 404):
            log.warning("could not deregister %s: %s (the registry will expire it)", instance_id, _describe(resp))
            return False
        log.info("deregistered %s", instance_id)
        self.instance_id = None
        self.registered.clear()
        return True


def _describe(resp: requests.Response | None) -> str:
    return "no registry reachable" if resp is None else f"HTTP {resp.status_code}: {error_text(resp)}"
