"""The etcd store's hot path (issue 20): its kept-alive gateway connections, the watch that skips
decoding our own writes, the node lease kept alive beside the beat, and the frozen heap.

Real etcd (the ``etcd_server`` fixture) except for the gateway's failure cases, which a tiny
local HTTP server plays.
"""

from __future__ import annotations

import gc
import http.server
import socketserver
import threading
import weakref
from collections.abc import Iterator
from typing import ClassVar

import pytest
from etcd3gw.exceptions import ConnectionFailedError, Etcd3Exception, InternalServerError

from services.common.clock import FakeClock
from services.registry.etcd_store import EtcdStore, GatewayConnections
from services.registry.etcd_wire import b64, decode_event
from services.registry.gcpolicy import FrozenHeap
from services.registry.metrics import RegistryMetrics, time_gc_pauses
from services.registry.nodes import NodeItem
from tests.etcd_support import unique_prefix
from tests.support import wait_until
from tests.unit.registry.test_nodes_etcd import NODE, on_node
from tests.unit.test_registry_etcd import replicas  # noqa: F401 - a fixture


# ----- the gateway's connections ---------------------------------------------------------------
def test_calls_reuse_one_kept_alive_connection(etcd_server):
    store = EtcdStore(etcd_server.endpoints, prefix=unique_prefix())
    gateway = store._gateways[0]
    lease = store.grant(30)
    for _ in range(20):
        assert store.refresh(lease)
    assert len(gateway._idle) == 1  # one connection, sequential calls: never a second one
    store.close()
    assert gateway._idle == []


class _Gateway(http.server.BaseHTTPRequestHandler):
    """Answers {"n": <request count on this connection>}; ``plan`` says what each request gets."""

    protocol_version = "HTTP/1.1"
    plan: ClassVar[list[str]] = []
    connections = 0

    def setup(self) -> None:
        super().setup()
        type(self).connections += 1
        self.served = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.served += 1
        action = self.plan.pop(0) if self.plan else "ok"
        if action == "drop":  # close without answering, as a member that closed an idle connection
            self.close_connection = True
            return
        status, body = (500, b'{"error":"etcdserver: boom"}') if action == "500" else (200, b'{"n": %d}' % self.served)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def fake_gateway() -> Iterator[int]:
    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True

    _Gateway.plan, _Gateway.connections = [], 0
    server = Server(("127.0.0.1", 0), _Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_connection_closed_while_idle_is_retried_once_on_a_new_one(fake_gateway):
    gateway = GatewayConnections("http", "127.0.0.1", fake_gateway, "/v3/", timeout=2.0, size=4)
    assert gateway.post("/kv/range", {}) == {"n": 1}
    assert gateway.post("/kv/range", {}) == {"n": 2}  # the same connection
    _Gateway.plan = ["drop"]
    assert gateway.post("/kv/range", {}) == {"n": 1}  # a new connection answered
    assert _Gateway.connections == 2
    gateway.close()


def test_errors_are_etcd3gws(fake_gateway):
    gateway = GatewayConnections("http", "127.0.0.1", fake_gateway, "/v3/", timeout=2.0, size=4)
    _Gateway.plan = ["500"]
    with pytest.raises(InternalServerError) as raised:
        gateway.post("/kv/txn", {})
    assert "boom" in raised.value.detail_text and isinstance(raised.value, Etcd3Exception)
    gateway.close()
    refused = GatewayConnections("http", "127.0.0.1", 1, "/v3/", timeout=2.0, size=4)
    with pytest.raises(ConnectionFailedError):
        refused.post("/kv/range", {})


# ----- the watch skips decoding what the mirror already holds --------------------------------
def test_a_held_put_is_not_decoded_and_a_delete_never_counts_as_held():
    raw = {"kv": {"key": b64("/p/instances/x"), "value": b64("not json at all"), "mod_revision": "7"}}
    event = decode_event(raw, lambda key, revision: key == "/p/instances/x" and revision == 7)
    assert event.held and event.value is None and event.revision == 7  # decoding the value would raise
    deleted = decode_event({"type": "DELETE", **raw}, lambda key, revision: True)
    assert not deleted.held and deleted.value is None


def test_our_own_beats_come_back_held_and_the_other_replicas_are_decoded(replicas):  # noqa: F811
    clock = FakeClock()
    a, b = replicas(clock=clock), replicas(clock=clock)
    (iid,) = on_node(a, 9001)
    wait_until(lambda: b.get(iid) is not None, timeout=5, what="b to mirror the registration")
    result = a.node_heartbeat(NODE, [NodeItem(iid, None, {"inflight": 3})], full=False)
    assert result is not None and result.renewed == 1
    beat = a._node_beats[NODE]
    assert a._holds(a.store.beat_key(NODE), beat.revision)  # a wrote it: its watch skips the value
    assert not a._holds(a.store.beat_key(NODE), beat.revision + 1)
    wait_until(lambda: b.get(iid).load == {"inflight": 3}, timeout=5, what="b to apply a's beat")
    wait_until(lambda: a._applied >= beat.revision, timeout=5, what="a's watch to pass its own beat")
    assert a.get(iid).load == {"inflight": 3}


# ----- the node's lease is kept alive beside the beat ------------------------------------------
def test_a_due_keep_alive_runs_beside_the_beat_and_a_lost_lease_makes_the_next_beat_claim_again(replicas):  # noqa: F811
    a = replicas()
    (iid,) = on_node(a, 9001)
    lease = a._nodes_seen[NODE].lease
    a._refreshed[lease] -= a.refresh_every  # due: this beat keeps the lease alive
    ttl_before = a.store._post("/lease/timetolive", {"ID": lease})["TTL"]
    assert a.node_heartbeat(NODE, [NodeItem(iid)], full=False).renewed == 1
    assert a._refreshed[lease] > 0
    wait_until(
        lambda: int(a.store._post("/lease/timetolive", {"ID": lease})["TTL"]) >= int(ttl_before),
        timeout=5,
        what="the keep-alive beside the beat",
    )
    # The lease runs out; the next due keep-alive finds it gone: the node is forgotten here, and
    # the beat's own transaction already failed on it ("lease not found"): the agent claims again.
    a.store.revoke(lease)
    a._refreshed[lease] -= a.refresh_every
    assert a.node_heartbeat(NODE, [NodeItem(iid)], full=False) is None
    wait_until(lambda: NODE not in a._nodes_seen, timeout=5, what="the node to be forgotten")
    assert a.node_heartbeat(NODE, [NodeItem(iid)], full=False) is None


# ----- the frozen heap ---------------------------------------------------------------------------
def test_the_heap_is_frozen_on_each_tick_and_fully_collected_every_full_every():
    now = [0.0]
    heap = FrozenHeap(freeze_every=30.0, full_every=90.0, clock=lambda: now[0])
    try:
        heap.tick()
        assert gc.get_freeze_count() > 0 and heap.freezes == 1 and heap.full_collections == 0

        class Cycle:
            pass

        first = Cycle()
        first.me = first  # type: ignore[attr-defined]
        alive = weakref.ref(first)
        heap.freeze()  # the cycle is now frozen
        del first
        gc.collect()
        assert alive() is not None  # no pass sees a frozen object: its cycle waits
        now[0] = 95.0
        heap.tick()  # past full_every: unfreeze, collect everything, freeze again
        assert heap.full_collections == 1 and gc.get_freeze_count() > 0
        assert alive() is None  # collected
    finally:
        gc.unfreeze()


def test_gc_pauses_are_observed_by_generation_until_stopped():
    metrics = RegistryMetrics(list, lambda: 0)
    stop = time_gc_pauses(metrics)
    try:
        gc.collect()
    finally:
        stop()
    full = metrics.registry.get_sample_value("registry_gc_pause_seconds_count", {"generation": "2"})
    assert full is not None and full >= 1
    gc.collect()
    assert metrics.registry.get_sample_value("registry_gc_pause_seconds_count", {"generation": "2"}) == full
