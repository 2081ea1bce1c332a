"""Prometheus metrics of one worker app, in a registry of its own.

A registry per app (not the global default) lets tests build many apps in one process
and keeps a kind's metrics out of other apps' output.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector

__all__ = ["CONTENT_TYPE", "WorkerMetrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class WorkerMetrics:
    """Request count and latency by route template and status, plus live gauges."""

    def __init__(self, service_name: str, version: str, inflight: Callable[[], float], draining: Callable[[], float]):
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "worker_requests_total",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "worker_request_duration_seconds",
            "Time from request start to response, by route template and status code.",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        Gauge("worker_inflight_requests", "Requests being served now.", registry=self.registry).set_function(inflight)
        Gauge("worker_draining", "1 while the worker drains before exit.", registry=self.registry).set_function(
            draining
        )
        info = Gauge(
            "worker_info",
            "Constant 1, labelled with what this worker serves.",
            ["service", "version"],
            registry=self.registry,
        )
        info.labels(service=service_name, version=version).set(1)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        labels = {"route": route, "method": method, "status": str(status)}
        self.requests.labels(**labels).inc()
        self.latency.labels(**labels).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
