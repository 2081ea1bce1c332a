"""What one Router call carries while it runs, and what it hands back.

Kept apart from the routing rules so :mod:`services.client.router` reads as the rules only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.client.discovery import Snapshot
from services.client.errors import Attempt, DeadlineExceeded
from services.common.instance import Instance


@dataclass(frozen=True)
class CallResult:
    """A successful answer and who gave it."""

    service: str
    instance: str
    base_url: str
    model: str
    attempts: int  # HTTP tries made, this one included
    fallback_used: bool
    latency_s: float  # the whole call, retries included
    status_code: int
    data: Any  # the envelope's ``data`` (the whole body when it is not an envelope)
    body: Any
    request_id: str
    stale: bool = False  # the instance came from a cache no registry could confirm
    panic: bool = False  # picked in panic mode (too few healthy instances)
    tried: tuple[Attempt, ...] = field(default=(), repr=False)

    @property
    def latency_ms(self) -> float:
        return self.latency_s * 1000.0


@dataclass
class CallState:
    """The state of one call: its deadline, what was tried, and the record of every try."""

    target: str
    method: str
    path: str
    idempotent: bool
    request_id: str
    started: float
    ends: float
    kwargs: dict[str, Any]
    try_timeout_s: float | None = None  # one try's read timeout; None = the rest of the deadline
    attempts: list[Attempt] = field(default_factory=list)
    tried: set[str] = field(default_factory=set)
    tries: int = 0
    budget_spent: bool = False  # a retry was refused by the retry budget

    def record(self, service: str, inst: Instance | None, outcome: str, **fields: Any) -> Attempt:
        """Note one try (or one chain link with nothing to try); ``service`` is the chain link."""
        attempt = Attempt(
            inst.service_name if inst else service,
            inst.instance_id if inst else None,
            inst.base_url if inst else None,
            outcome,
            fallback=service != self.target,
            **fields,
        )
        self.attempts.append(attempt)
        return attempt

    def begin_try(self, instance_id: str, now: float) -> float:
        """Count one try on ``instance_id``; the seconds it may wait (raises once the deadline has passed)."""
        remaining = self.ends - now
        if remaining <= 0:
            raise self.deadline_error(now)
        self.tried.add(instance_id)
        self.tries += 1
        return remaining if self.try_timeout_s is None else min(remaining, self.try_timeout_s)

    def deadline_error(self, now: float) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"{self.method} {self.path} to {self.target}: deadline of {self.ends - self.started:.3f}s passed "
            f"after {now - self.started:.3f}s and {self.tries} tries",
            target=self.target,
            attempts=self.attempts,
        )

    def result(
        self, link: str, inst: Instance, snap: Snapshot, panic: bool, status: int, body: Any, now: float
    ) -> CallResult:
        """``link`` is the chain entry (service or capability) that found ``inst``."""
        data = body.get("data") if isinstance(body, dict) and "success" in body else body
        model = data.get("model") if isinstance(data, dict) and isinstance(data.get("model"), str) else None
        return CallResult(
            service=inst.service_name,
            instance=inst.instance_id,
            base_url=inst.base_url,
            model=model or (inst.models[0] if inst.models else inst.service_name),
            attempts=self.tries,
            fallback_used=link != self.target,
            latency_s=now - self.started,
            status_code=status,
            data=data,
            body=body,
            request_id=self.request_id,
            stale=snap.stale,
            panic=panic,
            tried=tuple(self.attempts),
        )


def census(snap: Snapshot) -> str:
    """'3 instance(s): 2 critical, 1 maintenance; ...' (or why there are none)."""
    if not snap.instances:
        return "no instances registered" + (f" (stale cache: {snap.error})" if snap.stale else "")
    counts: dict[str, int] = {}
    for inst in snap.instances:
        counts[inst.status] = counts.get(inst.status, 0) + 1
    states = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return f"{len(snap.instances)} instance(s): {states}; none usable (tried, ejected or draining)"
