"""Request rate and latency percentiles from a worker's Prometheus text (``worker_*`` series).

Health probes and scrapes are left out: the Monitor should show the traffic users cause,
not the traffic it causes itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

IGNORED_ROUTES = ("/metrics", "/health", "/health/live", "/health/ready")


@dataclass(frozen=True)
class ScrapeStats:
    """One scrape, summarised; ``rate_per_s`` needs a previous scrape (else None)."""

    up: bool
    at: float = 0.0
    requests_total: float = 0.0
    rate_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    inflight: float = 0.0


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """Prometheus-style ``histogram_quantile`` over cumulative ``{le: count}`` buckets (linear in a bucket)."""
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return prev_bound
            width = count - prev_count
            return prev_bound + (bound - prev_bound) * ((rank - prev_count) / width if width else 1.0)
        prev_bound, prev_count = bound, count
    return prev_bound


def summarize(text: str | None, now: float, prev: ScrapeStats | None) -> ScrapeStats:
    """Totals over user routes; the rate is the counter's increase since ``prev`` (a restart resets it)."""
    if text is None:
        return ScrapeStats(up=False, at=now)
    total = 0.0
    inflight = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            route = sample.labels.get("route", "")
            if route in IGNORED_ROUTES:
                continue
            if sample.name == "worker_requests_total":
                total += sample.value
            elif sample.name == "worker_request_duration_seconds_bucket":
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
            elif sample.name == "worker_inflight_requests":
                inflight = sample.value
    rate = None
    if prev is not None and prev.up and now > prev.at:
        rate = max(0.0, total - prev.requests_total) / (now - prev.at) if total >= prev.requests_total else None
    p50, p99 = quantile(buckets, 0.5), quantile(buckets, 0.99)
    return ScrapeStats(
        up=True,
        at=now,
        requests_total=total,
        rate_per_s=rate,
        p50_ms=None if p50 is None else p50 * 1000,
        p99_ms=None if p99 is None else p99 * 1000,
        inflight=inflight,
    )
