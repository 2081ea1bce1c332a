"""The runtime's MicroBatcher: concurrent requests share passes, per key, within max batch and max wait."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.worker.batching import MicroBatcher
from tests.support import wait_until


class Recorder:
    """A batch function that remembers every batch it ran; with a gate, each pass holds until it opens."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[tuple[object, list[int]]] = []
        self.gate = gate
        self.lock = threading.Lock()

    def __call__(self, key, items):
        with self.lock:
            self.batches.append((key, list(items)))
        if self.gate is not None and not self.gate.wait(timeout=10):
            raise TimeoutError("the test never opened the gate")
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]

    def started(self) -> int:
        with self.lock:
            return sum(len(items) for _, items in self.batches)


@pytest.fixture
def recorder():
    return Recorder()


def test_concurrent_submissions_share_a_forward_pass() -> None:
    """While one pass runs (held by the gate), the other requests queue up and share the next one."""
    recorder = Recorder(gate=threading.Event())
    batcher = MicroBatcher(recorder, max_batch=8, max_wait_s=0.05)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(batcher.submit, "k", i) for i in range(8)]
        wait_until(
            lambda: recorder.started() and recorder.started() + batcher.queued == 8,
            timeout=10,
            what="a pass running and the rest queued behind it",
        )
        recorder.gate.set()
        results = [f.result(timeout=10) for f in futures]
    batcher.close()
    assert results == [i * 10 for i in range(8)]
    assert len(recorder.batches) < 8 and max(len(b) for _, b in recorder.batches) > 1


def test_batches_never_exceed_max_batch_and_keep_keys_apart(recorder) -> None:
    batcher = MicroBatcher(recorder, max_batch=3, max_wait_s=0.01)
    futures = batcher.submit_many([("a", 1), ("b", 2), ("a", 3), ("a", 4), ("a", 5), ("b", 6)])
    assert [f.result(timeout=5).value for f in futures] == [10, 20, 30, 40, 50, 60]
    batcher.close()
    assert all(len(items) <= 3 for _, items in recorder.batches)
    for key, items in recorder.batches:
        assert all((i in (2, 6)) == (key == "b") for i in items)
    assert recorder.batches[0] == ("a", [1, 3, 4]), "the oldest item's key goes first, in arrival order"


def test_a_lone_request_waits_at_most_max_wait() -> None:
    batcher = MicroBatcher(Recorder(), max_batch=64, max_wait_s=0.05)
    t0 = time.monotonic()
    assert batcher.submit("k", 1) == 10
    assert time.monotonic() - t0 < 1.0
    batcher.close()


def test_an_item_error_fails_only_that_item_and_a_batch_error_fails_all() -> None:
    batcher = MicroBatcher(Recorder(), max_batch=4, max_wait_s=0.01)
    good, bad = batcher.submit_many([("k", 1), ("k", -1)])
    assert good.result(timeout=5).value == 10
    with pytest.raises(ValueError, match="bad -1"):
        bad.result(timeout=5)
    batcher.close()

    def broken(key, items):
        raise RuntimeError("out of memory")

    sizes = []
    batcher = MicroBatcher(broken, max_batch=4, max_wait_s=0.01, on_batch=lambda k, n, s: sizes.append(n))
    futures = batcher.submit_many([("k", 1), ("k", 2)])
    for f in futures:
        with pytest.raises(RuntimeError, match="out of memory"):
            f.result(timeout=5)
    assert sizes == [2], "a failed pass is still observed"
    batcher.close()
    with pytest.raises(RuntimeError):
        batcher.submit("k", 1)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        MicroBatcher(Recorder(), max_batch=0)


def test_timings_come_with_each_answer_and_inline_runs_in_the_caller() -> None:
    batcher = MicroBatcher(Recorder(), max_batch=4, max_wait_s=0.01)
    done = [f.result(timeout=5) for f in batcher.submit_many([("k", 1), ("k", 2)])]
    assert [d.value for d in done] == [10, 20] and {d.batch_size for d in done} == {2}
    assert all(d.queue_ms >= 0 and d.model_ms >= 0 for d in done)
    batcher.close()
    callers: list[str] = []

    def run(key, items):
        callers.append(threading.current_thread().name)
        return [i for i in items]

    inline = MicroBatcher(run, max_batch=4, inline=True)
    assert [f.result().value for f in inline.submit_many([("a", 1), ("b", 2), ("a", 3)])] == [1, 2, 3]
    assert callers == [threading.current_thread().name] * 2 and not inline.enabled, "one pass per key, here"


# -- cost-aware scheduling (issue 18: one request must never starve the queue) -----------------


class Stepper:
    """A batch function whose passes each wait for the test to release them, one at a time."""

    def __init__(self) -> None:
        self.batches: list[tuple[object, list]] = []
        self.steps = threading.Semaphore(0)
        self.lock = threading.Lock()

    def __call__(self, key, items):
        with self.lock:
            self.batches.append((key, list(items)))
        if not self.steps.acquire(timeout=10):
            raise TimeoutError("the test never released the pass")
        return list(items)

    def ran(self) -> int:
        with self.lock:
            return len(self.batches)


def test_a_small_request_goes_before_the_rest_of_a_big_one() -> None:
    """Start-time fair queueing by cost: a newcomer waits for the pass in progress, not for the whole queue."""
    stepper = Stepper()
    batcher = MicroBatcher(stepper, max_batch=4, max_wait_s=0.0, max_batch_cost=100)
    big = batcher.submit_many([("pll", ("big", i)) for i in range(20)], costs=[50] * 20)
    wait_until(lambda: stepper.ran() == 1, what="the first pass of the big request")
    small = batcher.submit_many([("emb", "small")], costs=[5])
    stepper.steps.release()  # the pass in progress ends; the next pass is the small request's...
    wait_until(lambda: stepper.ran() == 2, what="the second pass")
    stepper.steps.release()  # ...which ends too
    assert small[0].result(timeout=5).value == "small"
    assert stepper.batches[1] == ("emb", ["small"]) and stepper.batches[0] == ("pll", [("big", 0), ("big", 1)])
    for _ in range(20):
        stepper.steps.release()
    assert [f.result(timeout=5).value for f in big] == [("big", i) for i in range(20)]
    assert all(sum(50 for _ in items) <= 100 for key, items in stepper.batches if key == "pll")  # cost cap
    batcher.close()


def test_two_big_requests_take_turns() -> None:
    stepper = Stepper()
    batcher = MicroBatcher(stepper, max_batch=1, max_wait_s=0.0)
    first = batcher.submit_many([("k", ("a", i)) for i in range(3)], costs=[10] * 3)
    wait_until(lambda: stepper.ran() == 1, what="the first pass")
    second = batcher.submit_many([("k", ("b", i)) for i in range(3)], costs=[10] * 3)
    for _ in range(6):
        stepper.steps.release()
    for f in first + second:
        f.result(timeout=5)
    order = [items[0][0] for _, items in stepper.batches]
    assert order == ["a", "b", "a", "b", "a", "b"]
    batcher.close()


def test_an_item_over_the_pass_cost_still_runs_alone() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_batch=8, max_wait_s=0.01, max_batch_cost=10)
    futures = batcher.submit_many([("k", 1), ("k", 2), ("k", 3)], costs=[25, 4, 4])
    assert [f.result(timeout=5).value for f in futures] == [10, 20, 30]
    assert [items for _, items in recorder.batches] == [[1], [2, 3]]
    batcher.close()


def test_the_express_lane_answers_small_items_while_a_long_pass_runs() -> None:
    gate = threading.Event()
    seen: list[list] = []

    def run(key, items):
        seen.append(list(items))
        if key == "big" and not gate.wait(timeout=10):
            raise TimeoutError
        return list(items)

    batcher = MicroBatcher(run, max_batch=4, max_wait_s=0.0, express_cost=10)
    big = batcher.submit_many([("big", "B")], costs=[1000])
    wait_until(lambda: seen == [["B"]], what="the long pass to start")
    small = batcher.submit_many([("small", "s")], costs=[3])
    assert small[0].result(timeout=5).value == "s" and not big[0].done()
    gate.set()
    assert big[0].result(timeout=5).value == "B"
    with pytest.raises(ValueError):
        MicroBatcher(run, max_batch_cost=0)
    batcher.close()
