"""Dynamic batching: concurrent requests share one forward pass (Triton's and Ray Serve's idea).

Request threads hand their item to :class:`MicroBatcher` and block on a future. One
background thread takes the oldest item, waits at most ``max_wait_s`` for others with the same
key (task type and the options that change the forward pass) until ``max_batch`` are there, and
runs them through ``run`` in one call. Items with another key wait for the next pass, so a
batch is always homogeneous. One thread also means one forward pass at a time: the model is
never run concurrently with itself, which is what a GPU (and a 2-core CPU) wants.
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
RunBatch = Callable[[Hashable, Sequence[T]], Sequence[Any]]
OnBatch = Callable[[Hashable, int, float], None]


@dataclass
class _Pending(Generic[T]):
    key: Hashable
    item: T
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)


class MicroBatcher(Generic[T, R]):
    """Collects items into batches of up to ``max_batch`` per key, waiting at most ``max_wait_s``.

    :param run: one forward pass over a homogeneous batch.
    :param on_batch: called after every pass with ``(key, size, seconds)`` (metrics).
    """

    def __init__(
        self,
        run: RunBatch,
        *,
        max_batch: int = 16,
        max_wait_s: float = 0.005,
        on_batch: OnBatch | None = None,
        name: str = "batcher",
    ) -> None:
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError("max_batch must be at least 1 and max_wait_s not negative")
        self._run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._on_batch = on_batch
        self._name = name
        self._queue: deque[_Pending[T]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def queued(self) -> int:
        """Items waiting for a forward pass (not counting the one running)."""
        with self._cond:
            return len(self._queue)

    def submit(self, key: Hashable, item: T) -> R:
        """Run ``item`` in the next batch of its key and return its result (or raise its error)."""
        return self.submit_many([(key, item)])[0].result()

    def submit_many(self, pairs: Sequence[tuple[Hashable, T]]) -> list[Future]:
        """Queue several items at once (a /predict/batch call); they fill batches together."""
        pending = [_Pending(key, item) for key, item in pairs]
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._queue.extend(pending)
            self._cond.notify_all()
        return [p.future for p in pending]

    def close(self) -> None:
        """Stop the batching thread; queued items fail with RuntimeError."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            left = list(self._queue)
            self._queue.clear()
        for p in left:
            p.future.set_exception(RuntimeError("the batcher was closed"))
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    # -- the batching thread ----------------------------------------------------------------------

    def _count(self, key: Hashable) -> int:
        return sum(1 for p in self._queue if p.key == key)

    def _take(self) -> list[_Pending[T]] | None:
        """The next batch (oldest item's key first); None once closed."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            key = self._queue[0].key
            deadline = self._queue[0].enqueued + self.max_wait_s
            while not self._closed and self._count(key) < self.max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch: list[_Pending[T]] = []
            rest: deque[_Pending[T]] = deque()
            for p in self._queue:
                (batch if p.key == key and len(batch) < self.max_batch else rest).append(p)
            self._queue = rest
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
        key = batch[0].key
        t0 = time.perf_counter()
        try:
            results = list(self._run(key, [p.item for p in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"batch function answered {len(results)} results for {len(batch)} items")
        except BaseException as exc:  # the whole pass failed: every item learns why
            log.warning("batch of %d (%s) failed: %s", len(batch), key, exc)
            for p in batch:
                p.future.set_exception(exc)
            return
        finally:
            if self._on_batch is not None:
                self._on_batch(key, len(batch), time.perf_counter() - t0)
        for p, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                p.future.set_exception(result)
            else:
                p.future.set_result(result)
