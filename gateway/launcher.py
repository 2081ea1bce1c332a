"""Replicas this gateway started on its own host through the launcher, for ``POST /model/{name}/load``.

Only kinds the operator listed (``--launch-kind``) are started, each as ``python -m
services.worker.launch KIND --replicas 1`` with the parent-death signal, so they drain and go when
the gateway goes. This is the one piece of state a gateway holds, and it is only about processes on
its host: a replica started through one gateway is stopped through the same one; the others answer
409 naming the host and pid to stop.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from services.common.kinds import KINDS
from services.common.parent_death import with_parent_death_signal
from services.common.settings import child_environment

log = logging.getLogger(__name__)


@dataclass
class Launched:
    kind: str
    popen: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None


class LocalLaunchers:
    """Start and stop launchers of the allowed kinds on this host; thread-safe."""

    def __init__(self, allowed: Sequence[str], registry_urls: Sequence[str], token: str = "") -> None:
        self.allowed = [k for k in allowed if k in KINDS]
        unknown = sorted(set(allowed) - set(KINDS))
        if unknown:
            log.warning("--launch-kind %s: not launcher kinds (%s); ignored", ", ".join(unknown), ", ".join(KINDS))
        self.registry_urls = list(registry_urls)
        self.token = token
        self._running: dict[str, list[Launched]] = {}
        self._lock = threading.Lock()

    def may_start(self, kind: str) -> bool:
        return kind in self.allowed and bool(self.registry_urls)

    def running(self, kind: str) -> list[Launched]:
        with self._lock:
            alive = [p for p in self._running.get(kind, []) if p.alive()]
            self._running[kind] = alive
            return list(alive)

    def start(self, kind: str) -> Launched:
        """One more replica of ``kind`` (a launcher with one replica), registering with our registries."""
        command = [sys.executable, "-m", "services.worker.launch", kind, "--replicas", "1"]
        command += ["--registry", ",".join(self.registry_urls)]
        env = child_environment(REGISTRY_TOKEN=self.token) if self.token else None
        popen = subprocess.Popen(  # a list of arguments, never a shell string
            with_parent_death_signal(command), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        launched = Launched(kind, popen)
        with self._lock:
            self._running.setdefault(kind, []).append(launched)
        log.info("started a %s launcher (pid %d) for a load request", kind, popen.pid)
        return launched

    def stop(self, kind: str, timeout: float = 60.0) -> Launched | None:
        """SIGTERM the newest launcher of ``kind`` (its replicas drain) and wait for it; None if there is none."""
        alive = self.running(kind)
        if not alive:
            return None
        newest = alive[-1]
        newest.popen.terminate()
        try:
            newest.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            newest.popen.kill()
            newest.popen.wait(timeout=10)
        self.running(kind)
        return newest

    def close(self) -> None:
        with self._lock:
            launched = [p for ps in self._running.values() for p in ps if p.alive()]
        for p in launched:
            p.popen.terminate()
        for p in launched:
            try:
                p.popen.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.popen.kill()
