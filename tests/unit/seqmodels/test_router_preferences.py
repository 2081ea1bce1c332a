"""Router capability preferences: ``protein-embedding`` goes to hf when one is usable, else antiberty."""

from __future__ import annotations

import random

import pytest
import requests
import responses

from services.client import EjectionPolicy, NoInstanceAvailable, Router, StaticDiscovery
from services.common.clock import FakeClock
from services.common.instance import Instance


class First:
    name = "first"

    def choose(self, instances, loads):
        return sorted(instances, key=lambda i: i.instance_id)[0]


def worker(service: str, n: int, capabilities: list[str], status: str = "passing") -> Instance:
    return Instance(
        f"{service}-{n}",
        service,
        f"{service}-{n}.test",
        80,
        f"http://{service}-{n}.test",
        status=status,
        maintenance=status == "maintenance",
        metadata={"models": [f"{service}-model"], "capabilities": capabilities},
    )


EMB = ["protein-embedding"]


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        for host in ("hf-0", "hf-1", "antiberty-0", "esm-0", "dna-0"):
            rsps.add("POST", f"http://{host}.test/predict", json={"success": True, "data": {"who": host}})
        yield rsps


def router(instances, **kwargs) -> Router:
    clock = FakeClock()
    return Router(
        StaticDiscovery(instances),
        balancer=First(),
        ejection=EjectionPolicy(consecutive_failures=100, eject_on_refused=False),
        preferences={"protein-embedding": ["hf", "antiberty"]},
        clock=clock,
        rng=random.Random(0),
        sleep=clock.advance,
        **kwargs,
    )


def served(r: Router) -> tuple[str, bool]:
    result = r.predict("protein-embedding", {"sequence": "MKV"})
    return result.data["who"], result.fallback_used


def test_the_preferred_service_wins_while_it_has_a_usable_worker(mock) -> None:
    fleet = [worker("antiberty", 0, EMB), worker("esm", 0, EMB), worker("hf", 1, EMB)]
    assert served(router(fleet)) == ("hf-1", False)
    assert served(router(fleet[:2])) == ("antiberty-0", False), "no hf: the next preference"
    assert served(router([fleet[1]])) == ("esm-0", False), "none preferred: any worker with the capability"


def test_a_preferred_worker_without_the_capability_is_never_picked(mock) -> None:
    fleet = [worker("hf", 0, ["dna-embedding"]), worker("antiberty", 0, EMB)]
    assert served(router(fleet)) == ("antiberty-0", False)


def test_a_failing_preferred_worker_falls_through_to_the_next(mock) -> None:
    mock.replace("POST", "http://hf-0.test/predict", body=requests.ConnectionError("refused"))
    fleet = [worker("hf", 0, EMB), worker("antiberty", 0, EMB)]
    r = router(fleet)
    result = r.predict("protein-embedding", {"sequence": "MKV"})
    assert (result.data["who"], result.attempts) == ("antiberty-0", 2)


def test_an_unhealthy_preferred_service_ranks_behind_a_healthy_one(mock) -> None:
    fleet = [worker("hf", 0, EMB, status="critical"), worker("antiberty", 0, EMB)]
    assert served(router(fleet)) == ("antiberty-0", False)
    drained = [worker("hf", 0, EMB, status="maintenance")]
    with pytest.raises(NoInstanceAvailable):
        router(drained).predict("protein-embedding", {})


def test_without_preferences_every_capable_worker_is_a_candidate(mock) -> None:
    fleet = [worker("antiberty", 0, EMB), worker("hf", 0, EMB)]
    r = router(fleet)
    r.preferences = {}
    assert served(r) == ("antiberty-0", False), "First() picks by id: antiberty sorts before hf"
