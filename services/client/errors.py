"""The client's own exceptions: every failure names what was tried, so nobody has to guess.

Transport errors from ``requests`` never leave the client raw: the Router records each one as
an :class:`Attempt` and raises one of the types below (requests' ``adapters.send`` does the same
translation at its own boundary).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Attempt:
    """One try of one call on one instance (or one service that had nothing to try)."""

    service: str
    instance_id: str | None
    base_url: str | None
    outcome: str  # ok | refused | connect-timeout | read-timeout | connection-lost | http-<status> | no-instance
    status: int | None = None
    code: str | None = None  # the envelope's error code, when the worker answered one
    details: str = ""
    elapsed_s: float = 0.0
    reached: bool = False  # whether the request may have run on the worker
    fallback: bool = False  # made on a fallback of the chain, not on the call's own target

    def describe(self) -> str:
        where = self.instance_id or "-"
        text = f"{self.service}/{where}: {self.outcome}"
        if self.code:
            text += f" {self.code}"
        if self.details:
            text += f" ({self.details[:120]})"
        return text


class ClientError(Exception):
    """Base of every error the client raises; carries the call's target and its attempts."""

    def __init__(self, message: str, *, target: str = "", attempts: Sequence[Attempt] = ()) -> None:
        super().__init__(message)
        self.target = target
        self.attempts: list[Attempt] = list(attempts)

    @property
    def tried(self) -> list[str]:
        """``service/instance: outcome`` for every attempt, in order."""
        return [a.describe() for a in self.attempts]

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}; tried: {'; '.join(self.tried)}" if self.attempts else base


class RegistryUnavailable(ClientError):
    """No registry answered and nothing is cached for the query."""


class NoInstanceAvailable(ClientError):
    """No service of the chain had an instance that could be picked (none, all draining, ...)."""

    def __init__(self, message: str, *, target: str = "", services: Sequence[str] = (), attempts=()) -> None:
        super().__init__(message, target=target, attempts=attempts)
        self.services = list(services)


class AllAttemptsFailed(ClientError):
    """Instances were tried and none answered successfully (or retrying was not allowed)."""

    def __init__(self, message: str, *, target: str = "", attempts: Sequence[Attempt] = (), reason: str = "") -> None:
        super().__init__(message, target=target, attempts=attempts)
        self.reason = reason

    @property
    def last(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None


class DeadlineExceeded(ClientError):
    """The call's deadline passed before any instance answered."""


class RequestFailed(ClientError):
    """A worker answered with an error that retrying cannot fix (400, 404, 413, ...).

    The answer is final: the request was understood and refused, so it is neither retried
    nor sent to a fallback service.
    """

    def __init__(
        self,
        message: str,
        *,
        target: str = "",
        attempts: Sequence[Attempt] = (),
        status: int,
        code: str | None,
        details: str,
        body: Any = None,
    ) -> None:
        super().__init__(message, target=target, attempts=attempts)
        self.status = status
        self.code = code
        self.details = details
        self.body = body
