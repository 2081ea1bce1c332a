"""The node agent: one registry heartbeat per interval for every replica a launcher runs.

Consul's agents check their services locally and the servers hear from the node; this is the same
for a launcher (DESIGN "Node agents", README_SERVICES.md "Node agents"):

- The launcher picks a node name and a random node secret and hands both to its workers in the
  environment (:data:`NODE_ENV`, :data:`NODE_SECRET_ENV`; never on argv). A worker that finds them
  registers itself with ``X-Node``/``X-Node-Secret`` (so its instance belongs to the node) and then
  sends no heartbeats of its own; it registers again when the agent sends it SIGUSR1.
- Every interval the agent checks each replica locally — process alive, ``GET /health``, the
  in-flight count it reports — and sends one ``PUT /api/v1/nodes/{node}/heartbeat`` for all of
  them: ``full`` on the first beat and every :attr:`NodeAgent.full_every`-th, else only the
  instances whose status or load changed (the registry renews the rest).
- A replica whose process died is reported critical at once (not the whole node), then left out of
  a full beat once it has been dead for ``deregister_after``: the registry removes it on the same
  schedule as a silent lone worker. Its replacement (a new process, a new port) registers itself.
- Ids the registry answers as unknown get SIGUSR1 (their worker registers again), at most once per
  three intervals each; a 404 for the node itself (its etcd lease ran out) makes the agent claim it
  again.

A worker started alone keeps ``PUT /services/{id}/heartbeat``: nothing here runs without a launcher.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from services.client.registry_api import RegistryApi
from services.common.envelope_read import error_text

log = logging.getLogger(__name__)

NODE_ENV = "REGISTRY_NODE"
NODE_SECRET_ENV = "REGISTRY_NODE_SECRET"
NODE_HEADER = "X-Node"
NODE_SECRET_HEADER = "X-Node-Secret"
REREGISTER_SIGNAL = signal.SIGUSR1
_NODE_CHARS = re.compile(r"[^A-Za-z0-9._\-]+")
_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")


@dataclass(frozen=True)
class NodeBinding:
    """A node's name and secret, as the launcher hands them to its workers."""

    node: str
    secret: str

    @classmethod
    def new(cls, node: str) -> NodeBinding:
        return cls(node, secrets.token_urlsafe(32))

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> NodeBinding | None:
        """The binding a launcher gave this worker, or None for a worker started alone."""
        env = os.environ if env is None else env
        node, secret = env.get(NODE_ENV, "").strip(), env.get(NODE_SECRET_ENV, "").strip()
        return cls(node, secret) if node and secret else None

    def environment(self) -> dict[str, str]:
        return {NODE_ENV: self.node, NODE_SECRET_ENV: self.secret}

    def headers(self) -> dict[str, str]:
        return {NODE_HEADER: self.node, NODE_SECRET_HEADER: self.secret}

    def session(self) -> requests.Session:
        """A session that proves the node on every registry call (a worker's registration included)."""
        session = requests.Session()
        session.headers.update(self.headers())
        return session


def valid_node_name(name: str) -> bool:
    """The registry's rule for node names (``services.registry.nodes.NODE_RE``)."""
    return bool(_NODE_NAME.match(name))


def default_node_name(kind: str) -> str:
    """``<host>-<kind>-<pid>``: one node per launcher, so two launchers on one host never share one
    (a full beat of one would remove the other's instances); a restarted launcher is a new node."""
    host = _NODE_CHARS.sub("-", socket.gethostname().split(".")[0]).strip("-._") or "host"
    return f"{host}-{kind}-{os.getpid()}"[:128]


@dataclass
class Replica:
    """What the agent needs of one supervised process: its pid, instance id and URL (None: not ready yet)."""

    pid: int | None
    alive: bool
    instance_id: str | None
    base_url: str | None


@dataclass
class _Seen:
    status: str
    load: dict[str, Any]
    dead_since: float | None = None
    pid: int | None = None


class NodeAgent:
    """Beats for the replicas ``replicas()`` lists, from one background thread (:meth:`step` does one beat)."""

    def __init__(
        self,
        urls: Sequence[str],
        binding: NodeBinding,
        replicas: Callable[[], list[Replica]],
        *,
        token: str = "",
        timeout: float = 3.0,
        check_timeout: float = 1.0,
        full_every: int = 6,
        signal_process: Callable[[int, int], None] = os.kill,
    ) -> None:
        self.binding = binding
        self._replicas = replicas
        self._api = RegistryApi(urls, token=token, timeout_s=timeout, session=binding.session())
        self._checks = requests.Session()
        self._checks.trust_env = False  # our own replicas on this host: never through a proxy
        self._check_timeout = check_timeout
        self.full_every = max(1, full_every)
        self._signal = signal_process
        self.interval = 2.0
        self.deregister_after = 60.0
        self._seen: dict[str, _Seen] = {}
        self._signalled: dict[str, float] = {}
        self._beats = 0
        self._force_full = False
        self._claimed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_answer: dict[str, Any] = {}

    # -- one beat --------------------------------------------------------------------------

    def check(self, replica: Replica) -> tuple[str, dict[str, Any]]:
        """(status, load) of one replica, measured here: its process, its /health, its in-flight count."""
        if not replica.alive or not replica.base_url:
            return "critical", {}
        try:
            resp = self._checks.get(replica.base_url + "/health", timeout=self._check_timeout)
            data = resp.json()["data"]
        except (requests.RequestException, ValueError, KeyError, TypeError):
            return "critical", {}
        status = "passing" if data.get("status") == "healthy" else "critical"
        inflight = data.get("inflight")
        return status, ({"inflight": inflight} if isinstance(inflight, int) else {})

    def beat_body(self, now: float) -> tuple[dict[str, Any], dict[str, int]]:
        """The beat to send and the pid of each live listed instance (for re-registration signals)."""
        full = self._force_full or self._beats % self.full_every == 0
        self._force_full = False
        items: list[dict[str, Any]] = []
        pids: dict[str, int] = {}
        live: set[str] = set()
        for replica in self._replicas():
            iid = replica.instance_id
            if not iid or not replica.alive:
                continue  # not ready yet, or dead: a dead one is handled below
            status, load = self.check(replica)
            seen = self._seen.get(iid)
            if full or seen is None or (seen.status, seen.load) != (status, load):
                items.append({"instance_id": iid, "status": status, "load": load})
            self._seen[iid] = _Seen(status, load, None, replica.pid)
            live.add(iid)
            if replica.pid:
                pids[iid] = replica.pid
        # A process that died (or was replaced under a new id) leaves its id: critical at once,
        # left out once dead for deregister_after (the next beat is full, so the registry removes it).
        for iid, seen in list(self._seen.items()):
            if iid in live:
                continue
            if seen.dead_since is None:
                seen.dead_since = now
            if now - seen.dead_since >= self.deregister_after:
                del self._seen[iid]
                self._force_full = True
                continue
            if full or seen.status != "critical":
                seen.status, seen.load = "critical", {}
                items.append({"instance_id": iid, "status": "critical", "load": {}})
        return {"instances": items, "full": full}, pids

    def step(self) -> float:
        """Claim the node if needed, send one beat, act on the answer; the seconds until the next."""
        if not self._claimed and not self._claim():
            return self.interval
        now = time.monotonic()
        body, pids = self.beat_body(now)
        resp = self._api.write("PUT", f"/api/v1/nodes/{self.binding.node}/heartbeat", body)
        if resp is None:
            log.warning("node beat: no registry reachable at %s", ", ".join(self._api.urls))
            return self.interval
        if resp.status_code == 404:
            log.info("registry no longer knows node %s; claiming it again", self.binding.node)
            self._claimed = False
            self._beats = 0
            return 0.0
        if not resp.ok:
            log.warning("node beat refused: HTTP %d: %s", resp.status_code, error_text(resp))
            return self.interval
        self._beats += 1
        data = resp.json().get("data", {})
        self.last_answer = data
        self._adopt(data)
        for iid in data.get("unknown", []):
            self._reregister(iid, pids.get(iid), now)
        for iid in data.get("removed", []):
            self._seen.pop(iid, None)
        return self.interval

    def _claim(self) -> bool:
        resp = self._api.write("PUT", f"/api/v1/nodes/{self.binding.node}", {})
        if resp is None or not resp.ok:
            detail = "no registry reachable" if resp is None else f"HTTP {resp.status_code}: {error_text(resp)}"
            log.warning("could not claim node %s: %s", self.binding.node, detail)
            return False
        self._adopt(resp.json().get("data", {}))
        self._claimed = True
        log.info("node %s claimed at %s (beat every %.2fs)", self.binding.node, self._api.url, self.interval)
        return True

    def _adopt(self, data: dict[str, Any]) -> None:
        try:
            self.interval = max(0.05, float(data.get("heartbeat_interval_s") or self.interval))
            self.deregister_after = float(data.get("deregister_after_s") or self.deregister_after)
        except (TypeError, ValueError):
            pass

    def _reregister(self, iid: str, pid: int | None, now: float) -> None:
        """Have the worker behind an unknown id register again (SIGUSR1), at most once per three intervals."""
        seen = self._seen.get(iid)
        if pid is None or seen is None or seen.status != "passing":
            return  # dead, still loading or unhealthy: it registers by itself once it can
        if now - self._signalled.get(iid, -1e9) < 3 * self.interval:
            return
        self._signalled[iid] = now
        log.info("registry does not know %s (pid %d): asking it to register again", iid, pid)
        try:
            self._signal(pid, REREGISTER_SIGNAL)
        except OSError as exc:
            log.warning("could not signal pid %d: %s", pid, exc)

    # -- thread ------------------------------------------------------------------------------

    def run(self) -> None:
        delay = 0.0
        while not self._stop.wait(delay):
            started = time.monotonic()
            try:
                delay = self.step()
            except Exception:  # the agent must never take the launcher down
                log.exception("node agent error")
                delay = self.interval
            delay = max(0.0, delay - (time.monotonic() - started))

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="node-agent", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._checks.close()


def node_agent_options(binding: NodeBinding | None) -> dict[str, Any]:
    """The :class:`~services.worker.agent.RegistryAgent` options of a worker (none when started alone):
    its registrations prove the node, and it sends no heartbeats of its own."""
    if binding is None:
        return {}
    return {"session": binding.session(), "beats_by_node": True}


def supervised(supervisor: Any) -> list[Replica]:
    """The replicas of a :class:`~services.worker.supervisor.Supervisor` as the agent sees them (read-only)."""
    out = []
    for r in list(supervisor.replicas):
        proc, ready = r.proc, r.ready_info or {}
        out.append(
            Replica(
                pid=ready.get("pid", r.pid),
                alive=proc is not None and proc.poll() is None,
                instance_id=ready.get("instance_id"),
                base_url=ready.get("base_url"),
            )
        )
    return out
