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
