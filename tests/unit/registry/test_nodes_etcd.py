"""Node beats on etcd between two replicas: one key per beat, applied by every replica's watch.

A beat that changes nothing a record stores (time, load) writes only ``<prefix>beats/<node>``;
the other replica applies it to the node's instances (liveness, ``last_heartbeat``, load). A
status change, a revival and a removal still write the records. Real etcd, FakeClock; no
wall-time assertions: every cross-replica look polls with a deadline.
"""

from __future__ import annotations

import dataclasses

from services.common.clock import FakeClock, iso_utc
from services.registry.etcd_catalog import EtcdCatalog
from services.registry.nodes import NodeItem
from services.registry.ownership import TRUSTED
from tests.support import wait_until
from tests.unit.test_registry_etcd import reg, replicas  # noqa: F401 - replicas is a fixture

NODE = "host-e"
SECRET = "node-secret-of-host-e-0123456789"
AS_NODE = dataclasses.replace(TRUSTED, node=NODE)


def on_node(cat: EtcdCatalog, *ports: int) -> list[str]:
    cat.claim_node(NODE, SECRET, AS_NODE)
    return [cat.register(reg(port=p), AS_NODE)[0].instance_id for p in ports]


def revisions(cat: EtcdCatalog, ids: list[str]) -> list[int]:
    return [cat.store.get(iid).mod_revision for iid in ids]


def test_a_quiet_beat_writes_one_key_and_the_other_replica_applies_it(replicas):  # noqa: F811
    clock = FakeClock()
    a, b = replicas(clock=clock), replicas(clock=clock)
    ids = on_node(a, 9001, 9002)
    wait_until(lambda: all(b.get(i) for i in ids), timeout=5, what="b to mirror the registrations")
    b.claim_node(NODE, SECRET, AS_NODE)
    before = revisions(a, ids)
    lease = a._nodes_seen[NODE].lease
    kept_by_a = a._refreshed[lease]
    clock.advance(5.0)
    result = b.node_heartbeat(NODE, [NodeItem(ids[0], "passing", {"inflight": 2})], full=False)
    assert result is not None and result.renewed == 2 and result.unknown == []
    assert revisions(a, ids) == before  # no record written: time and load went in the node's beat key
    stamp = iso_utc(clock.now())
    assert b.get(ids[0]).last_heartbeat == stamp and b.get(ids[0]).load == {"inflight": 2}  # read-your-writes
    wait_until(lambda: a.get(ids[0]).load == {"inflight": 2}, timeout=5, what="the load on a")
    assert [a.get(i).last_heartbeat for i in ids] == [stamp, stamp]
    assert a._refreshed[lease] > kept_by_a  # b kept the node's lease alive, and said so: a need not
    # a heard the beat through its watch: 5 s past the registration plus 5 more is past the 6 s TTL,
    # but only 5 s past the beat, so nothing turns critical.
    clock.advance(5.0)
    assert a.sweep() == ([], [])
    # A restarted replica lists the beat key after the records it renewed.
    c = replicas(clock=clock)
    assert c.get(ids[0]).last_heartbeat == stamp and c.get(ids[0]).load == {"inflight": 2}


def test_status_changes_revivals_and_removals_still_write_records(replicas):  # noqa: F811
    clock = FakeClock()
    a, b = replicas(clock=clock), replicas(clock=clock)
    ids = on_node(a, 9001, 9002)
    b.claim_node(NODE, SECRET, AS_NODE)
    wait_until(lambda: all(b.get(i) for i in ids), timeout=5, what="b to mirror the registrations")
    assert b.node_heartbeat(NODE, [NodeItem(ids[0], "critical")], full=False).renewed == 2
    assert a.store.get(ids[0]).value["reported"] == "critical"  # an agent's critical is written critical
    wait_until(lambda: a.get(ids[0]).status == "critical", timeout=5, what="critical on a")
    # Silent past the TTL: a marks both TTL-critical; b's next full beat revives both.
    clock.advance(6.5)
    critical, _ = a.sweep()
    assert sorted(i.instance_id for i in critical) == sorted(ids)
    assert b.node_heartbeat(NODE, [NodeItem(ids[0], "passing"), NodeItem(ids[1])], full=True).removed == []
    wait_until(lambda: [a.get(i).status for i in ids] == ["passing", "passing"], timeout=5, what="revival on a")
    # A full beat that omits one deletes its record (and keeps the node's lease for the other).
    assert b.node_heartbeat(NODE, [NodeItem(ids[0])], full=True).removed == [ids[1]]
    assert a.store.get(ids[1]) is None and a.store.get(ids[0]) is not None
    wait_until(lambda: a.get(ids[1]) is None, timeout=5, what="removal on a")


def test_a_sweep_loses_to_a_node_beat_it_has_not_seen_yet(replicas):  # noqa: F811
    clock = FakeClock()
    a = replicas(clock=clock)
    (iid,) = on_node(a, 9001)
    assert a.node_heartbeat(NODE, [NodeItem(iid)], full=True).renewed == 1
    wait_until(lambda: NODE in a._node_beats, timeout=5, what="the beat in a's mirror")
    # As if another replica's beat had landed in etcd but a's watch had not delivered it yet:
    # a believes the node's last beat is older than the one etcd holds, and its clock says silent.
    a._node_beats[NODE] = dataclasses.replace(a._node_beats[NODE], revision=a._node_beats[NODE].revision - 1)
    clock.advance(6.5)
    assert a.sweep() == ([], [])  # the compare on the node's beat key failed: the beat wins
    assert a.store.get(iid).value["ttl_critical"] is False


def test_a_registration_reads_nothing_before_its_write(replicas):  # noqa: F811
    a = replicas()

    def no_read(_iid: str) -> None:
        raise AssertionError("a new id's registration read etcd first")

    a.store.get = no_read  # type: ignore[method-assign]
    inst, created, _ = a.register(reg(port=9005))
    assert created and a.get(inst.instance_id) is not None


def test_a_beat_on_a_lease_that_ran_out_asks_the_agent_to_claim_again(replicas):  # noqa: F811
    a = replicas()
    (iid,) = on_node(a, 9001)
    a.store.revoke(a._nodes_seen[NODE].lease)  # as if it had run out just after a kept it alive
    assert a.node_heartbeat(NODE, [NodeItem(iid)], full=False) is None  # the route answers 404
    assert NODE not in a._nodes_seen
