"""Which instances may be picked at all: registry health, outlier ejection and panic mode.

The registry's view (passing / warning / critical / maintenance) lags by a TTL; the client's
own view (consecutive failures → ejection) reacts within a request. Both feed one rule
(Envoy's): while at least ``panic_threshold`` of a service's instances are healthy only those
are candidates; below it, every instance except draining ones is (a partitioned registry or an
over-eager ejection must not take the whole service down). Draining (maintenance) instances
are never picked: they asked to be left alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from services.client.policy import EjectionPolicy
from services.common.clock import Clock, SystemClock
from services.common.instance import Instance

HEALTHY_STATES = frozenset({"passing", "warning"})
DEFAULT_PANIC_THRESHOLD = 0.5


def is_draining(inst: Instance) -> bool:
    return inst.maintenance or inst.status == "maintenance"


@dataclass
class _Record:
    failures: int = 0  # consecutive
    successes: int = 0  # consecutive
    times_ejected: int = 0
    until: float = 0.0  # monotonic time the current ejection ends


class OutlierDetector:
    """Consecutive-failure ejection with growing back-off; thread-safe; injected clock."""

    def __init__(self, policy: EjectionPolicy | None = None, clock: Clock | None = None) -> None:
        self.policy = policy or EjectionPolicy()
        self._clock = clock or SystemClock()
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def _ejected_locked(self, instance_id: str, now: float) -> bool:
        rec = self._records.get(instance_id)
        return rec is not None and rec.until > now

    def is_ejected(self, instance_id: str) -> bool:
        with self._lock:
            return self._ejected_locked(instance_id, self._clock.monotonic())

    def ejected(self, instance_ids: Collection[str]) -> set[str]:
        """The subset of ``instance_ids`` ejected right now."""
        now = self._clock.monotonic()
        with self._lock:
            return {i for i in instance_ids if self._ejected_locked(i, now)}

    def ejection_ends_in(self, instance_id: str) -> float:
        """Seconds until the instance returns (0 when it is not ejected)."""
        with self._lock:
            rec = self._records.get(instance_id)
            return max(0.0, rec.until - self._clock.monotonic()) if rec else 0.0

    def record_success(self, instance_id: str) -> None:
        with self._lock:
            rec = self._records.get(instance_id)
            if rec is None:
                return
            rec.failures = 0
            rec.successes += 1
            if rec.successes >= self.policy.forgive_after_successes:
                del self._records[instance_id]  # forgiven: the next ejection starts short again

    def record_failure(self, instance_id: str, pool: Collection[str], *, refused: bool = False) -> bool:
        """Count a failure of ``instance_id`` (one of ``pool``, its service's instances).

        Returns True when this failure ejected it. The ejection is skipped when it would take
        more than ``max_ejected_fraction`` of the pool out (but one instance may always go).
        """
        now = self._clock.monotonic()
        with self._lock:
            rec = self._records.setdefault(instance_id, _Record())
            rec.successes = 0
            rec.failures += 1
            if rec.until > now:
                return False  # already out (a request that started before the ejection)
            due = rec.failures >= self.policy.consecutive_failures or (refused and self.policy.eject_on_refused)
            if not due:
                return False
            out = sum(1 for i in pool if i != instance_id and self._ejected_locked(i, now))
            # Envoy's rule: at least one may always go. Ejecting a lone instance only ranks it
            # behind the fallback chain; panic mode still uses it when nothing else is left.
            if out + 1 > max(1, int(self.policy.max_ejected_fraction * len(pool))):
                return False
            rec.times_ejected += 1
            rec.until = now + self.policy.duration_s(rec.times_ejected)
            rec.failures = 0
            return True


@dataclass(frozen=True)
class Selection:
    """The candidates of one service for one attempt, and why."""

    candidates: list[Instance]
    healthy: int  # healthy, not ejected, not draining
    usable: int  # not draining
    panic: bool

    @property
    def empty(self) -> bool:
        return not self.candidates


def select(
    instances: Sequence[Instance],
    ejected: Collection[str],
    tried: Collection[str] = (),
    panic_threshold: float = DEFAULT_PANIC_THRESHOLD,
) -> Selection:
    """Candidates among ``instances``, never one in ``tried`` (a retry goes elsewhere)."""
    usable = [i for i in instances if not is_draining(i)]
    healthy = [i for i in usable if i.status in HEALTHY_STATES and i.instance_id not in ejected]
    panic = bool(usable) and len(healthy) < panic_threshold * len(usable)
    pool = usable if panic else healthy
    return Selection(
        candidates=[i for i in pool if i.instance_id not in tried],
        healthy=len(healthy),
        usable=len(usable),
        panic=panic,
    )


def below_capacity(candidates: Sequence[Instance], inflight: Callable[[str], int]) -> list[Instance]:
    """Drop candidates this client alone already fills to their advertised ``load.max_inflight``.

    Such a worker would answer 503 OVERLOADED for sure; skipping it saves a round trip and a
    retry from the budget. Only our own in-flight count is used (the registry's is seconds
    old), so this is a lower bound and never wrongly skips. When every candidate is full the
    list is returned unchanged: the worker's 503 then tells the caller what is going on.
    """
    free = []
    for inst in candidates:
        cap = inst.load.get("max_inflight") if isinstance(inst.load, dict) else None
        if (
            isinstance(cap, (int, float))
            and not isinstance(cap, bool)
            and cap > 0
            and inflight(inst.instance_id) >= cap
        ):
            continue
        free.append(inst)
    return free or list(candidates)
