"""The model a COMPASS worker serves, and its forward passes through the runtime's micro-batcher.

Request threads featurise their complex (RDKit, in parallel) and hand the graph to
:class:`services.worker.batching.MicroBatcher`. Each graph carries the :class:`ServedModel` it
was featurised for and is keyed by it, so a batch only ever mixes graphs of the same model:
switching models (an atomic reference swap) never scores a graph with the wrong one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from compass.data.graph import ComplexGraph, FeatureSettings
from compass.model.checkpoint import Predictor
from services.worker.batching import MicroBatcher

Observer = Callable[[int, float], None]  # (batch size, seconds in the model)


@dataclass(frozen=True)
class ServedModel:
    """One loaded model and what a response says about it."""

    id: str
    name: str
    kind: str
    predictor: Predictor = field(repr=False)
    validation: dict[str, Any] | None = None  # compass.service.validation.validation_of: None = no figure
    loaded_at: float = field(default_factory=time.time)

    @property
    def feature_settings(self) -> FeatureSettings:
        return self.predictor.feature_settings

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "kind": self.kind, "validation": self.validation}


@dataclass(frozen=True)
class Scored:
    """One graph's answer and how it was computed."""

    pK: float
    model: ServedModel
    batch_size: int
    queue_ms: float
    model_ms: float


def thread_limiter(threads: int) -> Callable[[], None] | None:
    """Cap OpenMP/BLAS threads of each thread running passes (``threads`` > 0).

    On a busy CPU host, OpenMP teams spinning for a core made a compass-lite forward pass of 8
    complexes take 40-700 ms instead of 9 ms; one thread per pass, passes in parallel, is faster.
    """
    if threads <= 0:
        return None

    def limit() -> None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)

    return limit


def _forward(_key: Hashable, items: Sequence[tuple[ServedModel, ComplexGraph]]) -> list[float]:
    model = items[0][0]
    values = model.predictor.predict([graph for _, graph in items], batch_size=len(items))
    return [float(v) for v in values]


class ForwardPasses:
    """Scores graphs in shared forward passes of at most ``max_batch`` (``max_batch == 1``: inline)."""

    def __init__(
        self,
        max_batch: int = 32,
        max_wait_s: float = 0.005,
        observe: Observer | None = None,
        threads: int = 0,
        workers: int = 1,
    ) -> None:
        on_batch = (lambda _key, size, seconds: observe(size, seconds)) if observe else None
        self.threads = threads
        self.batcher: MicroBatcher[tuple[ServedModel, ComplexGraph], float] = MicroBatcher(
            _forward,
            max_batch=max_batch,
            max_wait_s=max_wait_s,
            on_batch=on_batch,
            name="micro-batcher",
            workers=workers,
            inline=max_batch <= 1,
            thread_setup=thread_limiter(threads),
        )

    @property
    def enabled(self) -> bool:
        return self.batcher.enabled

    @property
    def workers(self) -> int:
        return self.batcher.workers

    @property
    def queued(self) -> int:
        return self.batcher.queued

    def score(self, graphs: list[ComplexGraph], model: ServedModel, timeout: float | None = 300.0) -> list[Scored]:
        """Scores for ``graphs`` (in order); several calls at once end up in shared batches."""
        futures = self.batcher.submit_many([(id(model), (model, g)) for g in graphs])
        done = [f.result(timeout=timeout) for f in futures]
        return [Scored(d.value, model, d.batch_size, d.queue_ms, d.model_ms) for d in done]

    def close(self) -> None:
        self.batcher.close()
