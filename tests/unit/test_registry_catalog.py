"""Catalog health logic under fake time: TTL expiry, removal, restart grace, dedupe, index, checks."""

from __future__ import annotations

import threading

import pytest

from services.common.clock import FakeClock
from services.common.instance import CheckSpec, parse_registration
from services.registry.catalog import Catalog, Query
from services.registry.store import SQLiteStore

TTL = 6.0
DEREGISTER_AFTER = 60.0


def reg(name: str = "echo", port: int = 9001, **extra):
    return parse_registration({"service_name": name, "host": "127.0.0.1", "port": port, **extra})


@pytest.fixture
def db(tmp_path):
    return tmp_path / "registry.db"


@pytest.fixture
def clock():
    return FakeClock()


def make(db, clock) -> Catalog:
    return Catalog(SQLiteStore(db), clock, TTL, DEREGISTER_AFTER)


def test_ttl_turns_critical_then_removes(db, clock):
    cat = make(db, clock)
    inst, created, _ = cat.register(reg())
    assert created and inst.status == "passing"
    clock.advance(TTL - 0.1)
    assert cat.sweep() == ([], [])
    clock.advance(0.2)
    critical, removed = cat.sweep()
    assert [i.instance_id for i in critical] == [inst.instance_id] and removed == []
    assert cat.get(inst.instance_id).status == "critical"
    assert "TTL" in cat.get(inst.instance_id).status_reason
    clock.advance(DEREGISTER_AFTER)
    _, removed = cat.sweep()
    assert [i.instance_id for i in removed] == [inst.instance_id]
    assert cat.get(inst.instance_id) is None


def test_heartbeat_revives_a_critical_instance_and_bumps_index(db, clock):
    cat = make(db, clock)
    inst, _, _ = cat.register(reg())
    clock.advance(TTL + 1)
    cat.sweep()
    before = cat.index
    revived = cat.heartbeat(inst.instance_id, None, {"inflight": 2})
    assert revived.status == "passing" and cat.get(inst.instance_id).load == {"inflight": 2}
    assert cat.index > before


def test_plain_heartbeat_does_not_move_the_index(db, clock):
    cat = make(db, clock)
    inst, _, _ = cat.register(reg())
    before = cat.index
    cat.heartbeat(inst.instance_id, None, {"inflight": 1})
    assert cat.index == before
    cat.heartbeat(inst.instance_id, "warning", None)
    assert cat.index == before + 1
    assert cat.get(inst.instance_id).status == "warning"


def test_reregistration_replaces_never_duplicates(db, clock):
    cat = make(db, clock)
    first, created, _ = cat.register(reg(version="1"))
    second, created_again, _ = cat.register(reg(version="2"))
    assert created and not created_again
    assert first.instance_id == second.instance_id
    items, _ = cat.query(Query(name="echo"))
    assert [i.version for i in items] == ["2"]


def test_new_client_id_at_same_address_replaces_old_row(db, clock):
    cat = make(db, clock)
    cat.register(reg(instance_id="old-id"))
    cat.register(reg(instance_id="new-id"))
    items, _ = cat.query(Query())
    assert [i.instance_id for i in items] == ["new-id"]


def test_restart_gives_fresh_grace_and_keeps_critical_critical(db, clock):
    cat = make(db, clock)
    alive, _, _ = cat.register(reg(port=1))
    dead, _, _ = cat.register(reg(port=2))
    clock.advance(TTL - 1)
    cat.heartbeat(alive.instance_id, None, None)
    clock.advance(2)
    cat.sweep()
    assert cat.get(dead.instance_id).status == "critical"
    index_before = cat.index
    cat.store.close()

    clock.advance(1000)  # the registry was down a long time
    restarted = make(db, clock)
    assert restarted.index > index_before
    assert restarted.get(alive.instance_id).status == "passing"  # not expired at once
    assert restarted.get(dead.instance_id).status == "critical"  # not falsely passing
    clock.advance(TTL - 0.5)
    assert restarted.sweep() == ([], [])
    clock.advance(1)
    critical, _ = restarted.sweep()
    assert [i.instance_id for i in critical] == [alive.instance_id]


def test_flushed_heartbeat_timestamps_survive_restart(db, clock):
    cat = make(db, clock)
    inst, _, _ = cat.register(reg())
    clock.advance(1.5)
    beat = cat.heartbeat(inst.instance_id, None, None)
    assert cat.flush_heartbeats() == 1
    cat.store.close()
    assert make(db, clock).get(inst.instance_id).last_heartbeat == beat.last_heartbeat


def test_maintenance_is_visible_and_survives_ttl_logic(db, clock):
    cat = make(db, clock)
    inst, _, _ = cat.register(reg())
    assert cat.set_maintenance(inst.instance_id, True, "drain").status == "maintenance"
    clock.advance(TTL + 1)
    cat.sweep()
    got = cat.get(inst.instance_id)
    assert got.status == "maintenance" and got.health == "critical"
    cat.heartbeat(inst.instance_id, None, None)
    assert cat.set_maintenance(inst.instance_id, False, "").status == "passing"


def test_filters(db, clock):
    cat = make(db, clock)
    cat.register(reg("compass", 1, tags=["gpu"], metadata={"capabilities": ["affinity"], "device": "cuda"}))
    cat.register(reg("compass-lite", 2, metadata={"capabilities": ["affinity"], "device": "cpu"}))
    cat.register(reg("antiberty", 3, metadata={"capabilities": ["protein-embedding"]}))

    def names(q: Query) -> list[str]:
        return [i.service_name for i in cat.query(q)[0]]

    assert names(Query(capability="affinity")) == ["compass", "compass-lite"]
    assert names(Query(tags=["gpu"])) == ["compass"]
    assert names(Query(meta={"device": "cpu"})) == ["compass-lite"]
    assert names(Query(meta={"capabilities": "protein-embedding"})) == ["antiberty"]
    assert names(Query(statuses=["critical"])) == []


def test_wait_returns_on_change_and_on_stale_index(db, clock):
    cat = make(db, clock)
    q = Query(name="echo")
    _, index = cat.query(q)
    assert cat.wait(q, index + 50, timeout=5) == index  # index from the future: answer at once
    result: list[int] = []
    waiter = threading.Thread(target=lambda: result.append(cat.wait(q, index, timeout=30)))
    waiter.start()
    cat.register(reg("other", 5))  # another service: must not wake the echo watcher for good
    cat.register(reg("echo", 6))
    waiter.join(timeout=10)
    assert not waiter.is_alive()
    assert result[0] > index


def test_active_check_thresholds_do_not_flap(db, clock):
    cat = make(db, clock)
    spec = {"path": "/health/ready", "failures_before_critical": 3, "successes_before_passing": 2}
    inst, _, _ = cat.register(reg(check=spec))
    assert isinstance(cat.get(inst.instance_id).check, CheckSpec)
    assert [d[1] for d in cat.due_checks()] == ["http://127.0.0.1:9001/health/ready"]
    assert cat.due_checks() == []  # not due again until its interval passed
    for _ in range(2):
        cat.record_check(inst.instance_id, False)
    assert cat.get(inst.instance_id).status == "passing"
    cat.record_check(inst.instance_id, False)
    assert cat.get(inst.instance_id).status == "critical"
    cat.record_check(inst.instance_id, True)
    assert cat.get(inst.instance_id).status == "critical"
    cat.record_check(inst.instance_id, True)
    assert cat.get(inst.instance_id).status == "passing"


def test_active_check_critical_instance_is_not_removed_while_heartbeating(db, clock):
    cat = make(db, clock)
    inst, _, _ = cat.register(reg(check={"failures_before_critical": 1}))
    cat.record_check(inst.instance_id, False)
    for _ in range(20):
        clock.advance(TTL / 2 + DEREGISTER_AFTER / 10)
        cat.heartbeat(inst.instance_id, None, None)
        cat.sweep()
    assert cat.get(inst.instance_id).status == "critical"


def test_revival_by_heartbeat_reaches_disk_with_the_flush(db, clock):
    cat = make(db, clock)
    inst, _, _ = cat.register(reg())
    clock.advance(TTL + 1)
    cat.sweep()  # critical, written at once
    cat.heartbeat(inst.instance_id, None, None)  # passing again, written with the next flush
    assert cat.flush_heartbeats() == 1
    cat.store.close()
    assert make(db, clock).get(inst.instance_id).status == "passing"
