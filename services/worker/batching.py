"""Dynamic micro-batching for any worker kind: concurrent requests share one forward pass.

Request threads hand their items to :class:`MicroBatcher` with a key (task type, the model a
graph was featurised for, the options that change the pass) and block on a future. Batching
threads take the oldest item, wait at most ``max_wait_s`` from its arrival for others with the
same key until ``max_batch`` are there, and run them through ``run`` in one call, so a batch is
always homogeneous. One thread (``workers=1``) never runs the model concurrently with itself,
which is what a GPU wants; several let a CPU-bound model use several cores. ``inline`` runs each
call's items in the calling thread instead (batching off: nothing to share, no hop).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# ``run(key, items)`` answers one result per item, in order; an Exception in the list fails only that item.
RunBatch = Callable[[Hashable, Sequence[Any]], Sequence[Any]]
OnBatch = Callable[[Hashable, int, float], None]  # (key, batch size, seconds in the model)


@dataclass(frozen=True)
class Batched(Generic[R]):
    """One item's answer and how it was computed (responses report the timings)."""

    value: R
    batch_size: int
    queue_ms: float
    model_ms: float


@dataclass
class _Pending(Generic[T]):
    key: Hashable
    item: T
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher(Generic[T, R]):
    """Collects items into batches of up to ``max_batch`` per key, waiting at most ``max_wait_s``.

    :param run: one forward pass over a homogeneous batch.
    :param on_batch: called after every pass, failed ones too, with ``(key, size, seconds)`` (metrics).
    :param workers: batching threads running passes side by side.
    :param inline: run in the calling thread (batching off).
    :param thread_setup: called once in each thread before its first pass (e.g. cap BLAS threads).
    """

    def __init__(
        self,
        run: RunBatch,
        *,
        max_batch: int = 16,
        max_wait_s: float = 0.005,
        on_batch: OnBatch | None = None,
        name: str = "batcher",
        workers: int = 1,
        inline: bool = False,
        thread_setup: Callable[[], None] | None = None,
    ) -> None:
        if max_batch < 1 or max_wait_s < 0 or workers < 1:
            raise ValueError("max_batch and workers must be at least 1 and max_wait_s not negative")
        self.max_batch, self.max_wait_s, self.workers, self.inline = max_batch, max_wait_s, workers, inline
        self._run, self._on_batch, self._thread_setup, self._name = run, on_batch, thread_setup, name
        self._local = threading.local()
        self._queue: deque[_Pending[T]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._threads: list[threading.Thread] = []

    @property
    def enabled(self) -> bool:
        """Whether calls share passes (False: each runs inline)."""
        return not self.inline

    @property
    def queued(self) -> int:
        """Items waiting for a forward pass (not counting those running)."""
        with self._cond:
            return len(self._queue)

    def submit(self, key: Hashable, item: T) -> R:
        """Run ``item`` in the next batch of its key and return its result (or raise its error)."""
        return self.submit_many([(key, item)])[0].result().value

    def submit_many(self, pairs: Sequence[tuple[Hashable, T]]) -> list[Future[Batched[R]]]:
        """Queue several items at once (a /predict/batch call); they fill batches together."""
        pending = [_Pending(key, item) for key, item in pairs]
        if self.inline:
            self._run_inline(pending)
            return [p.future for p in pending]
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._start_threads()
            self._queue.extend(pending)
            self._cond.notify_all()
        return [p.future for p in pending]

    def close(self) -> None:
        """Stop the batching threads; queued items fail with RuntimeError."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            left = list(self._queue)
            self._queue.clear()
        for p in left:
            p.future.set_exception(RuntimeError("the batcher was closed"))
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)

    # -- internals ---------------------------------------------------------------------------

    def _start_threads(self) -> None:
        """Called under the lock: (re)start batching threads up to ``workers``."""
        self._threads = [t for t in self._threads if t.is_alive()]
        while len(self._threads) < self.workers:
            name = f"{self._name}-{len(self._threads)}"
            thread = threading.Thread(target=self._loop, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _setup_thread(self) -> None:
        if self._thread_setup is not None and not getattr(self._local, "ready", False):
            self._thread_setup()
            self._local.ready = True

    def _run_inline(self, pending: list[_Pending[T]]) -> None:
        groups: dict[Hashable, list[_Pending[T]]] = {}
        for p in pending:
            groups.setdefault(p.key, []).append(p)
        for batch in groups.values():
            self._execute(batch)

    def _take(self) -> list[_Pending[T]] | None:
        """The next batch (oldest item's key first); None once closed."""
        with self._cond:
            while True:
                if self._closed:
                    return None
                if not self._queue:
                    self._cond.wait()
                    continue
                head = self._queue[0]
                remaining = head.enqueued + self.max_wait_s - time.perf_counter()
                same = sum(1 for p in self._queue if p.key == head.key)
                if same >= self.max_batch or remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch: list[_Pending[T]] = []
            rest: deque[_Pending[T]] = deque()
            for p in self._queue:
                (batch if p.key == head.key and len(batch) < self.max_batch else rest).append(p)
            self._queue = rest
            if rest:
                self._cond.notify_all()  # another thread may take the next batch now
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            batch = [p for p in batch if p.future.set_running_or_notify_cancel()]
            if batch:
                self._execute(batch)

    def _execute(self, batch: list[_Pending[T]]) -> None:
        self._setup_thread()
        key = batch[0].key
        started = time.perf_counter()
        try:
            results = list(self._run(key, [p.item for p in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"batch function answered {len(results)} results for {len(batch)} items")
        except BaseException as exc:  # the whole pass failed: every item learns why, the thread lives on
            log.warning("batch of %d (%s) failed: %s", len(batch), key, exc)
            for p in batch:
                p.future.set_exception(exc)
            return
        finally:
            seconds = time.perf_counter() - started
            if self._on_batch is not None:
                self._on_batch(key, len(batch), seconds)
        for p, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                p.future.set_exception(result)
            else:
                queue_ms = max(0.0, started - p.enqueued) * 1e3
                p.future.set_result(Batched(result, len(batch), queue_ms, seconds * 1e3))
