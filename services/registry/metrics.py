"""Prometheus metrics of the registry (one CollectorRegistry per app, so tests can run many)."""

from __future__ import annotations

import gc
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.common.instance import STATUSES, Instance

# Label values come from a fixed set: a client sending made-up methods or paths must not grow
# the metrics forever. Routes are Flask's rule templates (a path matching none is UNMATCHED);
# a method outside this set is OTHER_METHOD.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
OTHER_METHOD = "other"
UNMATCHED = "unmatched"

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 120.0)


class _InstanceCollector(Collector):
    """Instances per service and status, computed at scrape time from the catalog."""

    def __init__(self, snapshot: Callable[[], list[Instance]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "registry_instances", "Registered instances by service and status", labels=["service", "status"]
        )
        tally = Tally((inst.service_name, inst.status) for inst in self._snapshot())
        for service in sorted({name for name, _ in tally}):
            for status in STATUSES:
                family.add_metric([service, status], tally.get((service, status), 0))
        yield family


class RegistryMetrics:
    """Counters and histograms the routes and the sweeper update."""

    def __init__(self, snapshot: Callable[[], list[Instance]], index: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("registry_http_requests", "HTTP requests", ["route", "method", "code"], registry=r)
        self.latency = Histogram(
            "registry_http_request_duration_seconds", "Request latency", ["route"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.registrations = Counter("registry_registrations", "Registrations", ["result"], registry=r)
        self.heartbeats = Counter("registry_heartbeats", "Heartbeats", ["result"], registry=r)
        self.deregistrations = Counter("registry_deregistrations", "Instances removed", ["reason"], registry=r)
        self.watchers = Gauge("registry_blocking_queries", "Blocking queries waiting now", registry=r)
        self.watch_rejected = Counter(
            "registry_blocking_queries_rejected", "Blocking queries refused (full)", registry=r
        )
        self.sweep_seconds = Histogram(
            "registry_sweep_duration_seconds", "Health sweep duration", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.gc_pause = Histogram(
            "registry_gc_pause_seconds",
            "Garbage-collector pauses by generation (every request waits them out: one thread)",
            ["generation"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        index_gauge = Gauge("registry_index", "Current catalog change index", registry=r)
        index_gauge.set_function(lambda: float(index()))
        r.register(_InstanceCollector(snapshot))


def time_gc_pauses(metrics: RegistryMetrics) -> Callable[[], None]:
    """Observe every collection's pause in ``metrics.gc_pause`` (process-wide: the server's process
    calls this once); returns the function that stops it."""
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            metrics.gc_pause.labels(generation=str(info["generation"])).observe(time.perf_counter() - started[0])

    gc.callbacks.append(callback)
    return lambda: gc.callbacks.remove(callback)
