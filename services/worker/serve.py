"""Serving one worker process: bind, announce, load, register, and drain on SIGTERM/SIGINT.

Life of a worker: bind (port 0 picks a free one) → print one JSON ``ready`` line on stdout →
load the model off the request path → register and heartbeat → on SIGTERM: refuse new
work, set maintenance, finish in-flight requests, deregister, close, exit 0.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from types import FrameType
from typing import Any, TextIO

import waitress
from waitress import wasyncore
from waitress.channel import HTTPChannel

from services.client.registry_api import normalize_urls
from services.common.instance import default_base_url, derive_instance_id
from services.common.settings import WorkerSettings
from services.worker.address import WILDCARDS, detect_advertise_host
from services.worker.agent import RegistryAgent
from services.worker.app import create_worker_app, worker_state
from services.worker.model import WorkerIdentity, WorkerModel
from services.worker.node_agent import REREGISTER_SIGNAL, NodeBinding, node_agent_options

log = logging.getLogger(__name__)

# After the last in-flight request returns, waitress still has to write its bytes out.
_FLUSH_TIMEOUT_S = 5.0
# Probes and metrics must get a thread even when every work slot is busy.
_SPARE_THREADS = 4
_POLL_S = 0.02


def resolve_bind_host(host: str) -> str:
    """A literal address, so waitress opens exactly one listening socket (port 0 stays one port)."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        return socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0]


def advertise_host(settings: WorkerSettings, bound_host: str) -> str:
    """The address other machines reach us at (see :mod:`services.worker.address`).

    The setting, else the bind address if it is specific, else the address of the interface
    that routes to the registry (never a probe towards an outside address).
    """
    if settings.advertise_host:
        return settings.advertise_host
    if bound_host not in WILDCARDS:
        return bound_host
    return detect_advertise_host(settings.registry_urls, bound_host)


class WorkerServer:
    """One worker process around ``model``; :meth:`run` blocks until drained and returns the exit code."""

    def __init__(
        self,
        model: WorkerModel,
        settings: WorkerSettings,
        *,
        rate_limit_per_min: int | None = None,
        out: TextIO | None = None,
    ) -> None:
        self.settings = settings
        self.model = model
        self.app = create_worker_app(model, settings, rate_limit_per_min=rate_limit_per_min, loaded=False)
        self.state = worker_state(self.app)
        self.identity: WorkerIdentity = self.state.identity
        self.registry_urls = normalize_urls(settings.registry_urls, allow_empty=True)
        self.agent: RegistryAgent | None = None
        self.node = NodeBinding.from_env()  # set when a launcher's node agent beats for us
        self._out = out or sys.stdout
        self._lifecycle = threading.RLock()  # re-entrant: a second signal may arrive inside the handler
        self._drain_thread: threading.Thread | None = None
        self._exit_code = 0
        self._server: Any = None

    # -- start -----------------------------------------------------------------------------

    def bind(self) -> None:
        """Open the listening socket; afterwards ``identity`` knows the real port and URL."""
        settings = self.settings
        host = resolve_bind_host(settings.host)
        threads = max(settings.threads, settings.max_inflight + _SPARE_THREADS)
        self._server = waitress.create_server(
            self.app,
            host=host,
            port=settings.port,
            threads=threads,
            ident=f"{self.model.service_name}-worker",
            # Above Flask's limit, so a slightly-too-big body gets the enveloped 413 from Flask.
            max_request_body_size=max(4 * settings.max_body_bytes, 1 << 20, self.model.max_upload_bytes or 0),
            clear_untrusted_proxy_headers=True,
        )
        port = int(self._server.effective_port)
        public = advertise_host(settings, host)
        self.identity.host = public
        self.identity.port = port
        self.identity.base_url = default_base_url(public, port)
        if self.registry_urls:
            self.identity.instance_id = derive_instance_id(self.model.service_name, public, port)
        dispatcher = self._server.task_dispatcher
        self.state.queued = lambda: len(dispatcher.queue)

    def announce(self) -> None:
        """The one stdout line the launcher and tests parse; everything else goes to the log."""
        line: dict[str, Any] = {
            "event": "ready",
            "kind": self.model.kind,
            "service": self.model.service_name,
            "pid": self.identity.pid,
            "port": self.identity.port,
            "base_url": self.identity.base_url,
        }
        if self.identity.instance_id:
            line["instance_id"] = self.identity.instance_id
        self._out.write(json.dumps(line) + "\n")
        self._out.flush()

    def registration(self) -> dict[str, Any]:
        """The register body (DESIGN "Registry contract"), rebuilt for every attempt."""
        ident = self.identity
        metadata: dict[str, Any] = {
            **self.model.metadata(),
            "capabilities": list(self.model.capabilities),
            "models": list(self.model.models),
            "device": self.settings.device,
            "pid": ident.pid,
            "kind": self.model.kind,
        }
        gpu = self.state.probe.gpu_mem_mb()
        if gpu is not None:
            metadata["gpu_mem_mb"] = gpu
        body: dict[str, Any] = {
            "instance_id": ident.instance_id,
            "service_name": self.model.service_name,
            "host": ident.host,
            "port": ident.port,
            "base_url": ident.base_url,
            "version": self.model.version,
            "tags": list(self.settings.tags),
            "metadata": metadata,
            "weight": self.settings.weight,
            "status": self.state.health_status(),
            "load": self.state.load_snapshot(),
        }
        if self.settings.active_check:
            body["check"] = {"path": "/health/ready"}
        return body

    def _on_registered(self, instance_id: str) -> None:
        self.identity.instance_id = instance_id

    def _load_then_register(self) -> None:
        try:
            self.model.load()
        except Exception as exc:  # reported; the process then exits 1
            log.exception("model failed to load")
            self.state.load_error = f"{type(exc).__name__}: {exc}"[:500]
            self._exit_code = 1
            self.request_stop("model load failed")
            return
        self.state.loaded.set()
        log.info("%s loaded; serving at %s", self.model.service_name, self.identity.base_url)
        with self._lifecycle:
            if self.state.draining.is_set():
                return
            if not self.registry_urls:
                log.info("no --registry given: running standalone, not registering anywhere")
                return
            self.agent = RegistryAgent(
                self.registry_urls,
                self.registration,
                status=self.state.health_status,
                load=self.state.load_snapshot,
                token=self.settings.token,
                timeout=self.settings.registry_timeout,
                on_registered=self._on_registered,
                **node_agent_options(self.node),
            )
            self.agent.start()
            self.model.metadata_listener = self.agent.refresh

    # -- run and stop ----------------------------------------------------------------------

    def run(self, *, install_signals: bool = True) -> int:
        """Serve until drained; returns 0 after a clean drain, 1 when the model could not load."""
        if self._server is None:
            self.bind()
        if install_signals:  # only now: a drain needs the server it will close
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
            if self.node is not None:  # the node agent's "register again" (services.worker.node_agent)
                signal.signal(REREGISTER_SIGNAL, self._on_reregister)
        self.announce()
        threading.Thread(target=self._load_then_register, name="model-load", daemon=True).start()
        try:
            self._server.run()
        finally:
            self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=2)
        if self._drain_thread is not None:
            self._drain_thread.join(timeout=self.settings.registry_timeout * 3)
        log.info("worker exited (code %d)", self._exit_code)
        return self._exit_code

    def _on_reregister(self, _signum: int, _frame: FrameType | None) -> None:
        if self.agent is not None:  # None while loading: it registers once loaded anyway
            self.agent.refresh()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.request_stop(f"received {signal.Signals(signum).name}")

    def request_stop(self, reason: str) -> None:
        """Begin draining (idempotent, returns at once: it may run inside a signal handler)."""
        with self._lifecycle:
            if self._drain_thread is not None:
                log.info("%s: already draining", reason)
                return
            self.state.draining.set()
            self._drain_thread = threading.Thread(target=self._drain, args=(reason,), name="drain", daemon=True)
            self._drain_thread.start()

    def _drain(self, reason: str) -> None:
        log.info("%s: draining (%d in flight)", reason, self.state.limiter.inflight)
        agent = self.agent
        if agent is not None:
            agent.set_maintenance(True, f"draining: {reason}")
        if not self.state.limiter.wait_idle(self.settings.drain_timeout):
            log.warning(
                "drain timeout: %d request(s) still in flight after %.1fs",
                self.state.limiter.inflight,
                self.settings.drain_timeout,
            )
        self._wait_flushed(_FLUSH_TIMEOUT_S)
        if agent is not None:
            agent.deregister()
        self._close_server()

    def _channels_idle(self) -> bool:
        if self._server.task_dispatcher.queue:
            return False
        return not any(
            isinstance(ch, HTTPChannel) and (ch.requests or ch.total_outbufs_len)
            for ch in list(self._server._map.values())
        )

    def _wait_flushed(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._channels_idle() and time.monotonic() < deadline:
            time.sleep(_POLL_S)

    def _close_server(self) -> None:
        """Stop the asyncore loop from inside it (closing sockets from this thread would race it)."""
        server_map = self._server._map
        self._server.trigger.pull_trigger(lambda: wasyncore.close_all(server_map, ignore_all=True))


def serve(model: WorkerModel, settings: WorkerSettings, *, rate_limit_per_min: int | None = None) -> int:
    """Run ``model`` as a worker process until it is told to stop; returns the exit code."""
    log.info("starting %s worker (pid %d, device %s)", model.service_name, os.getpid(), settings.device)
    server = WorkerServer(model, settings, rate_limit_per_min=rate_limit_per_min)
    try:
        server.bind()
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", settings.host, settings.port, exc)
        return 1
    return server.run()
