"""Small frozen policy objects (retry, ejection) and the retry budget they feed.

Policies are constructor settings, like ``requests``' ``HTTPAdapter(max_retries=Retry(...))``:
tests shrink them, nothing reads them from globals. The budget is the one piece of shared
state: retries may add at most ``budget_ratio`` of the recent request volume (Finagle's
``RetryBudget``, Envoy's retry budget), so a sick fleet is not hit with a retry storm.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass

from services.common.backoff import Backoff
from services.common.clock import Clock, SystemClock


@dataclass(frozen=True)
class RetryPolicy:
    """How many instances one call may try and how long to wait between tries.

    ``max_attempts`` counts tries per service of the fallback chain. Backoff is
    ``min(cap, base × multiplier^(n-1))`` with full jitter; it is short because every retry
    goes to another instance. Retries across all calls are limited to
    ``max(budget_min, budget_ratio × requests)`` within ``budget_window_s``.
    """

    max_attempts: int = 3
    backoff_base_s: float = 0.005
    backoff_multiplier: float = 2.0
    backoff_cap_s: float = 0.25
    budget_ratio: float = 0.2
    budget_min: int = 3
    budget_window_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_base_s < 0 or self.backoff_cap_s < 0 or self.backoff_multiplier < 1:
            raise ValueError("backoff must be non-negative with a multiplier of at least 1")
        if not 0 <= self.budget_ratio <= 1 or self.budget_min < 0 or self.budget_window_s <= 0:
            raise ValueError("budget_ratio must be in [0, 1], budget_min >= 0, budget_window_s > 0")

    def backoff_s(self, retry: int, rng: random.Random) -> float:
        """Jittered pause before retry number ``retry`` (1 = first retry)."""
        return Backoff(self.backoff_base_s, self.backoff_multiplier, self.backoff_cap_s).delay(retry - 1, rng)


@dataclass(frozen=True)
class EjectionPolicy:
    """Outlier ejection: consecutive failures take an instance out for a growing while.

    The n-th ejection of an instance lasts ``min(max_s, base_s × multiplier^(n-1))``; n drops
    back to 0 after ``forgive_after_successes`` successes in a row. A refused connection
    ejects at once (the process is gone; the registry needs seconds to notice). At most
    ``max_ejected_fraction`` of a service's instances are ejected at a time, but never fewer
    than one (Envoy's rule: a lone dead instance must still rank behind a fallback).
    """

    consecutive_failures: int = 3
    base_s: float = 2.0
    multiplier: float = 2.0
    max_s: float = 60.0
    max_ejected_fraction: float = 0.5
    eject_on_refused: bool = True
    forgive_after_successes: int = 5

    def __post_init__(self) -> None:
        if self.consecutive_failures < 1 or self.base_s < 0 or self.multiplier < 1 or self.max_s < self.base_s:
            raise ValueError("ejection needs consecutive_failures >= 1, 0 <= base_s <= max_s, multiplier >= 1")
        if not 0 <= self.max_ejected_fraction <= 1:
            raise ValueError("max_ejected_fraction must be in [0, 1]")

    def duration_s(self, times_ejected: int) -> float:
        return min(self.max_s, self.base_s * self.multiplier ** max(0, times_ejected - 1))


class RetryBudget:
    """Counts requests and retries in one-second buckets over a sliding window. Thread-safe."""

    def __init__(self, policy: RetryPolicy, clock: Clock | None = None) -> None:
        self.policy = policy
        self._clock = clock or SystemClock()
        self._buckets = max(1, math.ceil(policy.budget_window_s))
        self._requests = [0] * self._buckets
        self._retries = [0] * self._buckets
        self._stamp = [-1] * self._buckets  # which second each bucket currently counts
        self._lock = threading.Lock()

    def _slot(self) -> int:
        second = int(self._clock.monotonic())
        slot = second % self._buckets
        if self._stamp[slot] != second:
            self._stamp[slot], self._requests[slot], self._retries[slot] = second, 0, 0
        return slot

    def _live(self) -> tuple[int, int]:
        oldest = int(self._clock.monotonic()) - self._buckets + 1
        requests = retries = 0
        for i in range(self._buckets):
            if self._stamp[i] >= oldest:
                requests += self._requests[i]
                retries += self._retries[i]
        return requests, retries

    def record_request(self) -> None:
        with self._lock:
            self._requests[self._slot()] += 1

    def allowance(self) -> int:
        """How many retries the window allows in total right now."""
        with self._lock:
            requests, _ = self._live()
        return max(self.policy.budget_min, int(self.policy.budget_ratio * requests))

    def try_spend(self) -> bool:
        """Take one retry from the budget; False (and nothing taken) when it is spent."""
        with self._lock:
            requests, retries = self._live()
            if retries >= max(self.policy.budget_min, int(self.policy.budget_ratio * requests)):
                return False
            self._retries[self._slot()] += 1
            return True
