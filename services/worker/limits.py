"""Admission control: the in-flight limit (503 OVERLOADED) and the per-client rate limit (429).

Both refuse immediately instead of queueing, so a Router can retry on another instance
while this one is busy: the request provably did not run.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flask import Request

from services.common.auth import bearer_from_header
from services.common.client_tokens import ClientTokens
from services.common.envelope import ApiError, ErrorCode

# How long a refused client is told to wait before retrying an overloaded worker.
OVERLOADED_RETRY_AFTER_S = 1.0


class InflightLimiter:
    """Counts requests being served and refuses new ones past ``limit``."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"max in-flight must be at least 1, got {limit}")
        self.limit = limit
        self._count = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)

    @property
    def inflight(self) -> int:
        return self._count

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one slot for the body of the ``with``; raise OVERLOADED when none is free."""
        with self._lock:
            if self._count >= self.limit:
                raise ApiError(
                    ErrorCode.OVERLOADED,
                    f"{self._count} requests in flight (limit {self.limit}); retry on another instance",
                    retry_after=OVERLOADED_RETRY_AFTER_S,
                )
            self._count += 1
        try:
            yield
        finally:
            with self._lock:
                self._count -= 1
                if self._count == 0:
                    self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is in flight (drain); False when ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._count > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True


class RateLimiter:
    """A token bucket per client: ``per_minute`` requests, refilled continuously.

    A client may burst a full minute's allowance, then gets one request every
    ``60 / per_minute`` seconds. Buckets of idle clients are evicted (LRU) past ``max_clients``
    so a scan of many client ids cannot grow memory without bound.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        if per_minute < 1:
            raise ValueError(f"rate limit must be at least 1 per minute, got {per_minute}")
        self.per_minute = per_minute
        self._capacity = float(per_minute)
        self._refill_per_s = per_minute / 60.0
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)
        self._lock = threading.Lock()

    def acquire(self, client: str) -> None:
        """Take one token for ``client`` or raise RATE_LIMITED with the wait in Retry-After."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.pop(client, (self._capacity, now))
            tokens = min(self._capacity, tokens + (now - at) * self._refill_per_s)
            if tokens < 1.0:
                self._buckets[client] = (tokens, now)
                wait = (1.0 - tokens) / self._refill_per_s
                raise ApiError(
                    ErrorCode.RATE_LIMITED,
                    f"rate limit of {self.per_minute} requests/min exceeded; retry in {wait:.1f}s",
                    retry_after=wait,
                )
            self._buckets[client] = (tokens - 1.0, now)
            while len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)


def client_key(req: Request, tokens: ClientTokens | None = None) -> str:
    """Who a request counts against: a verified client, else the peer's network.

    A bearer token counts only when the operator issued it (``tokens``); its holder may name
    sub-clients with ``X-Client-ID`` (FlashDock's users, a pipeline's jobs). Anyone else is keyed
    on the address the connection came from, so rotating a header or a made-up token cannot
    escape the limit, and spoofing another client's id cannot exhaust theirs. IPv6 peers count
    per /64: one host usually holds a whole /64 and could rotate addresses inside it.
    """
    name = tokens.verify(bearer_from_header(req.headers.get("Authorization", ""))) if tokens is not None else None
    if name is not None:
        sub = req.headers.get("X-Client-ID", "").strip()[:128]
        return f"client:{name}" + (f"/{sub}" if sub else "")
    return "ip:" + peer_network(req.remote_addr or "")


def peer_network(address: str) -> str:
    """The peer as a rate-limit key: an IPv4 address (mapped ones unwrapped) or an IPv6 /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
