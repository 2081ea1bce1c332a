"""Who may use FlashDock: a password (stored hashed, compared in constant time, rate-limited) or a proxy's user.

FlashDock acts with the registry token (drain, uploads, jobs, activation), so anyone who reaches it
acts as the operator. It binds to loopback by default (:mod:`flashdock.__main__`); anyone else must
log in, with either

- ``FLASHDOCK_PASSWORD_HASH`` (``pbkdf2_sha256$<iterations>$<salt>$<hash>``, made by
  ``python -m flashdock --hash-password``) or ``FLASHDOCK_PASSWORD`` (hashed once at start; both
  also as ``*_FILE``), or
- ``FLASHDOCK_TRUSTED_USER_HEADER``: the header a reverse proxy in front of an identity provider sets
  (oauth2-proxy's ``X-Forwarded-User``, for example). Trust it only when FlashDock is reachable
  through that proxy alone, i.e. bound to loopback behind it.

Failed passwords are limited per client address and overall, so guessing is slow for one client and
for many.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field

ITERATIONS = 240_000
MAX_FAILURES = 5  # per client address per window
MAX_FAILURES_ALL = 50  # all clients together per window
WINDOW_S = 300.0


def hash_password(password: str, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """``pbkdf2_sha256$iterations$salt$hash`` (base64): what ``FLASHDOCK_PASSWORD_HASH`` holds."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"pbkdf2_sha256${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(stored: str, password: str) -> bool:
    """Constant-time check of ``password`` against a :func:`hash_password` string (False when malformed)."""
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        expected = base64.b64decode(digest)
        given = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(expected, given)


@dataclass
class FailureLimiter:
    """Failed logins per client address and overall within a sliding window (thread-safe, in memory)."""

    per_client: int = MAX_FAILURES
    overall: int = MAX_FAILURES_ALL
    window_s: float = WINDOW_S
    _by_client: dict[str, deque[float]] = field(default_factory=dict)
    _all: deque[float] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _trim(self, times: deque[float], now: float) -> None:
        while times and now - times[0] > self.window_s:
            times.popleft()

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again (0: now)."""
        now = time.monotonic()
        with self._lock:
            mine = self._by_client.get(client, deque())
            self._trim(mine, now)
            self._trim(self._all, now)
            waits = []
            if len(mine) >= self.per_client:
                waits.append(self.window_s - (now - mine[0]))
            if len(self._all) >= self.overall:
                waits.append(self.window_s - (now - self._all[0]))
            return max(waits, default=0.0)

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._by_client.setdefault(client, deque()).append(now)
            self._all.append(now)
            if len(self._by_client) > 10_000:  # bounded memory under a spray of addresses
                self._by_client.pop(next(iter(self._by_client)))

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._by_client.pop(client, None)
