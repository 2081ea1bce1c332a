"""Prometheus metrics of one worker app, in a registry of its own.

A registry per app (not the global default) lets tests build many apps in one process
and keeps a kind's metrics out of other apps' output.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector

__all__ = ["CONTENT_TYPE", "WorkerMetrics", "gpu_memory_bytes"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def gpu_memory_bytes() -> tuple[float, float]:
    """(reserved by this process through torch, total of its current device) in bytes; (0, 0) without CUDA.

    Cheap on every scrape: torch is only looked up in ``sys.modules`` (never imported here, so an
    echo worker stays torch-free), and a device is only asked once this process has initialised
    CUDA itself (no context is created just to report a number).
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return 0.0, 0.0
    try:
        if not torch.cuda.is_initialized():
            return 0.0, 0.0
        device = torch.cuda.current_device()
        return float(torch.cuda.memory_reserved(device)), float(torch.cuda.get_device_properties(device).total_memory)
    except Exception:  # a broken CUDA install must not break /metrics
        return 0.0, 0.0


class WorkerMetrics:
    """Request count and latency by route template and status, plus live gauges (GPU memory too)."""

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
        Gauge(
            "worker_gpu_memory_used_bytes",
            "GPU memory this process holds through torch (reserved by its allocator); 0 without CUDA.",
            registry=self.registry,
        ).set_function(lambda: gpu_memory_bytes()[0])
        Gauge(
            "worker_gpu_memory_total_bytes",
            "Total memory of the GPU this process uses; 0 without CUDA.",
            registry=self.registry,
        ).set_function(lambda: gpu_memory_bytes()[1])
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
