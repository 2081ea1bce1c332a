"""Time sources, injectable so health logic can be tested with fake time."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Wall time for display and monotonic time for every TTL computation."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that only moves when a test calls :meth:`advance`."""

    def __init__(self, start: datetime | None = None) -> None:
        self._wall = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 1000.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._wall

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._mono += seconds
            self._wall += timedelta(seconds=seconds)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_utc(ts: datetime | None) -> str | None:
    """ISO 8601 UTC with a ``Z`` suffix and millisecond precision (DESIGN contract)."""
    if ts is None:
        return None
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def iso_utc_offset(ts: datetime | None) -> str | None:
    """ISO 8601 with ``+00:00``: older clients of the compat API cannot parse ``Z``."""
    if ts is None:
        return None
    return ts.astimezone(UTC).isoformat()


def parse_iso(text: str) -> datetime:
    """Parse a timestamp written by :func:`iso_utc` or :func:`iso_utc_offset`."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
