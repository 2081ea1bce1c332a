"""The echo model: seeded latency distributions, injected failures, per-request sleep."""

from __future__ import annotations

import random
import statistics

import pytest

from services.common.envelope import ApiError, ErrorCode
from services.worker.echo import EchoModel, Latency
from services.worker.model import WorkerIdentity


class SleepRecorder:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def test_zero_latency_never_sleeps() -> None:
    sleep = SleepRecorder()
    out = EchoModel(sleep=sleep).predict({"a": 1, "task_type": "echo"})
    assert out["echo"] == {"a": 1, "task_type": "echo"}
    assert out["task_type"] == "echo"
    assert sleep.calls == []


def test_served_by_comes_from_the_bound_identity() -> None:
    model = EchoModel()
    model.bind(WorkerIdentity(kind="echo", service_name="echo", pid=7, port=8123, instance_id="echo-x"))
    assert model.predict({})["served_by"] == {"instance_id": "echo-x", "port": 8123, "pid": 7, "base_url": ""}


@pytest.mark.parametrize("dist", ["uniform", "normal", "lognormal"])
def test_distributions_have_the_requested_mean_and_are_seeded(dist: str) -> None:
    latency = Latency(50.0, 10.0, dist)
    draws = [latency.draw(random.Random(3)) for _ in range(3)]
    assert draws[0] == draws[1] == draws[2]
    rng = random.Random(1)
    sample = [latency.draw(rng) for _ in range(20_000)]
    assert min(sample) >= 0
    assert statistics.fmean(sample) == pytest.approx(50.0, rel=0.03)
    if dist != "uniform":
        assert statistics.pstdev(sample) == pytest.approx(10.0, rel=0.05)
    else:
        assert min(sample) >= 40.0 and max(sample) <= 60.0


def test_invalid_latency_settings_are_rejected() -> None:
    with pytest.raises(ValueError):
        Latency(-1.0)
    with pytest.raises(ValueError):
        Latency(1.0, 1.0, "pareto")
    with pytest.raises(ValueError):
        EchoModel(failure_rate=1.5)


def test_sleep_ms_adds_latency_up_to_the_cap() -> None:
    sleep = SleepRecorder()
    model = EchoModel(Latency(10.0), max_sleep_ms=300.0, sleep=sleep)
    assert model.predict({"sleep_ms": 100})["latency_ms"] == 110.0
    assert model.predict({"sleep_ms": 10_000})["latency_ms"] == 300.0
    assert sleep.calls == [0.11, 0.3]


@pytest.mark.parametrize("bad", [-1, "100", True, float("inf")])
def test_bad_sleep_ms_is_an_invalid_request(bad: object) -> None:
    with pytest.raises(ApiError) as info:
        EchoModel(sleep=SleepRecorder()).predict({"sleep_ms": bad})
    assert info.value.code is ErrorCode.INVALID_REQUEST


def test_failure_rate_is_seeded_and_close_to_the_rate() -> None:
    def outcomes(seed: int) -> list[bool]:
        model = EchoModel(failure_rate=0.3, seed=seed, sleep=SleepRecorder())
        result = []
        for _ in range(2000):
            try:
                model.predict({})
                result.append(True)
            except ApiError as err:
                assert err.code is ErrorCode.PREDICTION_FAILED
                result.append(False)
        return result

    first = outcomes(42)
    assert first == outcomes(42)
    assert first.count(False) / len(first) == pytest.approx(0.3, abs=0.04)


def test_fail_flag_fails_that_request() -> None:
    with pytest.raises(ApiError) as info:
        EchoModel().predict({"fail": True})
    assert info.value.code is ErrorCode.PREDICTION_FAILED


def test_load_time_is_spent_in_load() -> None:
    sleep = SleepRecorder()
    EchoModel(load_time_s=2.5, sleep=sleep).load()
    assert sleep.calls == [2.5]
