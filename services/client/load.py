"""How busy each instance is, as seen from this client: in-flight count and a peak-EWMA latency.

The tracker is the only place that counts: a request is counted *before* it is sent and
released in ``finally`` (tower's ``PendingRequests``), so least-connections sees the truth
even while a request hangs. Latency is a peak-sensitive EWMA (tower's ``PeakEwma``, Finagle's
``PeakEwma``): a slow answer raises the estimate at once, fast ones bring it down with a time
constant, so one stalled instance stops being picked within a few requests.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from services.common.clock import Clock, SystemClock


class LoadView(Protocol):
    """What a balancer may read: comparable numbers, lower is better."""

    def inflight(self, instance_id: str) -> int: ...

    def latency_s(self, instance_id: str) -> float: ...

    def load(self, instance_id: str) -> float: ...


@dataclass
class _Meter:
    inflight: int = 0
    ewma_s: float | None = None
    stamp: float = 0.0  # monotonic time of the last latency sample


class LoadTracker:
    """Thread-safe per-instance in-flight counts and latency estimates.

    ``load(id)`` is ``ewma × (inflight + 1)``: the expected wait for one more request.
    Instances without a sample use ``default_rtt_s``; an unsampled estimate decays with
    time constant ``decay_s`` (10 s, Finagle's and Linkerd's default decay time).
    """

    def __init__(self, clock: Clock | None = None, *, decay_s: float = 10.0, default_rtt_s: float = 0.01) -> None:
        if decay_s <= 0 or default_rtt_s <= 0:
            raise ValueError("decay_s and default_rtt_s must be positive")
        self._clock = clock or SystemClock()
        self._decay_s = decay_s
        self._default = default_rtt_s
        self._meters: dict[str, _Meter] = {}
        self._lock = threading.Lock()

    def _meter(self, instance_id: str) -> _Meter:
        meter = self._meters.get(instance_id)
        if meter is None:
            meter = self._meters[instance_id] = _Meter()
        return meter

    @contextmanager
    def track(self, instance_id: str) -> Iterator[None]:
        """Count one request in flight on ``instance_id`` for the body of the ``with``."""
        with self._lock:
            self._meter(instance_id).inflight += 1
        try:
            yield
        finally:
            with self._lock:
                self._meters[instance_id].inflight -= 1

    def observe(self, instance_id: str, seconds: float) -> None:
        """Feed one measured latency into the instance's peak EWMA."""
        now = self._clock.monotonic()
        with self._lock:
            meter = self._meter(instance_id)
            current = self._decayed(meter, now)  # = stored × w, with w = exp(-elapsed / decay_s)
            if current is None or seconds > current:
                meter.ewma_s = seconds  # peak: jump up at once
            else:
                weight = math.exp(-max(0.0, now - meter.stamp) / self._decay_s)
                meter.ewma_s = current + seconds * (1.0 - weight)  # stored × w + sample × (1 - w)
            meter.stamp = now

    def _decayed(self, meter: _Meter, now: float) -> float | None:
        """The estimate decays towards 0 while unsampled (as tower's does), so an instance that
        once looked slow is tried again now and then instead of being shunned for good."""
        if meter.ewma_s is None:
            return None
        return meter.ewma_s * math.exp(-max(0.0, now - meter.stamp) / self._decay_s)

    def inflight(self, instance_id: str) -> int:
        with self._lock:
            meter = self._meters.get(instance_id)
            return meter.inflight if meter else 0

    def latency_s(self, instance_id: str) -> float:
        now = self._clock.monotonic()
        with self._lock:
            meter = self._meters.get(instance_id)
            value = self._decayed(meter, now) if meter else None
            return self._default if value is None else value

    def load(self, instance_id: str) -> float:
        now = self._clock.monotonic()
        with self._lock:
            meter = self._meters.get(instance_id)
            rtt = self._decayed(meter, now) if meter else None
            return (self._default if rtt is None else rtt) * ((meter.inflight if meter else 0) + 1)
