"""Dynamic micro-batching for any worker kind: concurrent requests share one forward pass.

Request threads hand their items to :class:`MicroBatcher` with a key (task type, the model a
graph was featurised for, the options that change the pass) and block on a future. Batching
threads pick the next item, wait at most ``max_wait_s`` from its arrival for others with the
same key until ``max_batch`` are there, and run them through ``run`` in one call, so a batch is
always homogeneous. One thread (``workers=1``) never runs the model concurrently with itself,
which is what a GPU wants; several let a CPU-bound model use several cores. ``inline`` runs each
call's items in the calling thread instead (batching off: nothing to share, no hop).

Cost-aware: each item may carry a cost (e.g. tokens through the model). A pass holds at most
``max_batch_cost``, and the next item is chosen by start-time fair queueing over the calls that
submitted them (Goyal et al. 1996): every call is a flow whose items get virtual start tags
spaced by their cost, so a short request that arrives behind a long one is served after the pass
in progress, not after the whole long request, and two long requests take turns. A kind splits
big work into items of bounded cost (the sequence workers cut a pseudo-log-likelihood into
slices of positions). ``express_cost`` adds one thread that serves only items that cheap, so they
do not even wait for the pass in progress.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
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
    cost: float = 1.0
    flow: object = None
    start: float = 0.0  # virtual start tag (fair queueing); set when queued
    seq: int = 0  # arrival order, the tie-break between equal tags
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher(Generic[T, R]):
    """Collects items into batches of up to ``max_batch`` per key, waiting at most ``max_wait_s``.

    :param run: one forward pass over a homogeneous batch.
    :param on_batch: called after every pass, failed ones too, with ``(key, size, seconds)`` (metrics).
    :param workers: batching threads running passes side by side.
    :param inline: run in the calling thread (batching off).
    :param thread_setup: called once in each thread before its first pass (e.g. cap BLAS threads).
    :param max_batch_cost: most summed item cost per pass (an item costlier than that runs alone).
    :param express_cost: when > 0, one more thread serving only items of at most this cost.
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
        max_batch_cost: float = math.inf,
        express_cost: float = 0.0,
    ) -> None:
        if max_batch < 1 or max_wait_s < 0 or workers < 1:
            raise ValueError("max_batch and workers must be at least 1 and max_wait_s not negative")
        if not max_batch_cost > 0 or express_cost < 0:
            raise ValueError("max_batch_cost must be positive and express_cost not negative")
        self.max_batch, self.max_wait_s, self.workers, self.inline = max_batch, max_wait_s, workers, inline
        self.max_batch_cost, self.express_cost = max_batch_cost, express_cost
        self._run, self._on_batch, self._thread_setup, self._name = run, on_batch, thread_setup, name
        self._local = threading.local()
        self._queue: list[_Pending[T]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._express: threading.Thread | None = None
        # Fair queueing: the virtual time (start tag of the last item taken) and each flow's last finish tag.
        self._vtime = 0.0
        self._flow_finish: dict[object, float] = {}
        self._flow_queued: dict[object, int] = {}
        self._seq = itertools.count()

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

    def submit_many(
        self, pairs: Sequence[tuple[Hashable, T]], costs: Sequence[float] | None = None, flow: object = None
    ) -> list[Future[Batched[R]]]:
        """Queue several items at once (a /predict/batch call); they fill batches together.

        ``costs`` (default 1 each) order the queue fairly; ``flow`` names whose turn the items take
        (default: this call alone).
        """
        costs = [1.0] * len(pairs) if costs is None else [max(0.0, float(c)) for c in costs]
        if len(costs) != len(pairs):
            raise ValueError(f"{len(costs)} costs for {len(pairs)} items")
        flow = object() if flow is None else flow
        pending = [_Pending(key, item, cost, flow) for (key, item), cost in zip(pairs, costs, strict=True)]
        if self.inline:
            self._run_inline(pending)
            return [p.future for p in pending]
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._start_threads()
            finish = max(self._vtime, self._flow_finish.get(flow, 0.0))
            for p in pending:
                p.start, p.seq = finish, next(self._seq)
                finish += p.cost
            self._flow_finish[flow] = finish
            self._flow_queued[flow] = self._flow_queued.get(flow, 0) + len(pending)
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
        for thread in [*self._threads, *([self._express] if self._express else [])]:
            if thread is not threading.current_thread():
                thread.join(timeout=5)

    # -- internals ---------------------------------------------------------------------------

    def _start_threads(self) -> None:
        """Called under the lock: (re)start batching threads up to ``workers``."""
        self._threads = [t for t in self._threads if t.is_alive()]
        while len(self._threads) < self.workers:
            name = f"{self._name}-{len(self._threads)}"
            thread = threading.Thread(target=self._loop, args=(math.inf,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.express_cost > 0 and (self._express is None or not self._express.is_alive()):
            self._express = threading.Thread(
                target=self._loop, args=(self.express_cost,), name=f"{self._name}-express", daemon=True
            )
            self._express.start()

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

    def _take(self, lane_cost: float) -> list[_Pending[T]] | None:
        """The next batch: the lowest start tag among items of at most ``lane_cost``, and its key's next ones."""
        with self._cond:
            while True:
                if self._closed:
                    return None
                eligible = [p for p in self._queue if p.cost <= lane_cost]
                if not eligible:
                    self._cond.wait()
                    continue
                head = min(eligible, key=lambda p: (p.start, p.seq))
                batch = self._fill(head, eligible)
                remaining = head.enqueued + self.max_wait_s - time.perf_counter()
                full = len(batch) >= self.max_batch or sum(p.cost for p in batch) >= self.max_batch_cost
                if full or remaining <= 0:
                    break
                self._cond.wait(remaining)
            taken = {id(p) for p in batch}
            self._queue = [p for p in self._queue if id(p) not in taken]
            self._vtime = max(self._vtime, max(p.start for p in batch))
            for p in batch:
                self._flow_queued[p.flow] -= 1
                if not self._flow_queued[p.flow]:  # the flow has nothing queued: forget its tags
                    del self._flow_queued[p.flow], self._flow_finish[p.flow]
            if self._queue:
                self._cond.notify_all()  # another thread may take the next batch now
            return batch

    def _fill(self, head: _Pending[T], eligible: list[_Pending[T]]) -> list[_Pending[T]]:
        """``head`` and the same key's items in tag order, within ``max_batch`` and ``max_batch_cost``."""
        batch, cost = [head], head.cost
        for p in sorted((p for p in eligible if p.key == head.key and p is not head), key=lambda p: (p.start, p.seq)):
            if len(batch) >= self.max_batch or cost + p.cost > self.max_batch_cost:
                break
            batch.append(p)
            cost += p.cost
        return batch

    def _loop(self, lane_cost: float) -> None:
        while True:
            batch = self._take(lane_cost)
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
