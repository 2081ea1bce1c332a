"""The in-flight limiter and the token-bucket rate limiter, without HTTP."""

from __future__ import annotations

import os
import threading

import pytest
from flask import Flask

from services.common.client_tokens import ClientTokens, token_hash
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


@pytest.fixture
def issued(tmp_path) -> tuple[ClientTokens, str]:
    """A tokens file with one client, ``lab``, and its token."""
    token = "lab-token-0123456789"
    path = tmp_path / "tokens"
    path.write_text(f"# issued by the operator\nlab:{token_hash(token)}\n")
    return ClientTokens(path), token


def _key(headers: dict[str, str], tokens: ClientTokens | None, addr: str = "10.1.2.3") -> str:
    app = Flask(__name__)
    with app.test_request_context("/predict", headers=headers, environ_base={"REMOTE_ADDR": addr}):
        from flask import request

        return client_key(request, tokens)


def test_only_an_issued_token_is_an_identity_and_only_its_holder_names_sub_clients(issued) -> None:
    tokens, token = issued
    assert _key({"Authorization": f"Bearer {token}"}, tokens) == "client:lab"
    assert _key({"Authorization": f"Bearer {token}", "X-Client-ID": "ana"}, tokens) == "client:lab/ana"
    # Anyone else is the peer address, whatever header or made-up token they send.
    for headers in ({}, {"X-Client-ID": "lab"}, {"Authorization": "Bearer guess", "X-Client-ID": "x"}):
        assert _key(headers, tokens) == "ip:10.1.2.3"
        assert _key(headers, None) == "ip:10.1.2.3"
    assert token not in _key({"Authorization": f"Bearer {token}"}, tokens)


def test_peers_key_on_ipv4_or_an_ipv6_slash_64() -> None:
    assert _key({}, None, "::ffff:10.0.0.7") == "ip:10.0.0.7"
    assert _key({}, None, "2001:db8:1:2:aaaa::1") == _key({}, None, "2001:db8:1:2:ffff::9") == "ip:2001:db8:1:2::/64"
    assert _key({}, None, "2001:db8:1:3::1") != _key({}, None, "2001:db8:1:2::1")


def test_a_revoked_token_stops_counting_once_the_file_changes(tmp_path) -> None:
    now = [0.0]
    path = tmp_path / "tokens"
    path.write_text(f"lab:{token_hash('t-1')}\n")
    tokens = ClientTokens(path, clock=lambda: now[0])
    assert tokens.verify("t-1") == "lab" and tokens.verify("t-2") is None
    path.write_text(f"ops:{token_hash('t-2')}\n")
    os.utime(path, ns=(1, 10**18))  # a new modification time, whatever the file system's resolution
    now[0] += 2
    assert tokens.verify("t-1") is None and tokens.verify("t-2") == "ops"
    path.write_text("not a token line\n")
    os.utime(path, ns=(1, 2 * 10**18))
    now[0] += 2
    assert tokens.verify("t-2") == "ops"  # a broken file keeps the last good list
    with pytest.raises(ValueError, match="NAME:SHA256"):
        ClientTokens(path)
