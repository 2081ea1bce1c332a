"""The in-flight limiter and the token-bucket rate limiter, without HTTP."""

from __future__ import annotations

import threading

import pytest
from flask import Flask

from services.common.envelope import ApiError, ErrorCode
from services.worker.limits import InflightLimiter, RateLimiter, client_key


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_slots_are_refused_past_the_limit_and_released_on_error() -> None:
    limiter = InflightLimiter(2)
    with limiter.slot(), limiter.slot():
        assert limiter.inflight == 2
        with pytest.raises(ApiError) as info, limiter.slot():
            pass
        assert info.value.code is ErrorCode.OVERLOADED
        assert info.value.retry_after is not None
    assert limiter.inflight == 0
    with pytest.raises(RuntimeError), limiter.slot():
        raise RuntimeError("boom")
    assert limiter.inflight == 0


def test_wait_idle_returns_when_the_last_slot_is_released() -> None:
    limiter = InflightLimiter(4)
    entered = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with limiter.slot():
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    assert entered.wait(5)
    assert limiter.wait_idle(0.01) is False
    release.set()
    assert limiter.wait_idle(5) is True
    thread.join(5)


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        InflightLimiter(0)
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_bucket_allows_a_burst_then_refills_continuously() -> None:
    clock = FakeTime()
    limiter = RateLimiter(60, clock=clock)  # one token per second, burst of 60
    for _ in range(60):
        limiter.acquire("a")
    with pytest.raises(ApiError) as info:
        limiter.acquire("a")
    assert info.value.code is ErrorCode.RATE_LIMITED
    assert info.value.retry_after == pytest.approx(1.0)
    clock.now += 0.5
    with pytest.raises(ApiError) as info:
        limiter.acquire("a")
    assert info.value.retry_after == pytest.approx(0.5)
    clock.now += 0.5
    limiter.acquire("a")
    limiter.acquire("b")  # other clients have their own bucket


def test_idle_clients_are_evicted_past_max_clients() -> None:
    clock = FakeTime()
    limiter = RateLimiter(1, clock=clock, max_clients=2)
    limiter.acquire("a")
    limiter.acquire("b")
    limiter.acquire("c")  # evicts "a", the least recently seen
    limiter.acquire("a")  # a fresh bucket again
    with pytest.raises(ApiError):
        limiter.acquire("c")


@pytest.mark.parametrize(
    ("headers", "expected_prefix"),
    [
        ({"Authorization": "Bearer secret", "X-Client-ID": "router"}, "token:"),
        ({"X-Client-ID": "router"}, "client:router"),
        ({}, "ip:10.1.2.3"),
    ],
)
def test_client_key_prefers_token_then_client_id_then_ip(headers: dict[str, str], expected_prefix: str) -> None:
    app = Flask(__name__)
    with app.test_request_context("/predict", headers=headers, environ_base={"REMOTE_ADDR": "10.1.2.3"}):
        from flask import request

        key = client_key(request)
    assert key.startswith(expected_prefix)
    assert "secret" not in key
