"""Node beats on etcd between two replicas: one key per beat, applied by every replica's watch.

A beat that changes nothing a record stores (time, load) writes only ``<prefix>beats/<node>``;
the other replica applies it to the node's instances (liveness, ``last_heartbeat``, load). A
status change, a revival and a removal still write the records. Real etcd, FakeClock; no
wall-time assertions: every cross-replica look polls with a deadline.
"""

from __future__ import annotations

import dataclasses
import threading

from etcd3gw.exceptions import Etcd3Exception

from services.common.clock import FakeClock, iso_utc
from services.registry.etcd_batch import GroupCommit
from services.registry.etcd_catalog import EtcdCatalog
from services.registry.nodes import NodeItem
from services.registry.ownership import TRUSTED
from services.registry.store import StoreUnavailable
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


# ----- group commit (services.registry.etcd_batch): beats that queue up share one transaction -----


class GatedTxn:
    """A stand-in for ``store.txn`` whose first call waits for ``release``; records every call."""

    def __init__(self, answer=lambda compare, success: (True, 7)) -> None:
        self.calls: list[tuple[list, list]] = []
        self.release = threading.Event()
        self.answer = answer

    def __call__(self, compare, success):
        self.calls.append((compare, success))
        if len(self.calls) == 1:
            self.release.wait(10)
        return self.answer(compare, success)


def put(key: str) -> dict:
    return {"request_put": {"key": key, "value": "", "lease": 0}}


def queued_behind_one(group: GroupCommit, txn: GatedTxn, parts: list[tuple[list, list]]) -> list:
    """Submit ``parts[0]``, let it reach etcd, queue the rest behind it, release; every caller's outcome."""
    outcomes: list = [None] * len(parts)

    def one(k: int) -> None:
        try:
            outcomes[k] = group.submit(*parts[k])
        except Exception as exc:  # the outcome under test
            outcomes[k] = exc

    threads = [threading.Thread(target=one, args=(0,))]
    threads[0].start()
    wait_until(lambda: len(txn.calls) == 1, timeout=5, what="the first transaction in flight")
    for k in range(1, len(parts)):
        threads.append(threading.Thread(target=one, args=(k,)))
        threads[-1].start()
    wait_until(lambda: len(group._queue) == len(parts) - 1, timeout=5, what="the others to queue up")
    txn.release.set()
    for thread in threads:
        thread.join(10)
    return outcomes


def test_transactions_that_queue_up_behind_one_in_flight_go_together():
    txn = GatedTxn()
    group = GroupCommit(txn)
    parts = [([{"c": k}], [put(f"k{k}")]) for k in range(4)]
    assert queued_behind_one(group, txn, parts) == [(True, 7)] * 4
    assert len(txn.calls) == 2  # the first alone, then the three that waited, as one
    assert txn.calls[1] == ([{"c": 1}, {"c": 2}, {"c": 3}], [put("k1"), put("k2"), put("k3")])
    assert (group.transactions, group.combined) == (2, 1)


def test_a_combined_transaction_that_did_not_land_sends_each_caller_back_alone():
    """A failed compare (perhaps one caller's) or a refusal: nothing landed, so no caller hears success."""
    for answer in (lambda c, s: (False, 9), lambda c, s: (_ for _ in ()).throw(Etcd3Exception("lease not found"))):
        txn = GatedTxn(lambda c, s, answer=answer: (True, 7) if len(c) == 1 else answer(c, s))
        group = GroupCommit(txn)
        outcomes = queued_behind_one(group, txn, [([{"c": k}], [put(f"k{k}")]) for k in range(3)])
        assert outcomes == [(True, 7), None, None]  # None: send your own transaction alone


def test_etcd_unreachable_fails_every_caller_of_the_combined_transaction():
    down = StoreUnavailable("no etcd member answered")

    def answer(compare, success):
        if len(compare) > 1:
            raise down
        return (True, 7)

    txn = GatedTxn(answer)
    outcomes = queued_behind_one(GroupCommit(txn), txn, [([{"c": k}], [put(f"k{k}")]) for k in range(3)])
    assert outcomes == [(True, 7), down, down]


def test_a_batch_stays_within_etcds_operation_limit_and_writes_no_key_twice():
    txn = GatedTxn()
    group = GroupCommit(txn, max_ops=4)
    parts = [
        ([{"c": 0}], [put("a")]),
        ([{"c": 1}, {"c": 2}], [put("b")]),
        ([{"c": 3}, {"c": 4}], [put("c")]),  # 2 + 2 compares fit beside b's
        ([{"c": 5}], [put("d")]),  # a fifth compare would not: the next batch
        ([{"c": 6}], [put("d")]),  # d again: not in the same transaction as the first d
    ]
    assert queued_behind_one(group, txn, parts) == [(True, 7)] * 5
    assert [len(compare) for compare, _ in txn.calls] == [1, 4, 1, 1]


def test_node_beats_queued_on_one_replica_land_in_one_transaction_each_with_its_answer(replicas):  # noqa: F811
    """Through real etcd: three nodes' beats wait behind a fourth's transaction and go together,
    each renewing its own node's instances and naming its own unknown ids."""
    clock = FakeClock()
    a, b = replicas(clock=clock), replicas(clock=clock)
    nodes = [f"host-g{k}" for k in range(4)]
    ids = {}
    for node in nodes:
        caller = dataclasses.replace(TRUSTED, node=node)
        a.claim_node(node, SECRET, caller)
        ids[node] = a.register(reg(port=9100 + len(ids)), caller)[0].instance_id
    sent = GatedTxn(lambda compare, success: a.store.txn(compare, success))
    a._beat_txns.txn = sent
    before = a.store.txn([], [])[1]
    clock.advance(5.0)
    results: dict[str, object] = {}

    def beat(node: str) -> None:
        results[node] = a.node_heartbeat(
            node, [NodeItem(ids[node], "passing", {"q": 1}), NodeItem("nope-" + node)], False
        )

    threads = [threading.Thread(target=beat, args=(nodes[0],))]
    threads[0].start()
    wait_until(lambda: len(sent.calls) == 1, timeout=5, what="the first beat's transaction in flight")
    threads += [threading.Thread(target=beat, args=(node,)) for node in nodes[1:]]
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: len(a._beat_txns._queue) == 3, timeout=5, what="three beats queued behind it")
    sent.release.set()
    for thread in threads:
        thread.join(10)
    assert len(sent.calls) == 2 and a._beat_txns.combined == 1
    for node in nodes:
        assert results[node].renewed == 1 and results[node].unknown == ["nope-" + node]
    # Each node's beat key landed (two revisions: the lone one, then the combined one), and the
    # other replica applies them all.
    revs = {a.store._get_key(a.store.beat_key(node)).mod_revision for node in nodes}
    assert len(revs) == 2 and min(revs) > before
    wait_until(lambda: all(b.get(ids[n]) and b.get(ids[n]).load == {"q": 1} for n in nodes), timeout=5, what="b")
