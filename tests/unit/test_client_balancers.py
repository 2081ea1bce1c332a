"""Balancers: pure choice over candidates with a seeded rng (no I/O, no clock but a fake one)."""

from __future__ import annotations

import random
import threading
from collections import Counter
from contextlib import ExitStack

import pytest

from services.client.balancers import BALANCERS, make_balancer
from services.client.load import LoadTracker
from services.common.clock import FakeClock
from services.common.instance import Instance


def inst(n: int, weight: int = 1) -> Instance:
    return Instance(f"w{n}", "echo", "127.0.0.1", 9000 + n, f"http://127.0.0.1:{9000 + n}", weight=weight)


FLEET = [inst(i) for i in range(4)]


def picks(name: str, instances: list[Instance], n: int, seed: int = 7, loads: LoadTracker | None = None) -> Counter:
    balancer = make_balancer(name, random.Random(seed))
    loads = loads or LoadTracker(FakeClock())
    return Counter(balancer.choose(instances, loads).instance_id for _ in range(n))


@pytest.mark.parametrize("name", sorted(BALANCERS))
def test_every_balancer_spreads_evenly_over_equal_idle_instances(name: str) -> None:
    counts = picks(name, FLEET, 4000)
    assert set(counts) == {i.instance_id for i in FLEET}
    assert all(800 <= c <= 1200 for c in counts.values()), counts


@pytest.mark.parametrize("name", ["round_robin", "random", "p2c"])
def test_every_balancer_honours_weights(name: str) -> None:
    fleet = [inst(0, weight=3), inst(1), inst(2)]
    counts = picks(name, fleet, 5000)
    share = counts["w0"] / 5000
    if name == "p2c":
        # p2c samples by weight, then compares load/weight: a heavy instance wins most pairs it is in.
        assert share > 0.5, counts
    else:
        assert 0.54 <= share <= 0.66, counts  # 3 / 5


@pytest.mark.parametrize("name", sorted(BALANCERS))
def test_single_instance_and_empty(name: str) -> None:
    balancer = make_balancer(name, random.Random(1))
    assert balancer.choose([FLEET[0]], LoadTracker(FakeClock())) is FLEET[0]
    with pytest.raises(ValueError):
        balancer.choose([], LoadTracker(FakeClock()))


def test_unknown_balancer_name_is_refused() -> None:
    with pytest.raises(ValueError, match="round_robin"):
        make_balancer("fastest")


def test_round_robin_cycles_and_smooths_weights() -> None:
    rr = make_balancer("round_robin")
    loads = LoadTracker(FakeClock())
    assert [rr.choose(FLEET, loads).instance_id for _ in range(8)] == ["w0", "w1", "w2", "w3"] * 2
    smooth = make_balancer("round_robin")
    heavy = [inst(0, weight=2), inst(1)]
    # nginx's smooth WRR: the weight-2 instance never gets a burst longer than its weight.
    assert [smooth.choose(heavy, loads).instance_id for _ in range(6)] == ["w0", "w1", "w0"] * 2


def test_round_robin_is_exact_across_threads() -> None:
    rr = make_balancer("round_robin")
    loads = LoadTracker(FakeClock())
    counts: Counter = Counter()
    lock = threading.Lock()

    def run() -> None:
        local = Counter(rr.choose(FLEET, loads).instance_id for _ in range(1000))
        with lock:
            counts.update(local)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counts == {f"w{i}": 2000 for i in range(4)}


def test_least_connections_really_spreads_concurrent_requests() -> None:
    """The system we replace sent everything to the first instance; in-flight counting must spread it."""
    lc = make_balancer("least_connections", random.Random(3))
    loads = LoadTracker(FakeClock())
    with ExitStack() as held:
        chosen = []
        for _ in range(12):
            pick = lc.choose(FLEET, loads)
            held.enter_context(loads.track(pick.instance_id))  # still in flight
            chosen.append(pick.instance_id)
        assert Counter(chosen) == {f"w{i}": 3 for i in range(4)}
        assert loads.inflight("w0") == 3
    assert all(loads.inflight(f"w{i}") == 0 for i in range(4)), "in-flight must be released"


def test_least_connections_weights_scale_the_concurrency_each_instance_gets() -> None:
    lc = make_balancer("least_connections", random.Random(2))
    loads = LoadTracker(FakeClock())
    fleet = [inst(0, weight=3), inst(1), inst(2)]
    with ExitStack() as held:
        for _ in range(15):
            held.enter_context(loads.track(lc.choose(fleet, loads).instance_id))
        assert [loads.inflight(f"w{i}") for i in range(3)] == [9, 3, 3]


def test_least_connections_avoids_the_busy_instance() -> None:
    lc = make_balancer("least_connections", random.Random(5))
    loads = LoadTracker(FakeClock())
    with loads.track("w0"), loads.track("w0"), loads.track("w1"):
        counts = Counter(lc.choose(FLEET, loads).instance_id for _ in range(200))
    assert set(counts) == {"w2", "w3"}


def test_least_connections_breaks_in_flight_ties_by_latency_but_counts_first() -> None:
    lc = make_balancer("least_connections", random.Random(5))
    loads = LoadTracker(FakeClock())
    loads.observe("w0", 0.500)
    for i in (1, 2, 3):
        loads.observe(f"w{i}", 0.010 * i)
    assert Counter(lc.choose(FLEET, loads).instance_id for _ in range(50)) == {"w1": 50}
    with loads.track("w1"), loads.track("w2"), loads.track("w3"):
        assert lc.choose(FLEET, loads).instance_id == "w0", "fewer in flight wins over a lower latency"


def test_inflight_is_released_when_the_request_raises() -> None:
    loads = LoadTracker(FakeClock())
    with pytest.raises(RuntimeError), loads.track("w0"):
        assert loads.inflight("w0") == 1
        raise RuntimeError("boom")
    assert loads.inflight("w0") == 0


def test_p2c_prefers_the_fast_instance() -> None:
    clock = FakeClock()
    loads = LoadTracker(clock)
    for _ in range(5):
        clock.advance(0.1)
        loads.observe("w0", 0.500)  # ten times slower than the others
        for i in (1, 2, 3):
            loads.observe(f"w{i}", 0.050)
    counts = picks("p2c", FLEET, 3000, loads=loads)
    assert counts["w0"] == 0, counts  # it loses every pair it is sampled into
    assert all(900 <= counts[f"w{i}"] <= 1100 for i in (1, 2, 3)), counts


def test_p2c_prefers_the_idle_instance() -> None:
    loads = LoadTracker(FakeClock())
    for i in range(4):
        loads.observe(f"w{i}", 0.010)
    with loads.track("w0"), loads.track("w0"), loads.track("w0"):
        counts = picks("p2c", FLEET, 3000, loads=loads)
    assert counts["w0"] == 0, counts


def test_p2c_samples_two_distinct_instances() -> None:
    loads = LoadTracker(FakeClock())
    for i in range(2):
        loads.observe(f"w{i}", 0.010)
    with loads.track("w1"):
        counts = picks("p2c", FLEET[:2], 500, loads=loads)
    assert counts == {"w0": 500}  # with two instances both are always compared


def test_peak_ewma_jumps_up_at_once_and_decays_slowly() -> None:
    clock = FakeClock()
    loads = LoadTracker(clock, decay_s=1.0, default_rtt_s=0.02)
    assert loads.load("new") == pytest.approx(0.02)
    loads.observe("w0", 0.010)
    loads.observe("w0", 0.200)
    assert loads.latency_s("w0") == pytest.approx(0.200)
    clock.advance(1.0)
    loads.observe("w0", 0.010)
    assert 0.010 < loads.latency_s("w0") < 0.200
    assert loads.latency_s("w0") == pytest.approx(0.200 * 0.3679 + 0.010 * 0.6321, rel=1e-3)


def test_seeded_balancers_are_reproducible() -> None:
    assert picks("p2c", FLEET, 200, seed=11) == picks("p2c", FLEET, 200, seed=11)
    assert picks("random", FLEET, 200, seed=11) == picks("random", FLEET, 200, seed=11)
