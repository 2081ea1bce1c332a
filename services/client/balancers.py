"""Balancers: pick one instance from candidates. No I/O, no sleeping, no retries.

One interface, ``choose(instances, loads) -> Instance`` (tower's ``p2c``, Ray Serve's
``choose_replicas``): the Router decides *which* instances are candidates (health, ejection,
already tried); a balancer only decides *among* them. Every balancer honours
``Instance.weight``, is thread-safe, and takes its randomness from an injected
``random.Random`` so tests are reproducible.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from services.client.load import LoadView
from services.common.instance import Instance


class Balancer(Protocol):
    """Picks one of ``instances`` (never empty) given the current ``loads``."""

    name: str

    def choose(self, instances: Sequence[Instance], loads: LoadView) -> Instance: ...


def _weight(inst: Instance) -> int:
    return max(1, int(inst.weight or 1))


def _check(instances: Sequence[Instance]) -> None:
    if not instances:
        raise ValueError("a balancer needs at least one instance to choose from")


class RoundRobin:
    """Smooth weighted round robin (nginx): an instance of weight 3 gets 3 turns in 4 with weight-1 peers,
    spread out rather than in a burst. Works on whatever subset the Router passes."""

    name = "round_robin"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._current: dict[str, int] = {}
        self._lock = threading.Lock()

    def choose(self, instances: Sequence[Instance], loads: LoadView) -> Instance:
        _check(instances)
        if len(instances) == 1:
            return instances[0]
        with self._lock:
            total = 0
            best: Instance | None = None
            for inst in instances:
                w = _weight(inst)
                total += w
                cur = self._current.get(inst.instance_id, 0) + w
                self._current[inst.instance_id] = cur
                if best is None or cur > self._current[best.instance_id]:
                    best = inst
            assert best is not None
            self._current[best.instance_id] -= total
            if len(self._current) > 4 * len(instances) + 64:  # forget instances long gone
                keep = {i.instance_id for i in instances}
                self._current = {k: v for k, v in self._current.items() if k in keep}
            return best


class RandomBalancer:
    """Weighted random choice."""

    name = "random"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._lock = threading.Lock()

    def choose(self, instances: Sequence[Instance], loads: LoadView) -> Instance:
        _check(instances)
        with self._lock:
            return self._rng.choices(list(instances), weights=[_weight(i) for i in instances], k=1)[0]


class LeastConnections:
    """Fewest requests in flight per unit of weight; among those, the lowest latency estimate.

    The latency tie-break matters when the fleet is mostly idle: every instance then has 0 in
    flight, and a plain least-connections (or the system we replace, which always took the
    first of equals) sends a slow instance its full share. Exact ties (no samples yet) are
    broken at random, never by position.
    """

    name = "least_connections"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._lock = threading.Lock()

    def choose(self, instances: Sequence[Instance], loads: LoadView) -> Instance:
        _check(instances)
        scored = [((loads.inflight(i.instance_id) + 1) / _weight(i), i) for i in instances]
        low = min(score for score, _ in scored)
        least = [inst for score, inst in scored if score == low]
        if len(least) == 1:
            return least[0]
        timed = [(loads.latency_s(i.instance_id), i) for i in least]
        fastest = min(t for t, _ in timed)
        ties = [inst for t, inst in timed if t == fastest]
        if len(ties) == 1:
            return ties[0]
        with self._lock:
            return self._rng.choice(ties)


class PowerOfTwoChoices:
    """Sample two distinct instances (weighted), keep the one with the lower load / weight.

    Load is the tracker's ``latency EWMA × (in-flight + 1)``. Two random samples avoid the herd
    effect of always taking the global minimum from a stale view, and cost O(1).
    """

    name = "p2c"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._lock = threading.Lock()

    def _pick_two(self, instances: Sequence[Instance]) -> tuple[Instance, Instance]:
        weights = [_weight(i) for i in instances]
        with self._lock:
            if len(set(weights)) == 1:
                a, b = self._rng.sample(range(len(instances)), 2)
                return instances[a], instances[b]
            first = self._rng.choices(range(len(instances)), weights=weights, k=1)[0]
            rest = [i for i in range(len(instances)) if i != first]
            second = self._rng.choices(rest, weights=[weights[i] for i in rest], k=1)[0]
            return instances[first], instances[second]

    def choose(self, instances: Sequence[Instance], loads: LoadView) -> Instance:
        _check(instances)
        if len(instances) == 1:
            return instances[0]
        a, b = self._pick_two(instances)
        cost_a = loads.load(a.instance_id) / _weight(a)
        cost_b = loads.load(b.instance_id) / _weight(b)
        return b if cost_b < cost_a else a


BALANCERS: dict[str, Callable[[random.Random | None], Balancer]] = {
    "round_robin": RoundRobin,
    "random": RandomBalancer,
    "least_connections": LeastConnections,
    "p2c": PowerOfTwoChoices,
}
DEFAULT_BALANCER = "p2c"


def make_balancer(name: str, rng: random.Random | None = None) -> Balancer:
    """The balancer called ``name`` (one of :data:`BALANCERS`)."""
    try:
        factory = BALANCERS[name]
    except KeyError:
        raise ValueError(f"unknown balancer {name!r}; choose one of {', '.join(BALANCERS)}") from None
    return factory(rng)
