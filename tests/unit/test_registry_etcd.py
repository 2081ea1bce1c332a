"""The etcd catalog against a real etcd: replicas sharing one prefix, leases, failover, compaction.

The API suite (test_registry_api.py) runs unchanged on both stores; this file covers what only
the etcd store has: several stateless replicas over one cluster, etcd's own expiry of dead
instances, compare-and-set between replicas, and member failover.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests

from services.common.clock import FakeClock
from services.common.instance import parse_registration
from services.common.settings import RegistrySettings
from services.registry.app import create_app
from services.registry.catalog import Query
from services.registry.etcd_catalog import EtcdCatalog
from services.registry.etcd_store import EtcdStore, EtcdUnavailable, WatchEvent
from tests.etcd_support import EtcdCluster, unique_prefix
from tests.support import free_port, wait_until


def reg(name: str = "echo", port: int = 9001):
    return parse_registration({"service_name": name, "host": "127.0.0.1", "port": port})


@pytest.fixture
def replicas(etcd_server):
    """Two catalogs on one prefix, as two registry replicas would be; each with its own clock."""
    prefix = unique_prefix()
    made: list[EtcdCatalog] = []

    def make(ttl: float = 6.0, deregister_after: float = 60.0, clock: FakeClock | None = None) -> EtcdCatalog:
        cat = EtcdCatalog(EtcdStore(etcd_server.endpoints, prefix=prefix), clock or FakeClock(), ttl, deregister_after)
        made.append(cat)
        return cat

    yield make
    for cat in made:
        cat.close()


def ids(cat: EtcdCatalog, name: str = "echo") -> list[str]:
    return [i.instance_id for i in cat.query(Query(name=name))[0]]


def test_a_write_on_one_replica_is_seen_by_the_other_at_the_same_index(replicas):
    a, b = replicas(), replicas()
    inst, created, _ = a.register(reg())
    assert created
    wait_until(lambda: ids(b) == [inst.instance_id], timeout=5, what="replica b to see the registration")
    assert a.current_index(Query(name="echo")) == b.current_index(Query(name="echo"))

    # Heartbeat through b for an instance registered through a; a drain through b; seen by a.
    beat = b.heartbeat(inst.instance_id, "warning", {"inflight": 4})
    assert beat is not None and beat.status == "warning"
    wait_until(lambda: a.get(inst.instance_id).load == {"inflight": 4}, timeout=5, what="load on a")
    assert b.set_maintenance(inst.instance_id, True, "upgrade").status == "maintenance"
    wait_until(lambda: a.get(inst.instance_id).status == "maintenance", timeout=5, what="drain on a")

    assert a.deregister(inst.instance_id) is not None
    wait_until(lambda: ids(b) == [], timeout=5, what="replica b to see the deregistration")
    assert b.heartbeat(inst.instance_id, None, None) is None  # the worker is told to re-register


def test_plain_heartbeat_does_not_move_the_index_but_a_state_change_does(replicas):
    a = replicas()
    inst, _, _ = a.register(reg())
    before = a.current_index(Query(name="echo"))
    a.heartbeat(inst.instance_id, None, {"inflight": 1})
    assert a.current_index(Query(name="echo")) == before
    a.heartbeat(inst.instance_id, "warning", None)
    assert a.current_index(Query(name="echo")) > before


def test_a_drain_on_one_replica_survives_a_heartbeat_on_the_other(replicas):
    """Compare-and-set: b's heartbeat must not write back the undrained copy it had cached."""
    a, b = replicas(), replicas()
    inst, _, _ = a.register(reg())
    wait_until(lambda: b.get(inst.instance_id) is not None, timeout=5)
    a.set_maintenance(inst.instance_id, True, "drain")
    for _ in range(5):  # immediately, before b's mirror may have caught up
        b.heartbeat(inst.instance_id, None, {"inflight": 0})
    wait_until(lambda: b.get(inst.instance_id).status == "maintenance", timeout=5, what="drain on b")
    assert a.get(inst.instance_id).status == "maintenance"


def test_ttl_sweep_on_one_replica_marks_critical_everywhere(replicas):
    clock = FakeClock()
    a, b = replicas(clock=clock), replicas()
    inst, _, _ = a.register(reg())
    wait_until(lambda: b.get(inst.instance_id) is not None, timeout=5)
    clock.advance(5.0)
    assert a.sweep() == ([], [])
    clock.advance(1.5)
    critical, removed = a.sweep()
    assert [i.instance_id for i in critical] == [inst.instance_id] and removed == []
    wait_until(lambda: b.get(inst.instance_id).status == "critical", timeout=5, what="critical on b")
    assert "TTL" in b.get(inst.instance_id).status_reason
    assert a.heartbeat(inst.instance_id, None, None).status == "passing"
    wait_until(lambda: b.get(inst.instance_id).status == "passing", timeout=5, what="revival on b")


def test_etcd_expires_a_dead_instance_with_every_replica_down(replicas, etcd_server):
    """The lease spans TTL + deregister_after; etcd deletes the key itself."""
    a = replicas(ttl=1.0, deregister_after=1.0)
    assert a.lease_ttl == 3  # TTL + deregister_after + one refresh period (a TTL)
    inst, _, _ = a.register(reg())
    probe = EtcdStore(etcd_server.endpoints, prefix=a.store.prefix.removesuffix("instances/"))
    assert probe.get(inst.instance_id) is not None
    a.close()
    # etcd enforces a minimum lease TTL (1.5 × election timeout), so allow a few seconds.
    wait_until(lambda: probe.get(inst.instance_id) is None, timeout=10, what="etcd to expire the lease")
    probe.close()


def test_reregistration_at_one_address_replaces_never_duplicates(replicas):
    a, b = replicas(), replicas()
    first, _, _ = a.register(reg())
    again, created, _ = b.register(reg())
    assert not created and again.instance_id == first.instance_id
    moved = parse_registration({"service_name": "echo", "host": "127.0.0.1", "port": 9001, "instance_id": "fresh-id"})
    a.register(moved)
    wait_until(lambda: ids(b) == ["fresh-id"], timeout=5, what="one row, the new id")
    assert ids(a) == ["fresh-id"]


def test_a_restarted_replica_loads_everything_with_a_fresh_grace_and_a_later_index(replicas):
    a = replicas()
    for port in (9001, 9002, 9003):
        a.register(reg(port=port))
    index = a.index
    a.close()
    b = replicas()
    assert len(ids(b)) == 3 and b.index >= index
    assert all(i.status == "passing" for i in b.snapshot())


def test_store_fails_over_from_a_dead_member_and_reports_when_all_are_gone(etcd_server):
    dead = f"http://127.0.0.1:{free_port()}"
    store = EtcdStore([dead, *etcd_server.endpoints], prefix=unique_prefix())
    lease = store.grant(5)
    assert store.refresh(lease)
    store.close()
    nobody = EtcdStore([dead], prefix=unique_prefix(), retry_for=0.5)
    started = time.monotonic()
    with pytest.raises(EtcdUnavailable, match="no etcd member"):
        nobody.list()
    assert time.monotonic() - started < 5
    nobody.close()


def test_watch_reports_compaction_so_the_mirror_can_relist(etcd_server):
    store = EtcdStore(etcd_server.endpoints, prefix=unique_prefix())
    lease = store.grant(30)
    store.create_or_replace("x", {"instance": {}}, lease, [])
    revision = store.delete("x")
    compact = requests.post(etcd_server.endpoints[0] + "/v3/kv/compaction", json={"revision": revision}, timeout=5)
    compact.raise_for_status()
    stop = threading.Event()
    first = next(store.watch(1, stop))
    stop.set()
    assert isinstance(first, int) and first >= revision
    store.close()


def test_etcd_down_writes_answer_503_fast_and_reads_serve_the_mirror(tmp_path):
    """Failure tried: the whole etcd cluster killed under a running replica, then brought back."""
    cluster = EtcdCluster(tmp_path, size=1).start()
    settings = RegistrySettings(heartbeat_interval=2.0, critical_after=3)
    store = EtcdStore(cluster.endpoints, prefix=unique_prefix(), retry_for=1.0, fail_fast_for=1.0)
    app = create_app(settings, store, FakeClock(), start_background=False)
    client = app.test_client()
    try:
        iid = client.post("/api/v1/services/register", json={"service_name": "echo", "host": "127.0.0.1", "port": 9001})
        iid = iid.get_json()["data"]["instance_id"]
        cluster.members[0].kill9()
        beat = client.put(f"/api/v1/services/{iid}/heartbeat", json={})
        assert beat.status_code == 503 and beat.get_json()["error"]["code"] == "OVERLOADED"
        assert "store is unavailable" in beat.get_json()["error"]["details"] and beat.headers["Retry-After"]
        started = time.monotonic()
        again = client.put(f"/api/v1/services/{iid}/heartbeat", json={})
        assert again.status_code == 503 and time.monotonic() - started < 0.5  # fails fast, no retry budget
        listed = client.get("/api/v1/services?name=echo").get_json()["data"]["instances"]
        assert [i["instance_id"] for i in listed] == [iid]  # reads answer from the mirror
        # etcd back (same ports and data): once the fail-fast window has passed, writes work again.
        cluster.members[0].start()
        wait_until(cluster.members[0].healthy, timeout=30, what="etcd back")
        wait_until(
            lambda: client.put(f"/api/v1/services/{iid}/heartbeat", json={}).status_code == 200,
            timeout=10,
            what="heartbeats accepted again",
        )
    finally:
        app.extensions["registry"].catalog.close()
        cluster.stop()


def test_a_late_change_never_undoes_a_newer_one(replicas):
    """The mirror takes changes from two paths (our own writes, the watch), in either order."""
    cat = replicas()
    inst, _, _ = cat.register(reg())
    iid = inst.instance_id
    entry = cat._cached(iid)
    record = {"instance": inst.to_dict(), "reported": "passing", "ttl_critical": False, "check_state": None}
    base = cat.index + 1000  # synthetic revisions past anything real on this prefix
    key = cat.store.key(iid)

    def drained(on: bool) -> dict:
        return {**record, "instance": {**record["instance"], "maintenance": on}}

    # Our write at base+2 applied first; the watch then brings the older base+1: ours stays.
    cat._apply_put(iid, drained(True), base + 2, entry.lease)
    cat._apply(WatchEvent(key, drained(False), base + 1, entry.lease))
    assert cat.get(iid).status == "maintenance"
    # A deletion at base+4 arrives; a put from before it (base+3) must not bring the id back.
    cat._deleted(iid, base + 4)
    cat._apply(WatchEvent(key, drained(False), base + 3, entry.lease))
    assert cat.get(iid) is None
    # The watch passes the deletion, and our own write of base+3 only now comes back: still gone.
    cat._apply(WatchEvent(key, None, base + 4, 0))
    cat._wrote(iid, entry, base + 3, entry.lease)
    assert cat.get(iid) is None
    # A registration after the deletion (base+5) is a real change and shows.
    cat._apply(WatchEvent(key, record, base + 5, entry.lease))
    assert cat.get(iid) is not None and cat.index >= base + 5


def test_an_unreachable_member_is_named_once_not_on_every_retry(etcd_server, caplog):
    dead = f"http://127.0.0.1:{free_port()}"
    caplog.set_level("WARNING", logger="services.registry.etcd_store")
    alone = EtcdStore([dead], prefix=unique_prefix(), retry_for=0.5)
    with pytest.raises(EtcdUnavailable, match="ConnectionFailedError"):
        alone.list()
    assert not caplog.records  # one member: nothing to fail over to, the exception says it all
    alone.close()
    pair = EtcdStore([dead, *etcd_server.endpoints], prefix=unique_prefix())
    pair.list()
    pair.list()
    moves = [r.getMessage() for r in caplog.records]
    assert len(moves) == 1 and dead in moves[0] and etcd_server.endpoints[0] in moves[0]
    pair.close()
