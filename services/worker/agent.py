"""The registry agent: registers the worker, heartbeats its load, re-registers, and leaves cleanly.

It runs in one background thread and never raises into the worker: a registry outage only
delays registration (jittered exponential backoff) while the worker keeps serving direct
callers. All of its decisions live in :meth:`RegistryAgent.step`, which returns how long to
wait, so tests drive it without threads or real time.

The registry answers a registration with a per-instance secret that every later write of that
instance carries (README_SERVICES.md "Security model"). The agent keeps it in a file of mode
0600 named for the instance id, so a worker restarted on the same address (same id) proves the
row is its own and replaces it at once instead of getting 409 until the old row's TTL runs out;
a clean deregistration deletes the file.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests

from services.client.registry_api import RegistryApi
from services.common.backoff import Backoff
from services.common.envelope_read import error_text

log = logging.getLogger(__name__)

_DEFAULT_INTERVAL_S = 2.0
_NODE_IDLE_S = 3600.0
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")


def default_secret_dir() -> Path:
    """Where instance secrets live unless the worker names a folder: per user, never world-readable."""
    return Path.home() / ".local" / "state" / "compass-mesh" / "instance-secrets"


class SecretFile:
    """The instance secrets of this user's workers, one file per instance id (mode 0600, folder 0700)."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder else default_secret_dir()

    def _path(self, instance_id: str) -> Path | None:
        return self.folder / f"{instance_id}.secret" if _SAFE_ID.match(instance_id) else None

    def read(self, instance_id: str) -> str:
        path = self._path(instance_id)
        try:
            return path.read_text().strip() if path else ""
        except OSError:
            return ""

    def write(self, instance_id: str, secret: str) -> None:
        """Atomically, created 0600 (never readable by others, not even for a moment)."""
        path = self._path(instance_id)
        if path is None:
            return
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secret)
            os.replace(tmp, path)
        except OSError as exc:  # the worker still runs; a restart then waits out the old row's TTL
            log.warning("could not keep the instance secret in %s: %s", path, exc)

    def delete(self, instance_id: str) -> None:
        path = self._path(instance_id)
        if path is not None:
            path.unlink(missing_ok=True)


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
        secret_dir: str | Path | None = None,
        beats_by_node: bool = False,
    ) -> None:
        self._api = RegistryApi(urls, token=token, timeout_s=timeout, session=session)
        self._secrets = SecretFile(secret_dir)
        # Launched under a node agent (services.worker.node_agent): it beats for us; we only register.
        self.beats_by_node = beats_by_node
        self._secret = ""  # of self._secret_id, sent on every write of it
        self._secret_id: str | None = None
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
        if self.beats_by_node:
            return _NODE_IDLE_S  # until refresh() wakes us: the node agent saw the registry lose us
        return self._heartbeat()

    def refresh(self) -> None:
        """Publish a changed registration (metadata, models) now instead of at the next re-register."""
        self._refresh = True
        self._wake.set()

    def _secret_of(self, instance_id: str | None) -> str:
        """The secret of ``instance_id``: the one in memory, else the one a previous life kept on disk."""
        if instance_id and instance_id != self._secret_id:
            self._secret_id, self._secret = instance_id, self._secrets.read(instance_id)
        return self._secret if instance_id else ""

    def _keep_secret(self, instance_id: str, secret: str) -> None:
        if secret and (instance_id, secret) != (self._secret_id, self._secret):
            self._secrets.write(instance_id, secret)
        self._secret_id, self._secret = instance_id, secret or self._secret_of(instance_id)

    def _register(self) -> float:
        body = self._registration()
        wanted = body.get("instance_id")
        resp = self._api.register(body, secret=self._secret_of(wanted if isinstance(wanted, str) else None))
        if resp is None:
            return self._retry_delay("registration", f"no registry reachable at {', '.join(self.urls)}")
        if resp.status_code == 409:
            return self._retry_delay(
                "registration",
                f"HTTP 409: {error_text(resp)} (this worker has no secret for that id: it registers once the "
                "other registrant's row misses its TTL, or an operator removes it)",
            )
        if resp.status_code not in (200, 201):
            return self._retry_delay("registration", f"HTTP {resp.status_code}: {error_text(resp)}")
        try:
            data = resp.json()["data"]
            instance_id = str(data["instance_id"])
            interval = float(data.get("heartbeat_interval_s") or _DEFAULT_INTERVAL_S)
            secret = str(data.get("instance_secret") or "")  # none from a registry without ownership
        except (ValueError, KeyError, TypeError) as exc:
            return self._retry_delay("registration", f"unexpected answer: {exc!r}")
        self._keep_secret(instance_id, secret)
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
        resp = self._api.heartbeat(self.instance_id, body, secret=self._secret_of(self.instance_id))
        if resp is None:
            return self._retry_delay("heartbeat", "no registry reachable", cap=self.heartbeat_interval)
        if resp.status_code == 404:
            log.info("registry no longer knows %s; registering again", self.instance_id)
            self.instance_id = None
            self.registered.clear()
            self._failures = 0
            return 0.0
        if resp.status_code == 401:
            # Our token or secret no longer holds the row (an operator took it over, or the token
            # changed): stop keeping it alive and register again, with backoff.
            log.warning("registry refused a heartbeat of %s: %s; registering again", self.instance_id, error_text(resp))
            self.instance_id = None
            self.registered.clear()
            return self._retry_delay("heartbeat", "HTTP 401", cap=self.heartbeat_interval)
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
        resp = self._api.set_maintenance(instance_id, enabled, reason, secret=self._secret_of(instance_id))
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
        resp = self._api.deregister(instance_id, secret=self._secret_of(instance_id))
        if resp is None or not (resp.ok or resp.status_code == 404):
            log.warning("could not deregister %s: %s (the registry will expire it)", instance_id, _describe(resp))
            return False
        log.info("deregistered %s", instance_id)
        self._secrets.delete(instance_id)
        self.instance_id = None
        self.registered.clear()
        return True


def _describe(resp: requests.Response | None) -> str:
    return "no registry reachable" if resp is None else f"HTTP {resp.status_code}: {error_text(resp)}"
