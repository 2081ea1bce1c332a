"""Prometheus metrics per task type: what the runtime's per-route metrics cannot tell apart.

``/predict`` serves embeddings and pseudo-log-likelihoods alike; their costs differ by orders
of magnitude, so requests, sequences, residues, latency and the size of every forward pass
are counted per ``task_type``. The registry is the worker's own; the runtime's ``add_metrics``
hook also serves it on the worker's ``/metrics`` page.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class TaskMetrics:
    """Counters and histograms labelled by task type (and outcome for requests)."""

    def __init__(self, service: str, queued: Callable[[], float] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.sequences = Counter(
            "seqmodel_sequences_total",
            "Sequences answered, by task type and outcome (ok or the error code).",
            ["service", "task_type", "outcome"],
            registry=self.registry,
        )
        self.residues = Counter(
            "seqmodel_residues_total",
            "Letters of the sequences answered successfully, by task type.",
            ["service", "task_type"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "seqmodel_sequence_seconds",
            "Time from a sequence's arrival at the model to its answer (queueing included), by task type.",
            ["service", "task_type"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "seqmodel_batch_size",
            "Sequences per forward pass (dynamic batching), by task type.",
            ["service", "task_type"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "seqmodel_batch_seconds",
            "Duration of one forward pass over a batch, by task type.",
            ["service", "task_type"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        queue = Gauge("seqmodel_queued_sequences", "Sequences waiting for a forward pass.", registry=self.registry)
        queue.set_function(queued or (lambda: 0.0))
        self.service = service
        self.collectors = [self.sequences, self.residues, self.latency, self.batch_size, self.batch_seconds, queue]

    def attach(self, registry: CollectorRegistry) -> None:
        """Also serve these metrics from ``registry`` (the worker app's own)."""
        for collector in self.collectors:
            registry.register(collector)

    def observe(self, task_type: str, outcome: str, seconds: float, residues: int = 0) -> None:
        self.sequences.labels(self.service, task_type, outcome).inc()
        self.latency.labels(self.service, task_type).observe(seconds)
        if outcome == "ok" and residues:
            self.residues.labels(self.service, task_type).inc(residues)

    def observe_batch(self, task_type: str, size: int, seconds: float) -> None:
        self.batch_size.labels(self.service, task_type).observe(size)
        self.batch_seconds.labels(self.service, task_type).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
