"""Candidate selection (health, draining, panic), outlier ejection and the retry budget, on fake time."""

from __future__ import annotations

import random

import pytest

from services.client.policy import EjectionPolicy, RetryBudget, RetryPolicy
from services.client.selection import OutlierDetector, below_capacity, select
from services.common.backoff import Backoff
from services.common.clock import FakeClock
from services.common.instance import Instance


def inst(n: int, status: str = "passing") -> Instance:
    return Instance(
        f"w{n}",
        "echo",
        "127.0.0.1",
        9000 + n,
        f"http://127.0.0.1:{9000 + n}",
        status=status,
        maintenance=status == "maintenance",
    )


def ids(instances) -> set[str]:
    return {i.instance_id for i in instances}


def test_only_healthy_instances_while_half_or_more_are_healthy() -> None:
    fleet = [inst(0), inst(1, "warning"), inst(2, "critical"), inst(3, "maintenance")]
    sel = select(fleet, ejected={"w9"})
    assert ids(sel.candidates) == {"w0", "w1"}
    assert (sel.healthy, sel.usable, sel.panic) == (2, 3, False)


def test_ejected_instances_are_not_candidates() -> None:
    fleet = [inst(0), inst(1), inst(2), inst(3)]
    assert ids(select(fleet, ejected={"w1"}).candidates) == {"w0", "w2", "w3"}


def test_panic_below_half_healthy_uses_critical_and_ejected_but_never_maintenance() -> None:
    fleet = [inst(0), inst(1, "critical"), inst(2, "critical"), inst(3, "maintenance"), inst(4)]
    sel = select(fleet, ejected={"w4"})  # 1 healthy of 4 usable
    assert sel.panic
    assert ids(sel.candidates) == {"w0", "w1", "w2", "w4"}


def test_all_draining_means_no_candidates_even_in_panic() -> None:
    sel = select([inst(0, "maintenance"), inst(1, "maintenance")], ejected=())
    assert sel.empty and sel.usable == 0 and not sel.panic


def test_tried_instances_are_never_candidates_again() -> None:
    fleet = [inst(0), inst(1), inst(2)]
    assert ids(select(fleet, ejected=(), tried={"w0", "w2"}).candidates) == {"w1"}
    assert select(fleet, ejected=(), tried={"w0", "w1", "w2"}).empty


def test_below_capacity_skips_instances_this_client_fills_unless_all_are_full() -> None:
    fleet = [inst(0), inst(1), inst(2)]
    fleet[0].load = {"max_inflight": 2}
    fleet[1].load = {"max_inflight": 4, "inflight": 9}  # the registry's count is old news: ignored
    inflight = {"w0": 2, "w1": 3, "w2": 50}.__getitem__
    assert ids(below_capacity(fleet, inflight)) == {"w1", "w2"}, "w2 advertises no limit"
    assert ids(below_capacity(fleet[:1], inflight)) == {"w0"}, "all full: unchanged"


def test_consecutive_failures_eject_with_growing_backoff_and_expire() -> None:
    clock = FakeClock()
    det = OutlierDetector(EjectionPolicy(consecutive_failures=3, base_s=2.0, multiplier=2.0, max_s=5.0), clock)
    pool = ["w0", "w1", "w2", "w3"]
    assert not det.record_failure("w0", pool)
    assert not det.record_failure("w0", pool)
    assert det.record_failure("w0", pool)
    assert det.is_ejected("w0") and det.ejection_ends_in("w0") == pytest.approx(2.0)
    clock.advance(2.01)
    assert not det.is_ejected("w0"), "the first ejection lasts base_s"
    for _ in range(3):
        det.record_failure("w0", pool)
    assert det.ejection_ends_in("w0") == pytest.approx(4.0), "the second lasts twice as long"
    clock.advance(4.01)
    for _ in range(3):
        det.record_failure("w0", pool)
    assert det.ejection_ends_in("w0") == pytest.approx(5.0), "capped at max_s"


def test_a_success_resets_the_consecutive_count_and_enough_of_them_forgive() -> None:
    clock = FakeClock()
    det = OutlierDetector(EjectionPolicy(consecutive_failures=2, base_s=1.0, forgive_after_successes=2), clock)
    pool = ["w0", "w1", "w2", "w3"]
    det.record_failure("w0", pool)
    det.record_success("w0")
    assert not det.record_failure("w0", pool), "not consecutive"
    assert det.record_failure("w0", pool)
    clock.advance(1.01)
    det.record_success("w0")
    det.record_success("w0")  # forgiven: the next ejection is short again
    det.record_failure("w0", pool)
    det.record_failure("w0", pool)
    assert det.ejection_ends_in("w0") == pytest.approx(1.0)


def test_refused_connection_ejects_at_once() -> None:
    det = OutlierDetector(EjectionPolicy(consecutive_failures=5), FakeClock())
    assert det.record_failure("w0", ["w0", "w1", "w2"], refused=True)


def test_at_most_half_of_a_service_is_ejected() -> None:
    det = OutlierDetector(EjectionPolicy(consecutive_failures=1), FakeClock())
    pool = ["w0", "w1", "w2", "w3", "w4"]
    assert [det.record_failure(i, pool) for i in pool] == [True, True, False, False, False]
    assert det.ejected(pool) == {"w0", "w1"}
    lone = OutlierDetector(EjectionPolicy(consecutive_failures=1), FakeClock())
    assert lone.record_failure("w0", ["w0"]), "one instance may always be ejected"
    pair = OutlierDetector(EjectionPolicy(consecutive_failures=1), FakeClock())
    assert [pair.record_failure(i, ["w0", "w1"]) for i in ("w0", "w1")] == [True, False]


def test_retry_budget_allows_the_minimum_then_twenty_percent_and_refills_with_time() -> None:
    clock = FakeClock()
    budget = RetryBudget(RetryPolicy(budget_ratio=0.2, budget_min=3, budget_window_s=10), clock)
    assert [budget.try_spend() for _ in range(4)] == [True, True, True, False], "minimum 3 with no traffic"
    for _ in range(50):
        budget.record_request()
    assert budget.allowance() == 10
    assert sum(budget.try_spend() for _ in range(20)) == 7  # 10 allowed, 3 already spent
    clock.advance(11)  # the window slides past all of it
    assert budget.allowance() == 3
    assert budget.try_spend()


def test_backoff_is_jittered_and_capped() -> None:
    policy = RetryPolicy(backoff_base_s=0.01, backoff_multiplier=2.0, backoff_cap_s=0.03)
    rng = random.Random(1)
    draws = [policy.backoff_s(5, rng) for _ in range(200)]
    assert max(draws) <= 0.03 and min(draws) >= 0 and len(set(draws)) > 100


def test_registry_reconnects_back_off_exponentially_with_full_jitter() -> None:
    rng = random.Random(4)
    backoff = Backoff(base=0.2, cap=5.0)  # as RegistryClient builds it
    first = [backoff.delay(1, rng) for _ in range(500)]
    later = [backoff.delay(10, rng) for _ in range(500)]
    assert min(first) >= 0 and max(first) <= 0.4 and len(set(first)) == 500
    assert max(later) <= 5.0 and max(later) > 4.5, "capped, and the whole range is used"


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"budget_ratio": 1.5}, {"backoff_multiplier": 0.5}, {"budget_window_s": 0}]
)
def test_retry_policy_rejects_nonsense(kwargs) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)
