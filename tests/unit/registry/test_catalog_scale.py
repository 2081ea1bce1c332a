"""What keeps the SQLite registry's beat latency flat at 10,000 instances (issue 20's p99).

The heartbeat flush writes timestamps in chunks (under gevent one big SQLite batch held every
request), never moving a stored stamp backwards; a query for one service reads only that
service's instances (a per-service index, kept through registrations, moves and removals).
"""

from __future__ import annotations

import sqlite3

from services.common.clock import FakeClock
from services.common.instance import parse_registration
from services.registry import catalog as catalog_module
from services.registry.catalog import Catalog, Query
from services.registry.store import SQLiteStore


def reg(name: str, port: int, iid: str | None = None):
    body = {"service_name": name, "host": "10.0.0.1", "port": port}
    return parse_registration({**body, **({"instance_id": iid} if iid else {})})


def stored_stamps(path: str) -> dict[str, str]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT instance_id, last_heartbeat FROM instances").fetchall())


def test_a_flush_larger_than_a_chunk_writes_every_stamp(tmp_path, monkeypatch):
    monkeypatch.setattr(catalog_module, "FLUSH_CHUNK", 3)
    clock = FakeClock()
    cat = Catalog(SQLiteStore(tmp_path / "r.db"), clock, 15.0, 60.0)
    ids = [cat.register(reg("echo", 9000 + k))[0].instance_id for k in range(8)]
    clock.advance(5.0)
    for iid in ids:
        cat.heartbeat(iid, None, None)
    assert cat.flush_heartbeats() == 8
    beat = cat.get(ids[0]).last_heartbeat
    assert set(stored_stamps(str(tmp_path / "r.db")).values()) == {beat}
    cat.close()


def test_touch_never_moves_a_stamp_backwards(tmp_path):
    store = SQLiteStore(tmp_path / "r.db")
    cat = Catalog(store, FakeClock(), 15.0, 60.0)
    iid = cat.register(reg("echo", 9001))[0].instance_id
    newer = cat.get(iid).last_heartbeat
    store.touch({iid: "2000-01-01T00:00:00.000Z"})  # a chunk snapshotted before a later write
    assert stored_stamps(str(tmp_path / "r.db"))[iid] == newer
    store.touch({iid: "2999-01-01T00:00:00.000Z"})
    assert stored_stamps(str(tmp_path / "r.db"))[iid] == "2999-01-01T00:00:00.000Z"
    cat.close()


def test_a_service_query_sees_moves_and_removals(tmp_path):
    cat = Catalog(SQLiteStore(tmp_path / "r.db"), FakeClock(), 15.0, 60.0)
    a = cat.register(reg("alpha", 9001, "inst-a"))[0].instance_id
    cat.register(reg("beta", 9002, "inst-b"))
    assert [i.instance_id for i in cat.query(Query(name="alpha"))[0]] == [a]
    cat.register(reg("beta", 9003, a))  # the same id re-registered under another service
    assert cat.query(Query(name="alpha"))[0] == []
    assert sorted(d["instance_id"] for d in cat.query_dicts(Query(name="beta"))[0]) == ["inst-a", "inst-b"]
    cat.deregister("inst-b")
    assert [i.instance_id for i in cat.query(Query(name="beta"))[0]] == [a]
    assert len(cat.query(Query())[0]) == 1
    cat.close()
