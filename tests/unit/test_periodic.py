"""Periodic: the one way background work runs (registry sweeps and checks, the COMPASS sweeper)."""

from __future__ import annotations

import threading

import pytest

from services.common.periodic import Periodic
from tests.support import wait_until


def test_runs_again_after_a_failure_and_stops_at_once() -> None:
    calls: list[int] = []
    stopped = threading.Event()

    def work() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bad run")

    job = Periodic("test-periodic", 0.01, work, on_stop=stopped.set)
    job.start()
    wait_until(lambda: len(calls) >= 3, timeout=5, what="three runs, the first one failing")
    job.stop(timeout=1)
    assert stopped.is_set() and job.stopped
    seen = len(calls)
    threading.Event().wait(0.05)
    assert len(calls) == seen, "no run after stop()"


def test_an_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Periodic("bad", 0, lambda: None)
