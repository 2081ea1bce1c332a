"""Dynamic micro-batching: concurrent /predict requests share one forward pass.

Request threads featurise their complex (RDKit, in parallel) and hand the graph to a batching
thread, which waits at most ``max_wait_s`` after the first graph for others, up to
``max_batch``, runs the model once, and wakes every request with its answer. Each graph carries
the :class:`ServedModel` it was featurised for, and a batch only ever mixes graphs of the same
model, so switching models (an atomic reference swap) never scores a graph with the wrong one.
``max_batch == 1`` turns batching off: each request runs the model in its own thread. Several
batching threads (``workers``) let a CPU-bound model use several cores at once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from compass.data.graph import ComplexGraph, FeatureSettings
from compass.model.checkpoint import Predictor

log = logging.getLogger(__name__)

Observer = Callable[[int, float], None]  # (batch size, seconds in the model)


@dataclass(frozen=True)
class ServedModel:
    """One loaded model and what a response says about it."""

    id: str
    name: str
    kind: str
    predictor: Predictor = field(repr=False)
    loaded_at: float = field(default_factory=time.time)

    @property
    def feature_settings(self) -> FeatureSettings:
        return self.predictor.feature_settings

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "kind": self.kind}


@dataclass(frozen=True)
class Scored:
    """One graph's answer and how it was computed."""

    pK: float
    model: ServedModel
    batch_size: int
    queue_ms: float
    model_ms: float


@dataclass
class _Item:
    graph: ComplexGraph
    model: ServedModel
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Collects graphs from many threads into forward passes of at most ``max_batch``."""

    def __init__(
        self,
        max_batch: int = 32,
        max_wait_s: float = 0.005,
        observe: Observer | None = None,
        threads: int = 0,
        workers: int = 1,
    ) -> None:
        if max_batch < 1 or max_wait_s < 0 or workers < 1:
            raise ValueError("max_batch and workers must be >= 1, max_wait_s >= 0")
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.threads = threads
        self.workers = workers
        self._local = threading.local()
        self._observe = observe or (lambda _n, _s: None)
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_batch > 1

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def score(self, graphs: list[ComplexGraph], model: ServedModel, timeout: float | None = 300.0) -> list[Scored]:
        """Scores for ``graphs`` (in order); several calls at once end up in shared batches."""
        if not graphs:
            return []
        if not self.enabled:
            return self._direct(graphs, model)
        self._ensure_threads()
        items = [_Item(g, model) for g in graphs]
        for item in items:
            self._queue.put(item)
        return [item.future.result(timeout=timeout) for item in items]

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=5)

    # -- internals ---------------------------------------------------------------------------

    def _limit_threads(self) -> None:
        """Cap OpenMP/BLAS threads of the calling thread once (``threads`` > 0).

        On a busy CPU host, OpenMP teams spinning for a core made a compass-lite forward pass
        of 8 complexes take 40-700 ms instead of 9 ms; one thread per forward pass, with
        requests running in parallel, is faster there.
        """
        if self.threads <= 0 or getattr(self._local, "limited", False):
            return
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=self.threads)
        self._local.limited = True

    def _direct(self, graphs: list[ComplexGraph], model: ServedModel) -> list[Scored]:
        self._limit_threads()
        t0 = time.perf_counter()
        values = model.predictor.predict(graphs, batch_size=len(graphs))
        seconds = time.perf_counter() - t0
        self._observe(len(graphs), seconds)
        return [Scored(float(v), model, len(graphs), 0.0, seconds * 1e3) for v in values]

    def _ensure_threads(self) -> None:
        """``workers`` batching threads: one suits a GPU; on a CPU, several run batches side by side."""
        if len(self._threads) == self.workers and all(t.is_alive() for t in self._threads):
            return
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            while len(self._threads) < self.workers:
                name = f"micro-batcher-{len(self._threads)}"
                thread = threading.Thread(target=self._run, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)

    def _collect(self, first: _Item) -> list[_Item] | None:
        """``first`` plus whatever arrives within the wait, up to the batch size (None: closing)."""
        batch = [first]
        deadline = time.perf_counter() + self.max_wait_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.perf_counter()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._run_batch(batch)
                return None
            batch.append(item)
        return batch

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            self._limit_threads()  # after a graph arrived: the model's libraries are loaded by then
            batch = self._collect(first)
            if batch is None:
                return
            self._run_batch(batch)

    def _run_batch(self, batch: list[_Item]) -> None:
        groups: dict[int, list[_Item]] = {}
        for item in batch:  # one forward pass per model (a switch may fall inside a batch)
            groups.setdefault(id(item.model), []).append(item)
        for items in groups.values():
            model = items[0].model
            started = time.perf_counter()
            try:
                values = model.predictor.predict([i.graph for i in items], batch_size=len(items))
            except Exception as exc:  # every waiting request gets the error, the thread lives on
                log.warning("batch of %d failed: %s", len(items), exc)
                for item in items:
                    item.future.set_exception(exc)
                continue
            seconds = time.perf_counter() - started
            self._observe(len(items), seconds)
            for item, value in zip(items, values, strict=True):
                queue_ms = (started - item.enqueued) * 1e3
                item.future.set_result(Scored(float(value), model, len(items), queue_ms, seconds * 1e3))
