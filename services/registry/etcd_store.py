"""etcd as the registry's store: leases, compare-and-set writes and a watch, over etcd3gw.

Every registry replica talks to the same etcd cluster; etcd holds the truth and each replica
mirrors it through a watch (:mod:`services.registry.etcd_catalog`). This module is only the
client side: endpoint failover, the few KV calls the catalog needs, and a watch stream that
reconnects from the last revision it delivered; the wire format is :mod:`services.registry.etcd_wire`.

Why a hand-made watch loop and not ``etcd3gw``'s ``watch_prefix``: that one runs in a thread
pool and goes quiet when its member dies; the catalog must learn of the end and resume from
the next revision on another member, or it would miss changes.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import requests.adapters
from etcd3gw.client import Etcd3Client
from etcd3gw.exceptions import (
    ConnectionFailedError,
    ConnectionTimeoutError,
    Etcd3Exception,
    InternalServerError,
    PreconditionFailedError,
)

from services.registry.etcd_wire import (
    KeyValue,
    WatchEvent,
    b64,
    decode_event,
    decode_kv,
    delete_op,
    mod_equals,
    put_op,
    range_end,
    unchanged_since,
)
from services.registry.store import StoreUnavailable

# KeyValue and WatchEvent live in etcd_wire.py; callers may import them here.
__all__ = ["EtcdStore", "EtcdUnavailable", "KeyValue", "WatchEvent"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# Failures that mean "try another member": the member is gone, slow, or between leaders.
_RETRYABLE = (ConnectionFailedError, ConnectionTimeoutError, requests.exceptions.RequestException)
POOL_SIZE = 32  # kept-alive connections per etcd member for calls (the watch stream has its own)
_TRANSIENT_MESSAGES = ("leader changed", "no leader", "timed out", "timeout", "unavailable", "not capable")


class EtcdUnavailable(StoreUnavailable):
    """No etcd member answered within the retry budget."""


# As etcd3gw maps the gateway's answers (so callers see the same exceptions as before).
_ERRORS_BY_STATUS: dict[int, type[Etcd3Exception]] = {
    500: InternalServerError,
    503: ConnectionFailedError,
    408: ConnectionTimeoutError,
    504: ConnectionTimeoutError,
    412: PreconditionFailedError,
}
_JSON_HEADERS = {"Content-Type": "application/json"}
# A kept-alive connection the member closed while idle fails like this on its next request.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class _NoDelayConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class GatewayConnections:
    """Kept-alive HTTP/1.1 connections to one member's JSON gateway, for the unary calls.

    ``requests`` + ``etcd3gw`` cost about half of a node beat's CPU on the registry (preparing
    the request, urllib3's pool and its liveness probe, parsing the answer's headers through
    ``email``) for a ~300-byte POST; this is ``http.client`` on a pool of at most ``size``
    connections (callers beyond it wait for one), raising what ``etcd3gw`` raised.
    """

    def __init__(self, protocol: str, host: str, port: int, api_path: str, timeout: float, size: int) -> None:
        self.protocol, self.host, self.port = protocol, host, port
        self.api_path, self.timeout = api_path.rstrip("/"), timeout
        self._idle: list[http.client.HTTPConnection] = []
        self._slots = threading.BoundedSemaphore(size)
        self._closed = False

    def post(self, path: str, body: dict[str, Any] | bytes) -> dict[str, Any]:
        data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        with self._slots:
            for attempt in range(2):
                reused = attempt == 0 and bool(self._idle)  # a retry always opens a new connection
                conn = self._idle.pop() if reused else self._connect()
                try:
                    conn.request("POST", self.api_path + path, body=data, headers=_JSON_HEADERS)
                    resp = conn.getresponse()
                    raw = resp.read()
                except TimeoutError as exc:
                    conn.close()
                    raise ConnectionTimeoutError(str(exc) or "timed out") from exc
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    if reused and isinstance(exc, _STALE):
                        self._drop_idle()  # the member closed it while idle (likely all of them: a restart)
                        continue  # before any answer: once more, on a new connection
                    raise ConnectionFailedError(str(exc) or type(exc).__name__) from exc
                if resp.will_close or self._closed:
                    conn.close()
                else:
                    self._idle.append(conn)
                break
        if resp.status != 200:
            error = _ERRORS_BY_STATUS.get(resp.status, Etcd3Exception)
            raise error(raw.decode(errors="replace"), resp.reason)
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ConnectionFailedError(f"not JSON from the gateway: {raw[:200]!r}") from exc

    def _connect(self) -> http.client.HTTPConnection:
        if self.protocol == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout)
        return _NoDelayConnection(self.host, self.port, timeout=self.timeout)

    def _drop_idle(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def close(self) -> None:
        self._closed = True
        self._drop_idle()


def _describe(exc: Exception | None) -> str:
    """etcd3gw puts the server's words in ``detail_text`` and leaves ``str(exc)`` empty."""
    if exc is None:
        return "no answer"
    text = str(exc) or str(getattr(exc, "detail_text", "") or "")
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _transient(exc: Etcd3Exception) -> bool:
    text = f"{exc} {getattr(exc, 'detail_text', '')}".lower()
    return any(m in text for m in _TRANSIENT_MESSAGES)


class EtcdStore:
    """A failover client over every given etcd member, speaking etcd's v3 JSON gateway.

    :param endpoints: member URLs (``http://host:2379``), tried in turn; a failing member is
        skipped until the others fail too.
    :param prefix: key prefix of this registry's data, so several meshes can share a cluster.
    :param retry_for: seconds a call keeps trying members (covers a leader election, ~1 s).
    :param fail_fast_for: after a call ran out of members, later calls fail at once for this
        long instead of each waiting ``retry_for`` (an etcd outage must not hold every request).
    """

    def __init__(
        self,
        endpoints: list[str],
        prefix: str = "/compass-mesh/",
        timeout: float = 3.0,
        retry_for: float = 8.0,
        fail_fast_for: float = 1.0,
    ) -> None:
        if not endpoints:
            raise ValueError("the etcd store needs at least one endpoint (--etcd-endpoints)")
        self.root = prefix.rstrip("/") + "/"  # everything of this mesh: instances/, nodes/, beats/
        self.prefix = self.root + "instances/"
        self.endpoints = endpoints
        self.timeout = timeout
        self.retry_for = retry_for
        self.fail_fast_for = fail_fast_for
        self._down_until = 0.0
        self._clients = [self._client(url) for url in endpoints]  # the watch stream's sessions
        self._gateways = [
            GatewayConnections(c.protocol, c.host, c.port, c.api_path, timeout, POOL_SIZE) for c in self._clients
        ]  # every other call
        self._current = 0
        self._lock = threading.Lock()
        self._watch_response: requests.Response | None = None
        # The catalog serialises nothing through us; kept for the Store protocol's shape.
        self.write_lock = threading.RLock()

    def _client(self, url: str) -> Etcd3Client:
        parts = urlsplit(url if "//" in url else f"http://{url}")
        if not parts.hostname:
            raise ValueError(f"bad etcd endpoint {url!r}: expected http://host:port")
        # /v3/ is the gateway path of etcd ≥ 3.4; naming it skips a discovery round trip.
        client = Etcd3Client(
            host=parts.hostname,
            port=parts.port or 2379,
            protocol=parts.scheme or "http",
            timeout=self.timeout,
            api_path="/v3/",
        )
        # etcd is reached directly, never through a proxy; reading proxy and netrc settings
        # from the environment on every request was a quarter of a heartbeat's CPU.
        client.session.trust_env = False
        # Bounded, reused connections: past urllib3's default of 10, every extra concurrent
        # request opened and dropped a TCP connection (and logged a warning); callers beyond
        # the pool now wait for a free connection instead.
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=POOL_SIZE, pool_block=True)
        client.session.mount("http://", adapter)
        client.session.mount("https://", adapter)
        return client

    # ----- failover ----------------------------------------------------------------------
    def _call(self, fn: Callable[[GatewayConnections], T]) -> T:
        """Run ``fn`` on the current member, moving on to the next one while it fails."""
        if time.monotonic() < self._down_until:
            raise EtcdUnavailable(f"no etcd member of {', '.join(self.endpoints)} answered a moment ago")
        deadline = time.monotonic() + self.retry_for
        delay = 0.05
        last: Exception | None = None
        while True:
            for _ in range(len(self._clients)):
                with self._lock:
                    slot = self._current
                try:
                    result = fn(self._gateways[slot])
                    self._down_until = 0.0
                    return result
                except _RETRYABLE as exc:
                    last = exc
                except Etcd3Exception as exc:
                    if not _transient(exc):
                        raise
                    last = exc
                with self._lock:
                    if self._current == slot and len(self._clients) > 1:
                        self._current = (slot + 1) % len(self._clients)
                        log.warning(
                            "etcd member %s failed (%s); now using %s",
                            self.endpoints[slot],
                            _describe(last),
                            self.endpoints[self._current],
                        )
            if time.monotonic() + delay > deadline:
                self._down_until = time.monotonic() + self.fail_fast_for
                raise EtcdUnavailable(
                    f"no etcd member of {', '.join(self.endpoints)} answered: {_describe(last)}"
                ) from last
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call(lambda gateway: gateway.post(path, body))

    # ----- keys --------------------------------------------------------------------------
    def key(self, instance_id: str) -> str:
        return self.prefix + instance_id

    def instance_id(self, key: str) -> str:
        return key[len(self.prefix) :]

    def list(self) -> tuple[list[KeyValue], int]:
        """Every instance key and the cluster revision the answer is consistent at."""
        resp = self._post("/kv/range", {"key": b64(self.prefix), "range_end": range_end(self.prefix)})
        items = [decode_kv(kv) for kv in resp.get("kvs", [])]
        return items, int(resp["header"]["revision"])

    def list_all(self) -> tuple[list[KeyValue], int]:
        """Every key of this mesh (instances, node records, node beats), as the watch sees them."""
        resp = self._post("/kv/range", {"key": b64(self.root), "range_end": range_end(self.root)})
        return [decode_kv(kv) for kv in resp.get("kvs", [])], int(resp["header"]["revision"])

    def get(self, instance_id: str) -> KeyValue | None:
        return self._get_key(self.key(instance_id))

    def _get_key(self, key: str) -> KeyValue | None:
        kvs = self._post("/kv/range", {"key": b64(key)}).get("kvs", [])
        return decode_kv(kvs[0]) if kvs else None

    def grant(self, ttl_s: int) -> int:
        """A new lease of ``ttl_s`` whole seconds (etcd may grant more, never less)."""
        resp = self._post("/lease/grant", {"TTL": ttl_s})
        return int(resp["ID"])

    def refresh(self, lease: int) -> bool:
        """Keep ``lease`` alive; False when it has already expired (its keys are gone)."""
        resp = self._post("/lease/keepalive", {"ID": lease})
        return int(resp.get("result", {}).get("TTL", -1)) > 0

    def revoke(self, lease: int) -> None:
        """Drop ``lease`` and any key still on it; an unknown lease is not an error."""
        try:
            self._post("/kv/lease/revoke", {"ID": lease})
        except Etcd3Exception as exc:
            if "not found" not in str(exc).lower() and "not found" not in getattr(exc, "detail_text", "").lower():
                raise

    def create_or_replace(
        self, instance_id: str, value: dict[str, Any], lease: int, drop: list[str], *, expect_revision: int = 0
    ) -> tuple[bool, int]:
        """Put the instance on ``lease`` and delete the ``drop`` ids, atomically, if the key is as expected.

        ``expect_revision`` is the key's mod revision the caller decided on (0: the key must not
        exist). Returns (whether it was written, the cluster revision of the answer).
        """
        key = self.key(instance_id)
        ops = [put_op(key, value, lease), *[delete_op(self.key(i)) for i in drop if i != instance_id]]
        return self.txn([unchanged_since(key, expect_revision)], ops)

    def put_if(self, instance_id: str, value: dict[str, Any], lease: int, mod_revision: int) -> int | None:
        """Compare-and-set: write only if the key is still at ``mod_revision``; its new revision, else None."""
        key = self.key(instance_id)
        written, revision = self.txn([mod_equals(key, mod_revision)], [put_op(key, value, lease)])
        return revision if written else None

    def delete(self, instance_id: str) -> int:
        resp = self._post("/kv/deleterange", {"key": b64(self.key(instance_id))})
        return int(resp["header"]["revision"])

    # ----- node agents (services.registry.etcd_nodes) ------------------------------------
    def node_key(self, node: str) -> str:
        """A node's record (its secret's digest), beside the instance prefix."""
        return self.root + "nodes/" + node

    def beat_key(self, node: str) -> str:
        """A node's last beat (its time and its instances' loads): one key per node, on the node's lease."""
        return self.root + "beats/" + node

    def beat_node(self, key: str) -> str | None:
        """The node whose beat ``key`` is; None for any other key."""
        head = self.root + "beats/"
        return key[len(head) :] if key.startswith(head) else None

    def get_node(self, node: str) -> KeyValue | None:
        return self._get_key(self.node_key(node))

    def txn(self, compare: list[dict[str, Any]], success: list[dict[str, Any]]) -> tuple[bool, int]:
        """One etcd transaction (one raft write however many keys): (succeeded, revision)."""
        resp = self._post("/kv/txn", {"compare": compare, "success": success})
        return bool(resp.get("succeeded", False)), int(resp["header"]["revision"])

    def get_many(self, instance_ids: list[str]) -> dict[str, KeyValue]:
        """The current records of several instances in one round trip (a read-only transaction)."""
        ops = [{"request_range": {"key": b64(self.key(i))}} for i in instance_ids]
        resp = self._post("/kv/txn", {"compare": [], "success": ops})
        out = {}
        for answer in resp.get("responses", []):
            for raw in answer.get("response_range", {}).get("kvs", []):
                kv = decode_kv(raw)
                out[self.instance_id(kv.key)] = kv
        return out

    # Transaction operations, for the etcd catalog and its node side (services.registry.etcd_wire).
    put_op = staticmethod(put_op)
    delete_op = staticmethod(delete_op)
    unchanged_since = staticmethod(unchanged_since)

    # ----- watch -------------------------------------------------------------------------
    def watch(
        self, start_revision: int, stop: threading.Event, held: Callable[[str, int], bool] | None = None
    ) -> Iterator[WatchEvent | int]:
        """Events under this mesh's root (instances, node records, node beats) from ``start_revision`` on,
        across member failures, until ``stop`` is set. ``held(key, revision)``: the caller already
        holds that put (its own write), whose value need not be decoded (``WatchEvent.held``).

        Yields :class:`WatchEvent` objects, and a bare ``int`` (a compacted revision) when
        etcd no longer has the history asked for: the caller must re-list and resume.
        """
        next_revision = start_revision
        failures = 0
        while not stop.is_set():
            with self._lock:
                slot = self._current
            client = self._clients[slot]
            body = {
                "create_request": {
                    "key": b64(self.root),
                    "range_end": range_end(self.root),
                    "start_revision": next_revision,
                }
            }
            try:
                with client.session.post(
                    client.get_url("/watch"), json=body, stream=True, timeout=(self.timeout, None)
                ) as resp:
                    self._watch_response = resp
                    resp.raise_for_status()
                    for line in resp.iter_lines():
                        if stop.is_set():
                            return
                        if not line.strip():
                            continue
                        result = json.loads(line).get("result", {})
                        failures = 0
                        if int(result.get("compact_revision", 0) or 0) > 0:
                            yield int(result["compact_revision"])
                            return
                        for raw in result.get("events", []):
                            event = decode_event(raw, held)
                            next_revision = event.revision + 1
                            yield event
                if stop.is_set():
                    return
                log.warning("etcd watch on %s ended; resuming at revision %d", self.endpoints[slot], next_revision)
            except (requests.exceptions.RequestException, ValueError) as exc:
                if stop.is_set():
                    return
                log.warning("etcd watch on %s failed (%s); resuming at %d", self.endpoints[slot], exc, next_revision)
            failures += 1
            with self._lock:
                if self._current == slot:
                    self._current = (slot + 1) % len(self._clients)
            stop.wait(min(0.05 * 2**failures, 1.0))

    def close(self) -> None:
        """Close every connection, the open watch stream included (its reader returns at once)."""
        resp, self._watch_response = self._watch_response, None
        if resp is not None:
            try:  # shutting the socket down is what wakes a thread blocked reading it
                fd = resp.raw._fp.fileno()
                with socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except (AttributeError, OSError, ValueError):
                pass
        for client in self._clients:
            client.session.close()
        for gateway in self._gateways:
            gateway.close()
