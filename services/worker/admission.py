"""Admission by cost: what one request may cost (413) and what one client may have outstanding (429).

A request count says nothing about the work behind it: one pseudo-log-likelihood batch at the
allowed limits costs hours of CPU while a short embedding costs milliseconds. A kind that knows
its costs (the masked-LM workers count residues × forward passes) calls :func:`charge` once it
has parsed a request; the runtime opened a :class:`Ticket` for the request, which refuses it

* with 413 PAYLOAD_TOO_LARGE when the request alone costs more than ``per_request``, and
* with 429 RATE_LIMITED when the client's requests still in flight would then cost more than
  ``per_client`` (``Retry-After``: when enough of its work should be done at the measured rate),

and gives the client's share back when the request ends. Fairness between admitted requests is
the batcher's job (:mod:`services.worker.batching`); this bounds what one request or one client
can put in the queue at all. Outside a request with a ticket (a model used as a library, a kind
without budgets) :func:`charge` does nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flask import g, has_request_context

from services.common.envelope import ApiError, ErrorCode

_RETRY_MIN_S, _RETRY_MAX_S, _RETRY_DEFAULT_S = 1.0, 600.0, 5.0
_RATE_SMOOTHING = 0.3  # weight of the newest request in the measured cost per second


class CostBudget:
    """The limits of one worker and the cost each client has in flight."""

    def __init__(
        self, per_request: float, per_client: float, unit: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_request <= 0 or per_client < per_request:
            raise ValueError(f"need 0 < per_request <= per_client, got {per_request} and {per_client}")
        self.per_request, self.per_client, self.unit = per_request, per_client, unit
        self._clock = clock
        self._lock = threading.Lock()
        self._outstanding: dict[str, float] = {}
        self._rate: float | None = None  # cost units served per second, measured on finished requests

    def outstanding(self, client: str) -> float:
        with self._lock:
            return self._outstanding.get(client, 0.0)

    def info(self) -> dict[str, float | str]:
        return {"max_request_cost": self.per_request, "max_client_cost": self.per_client, "cost_unit": self.unit}

    @contextmanager
    def ticket(self, client: str) -> Iterator[Ticket]:
        """The request's ticket for the body of the ``with``; its charges are given back at the end."""
        ticket = Ticket(self, client, self._clock())
        try:
            yield ticket
        finally:
            ticket.release()

    def _take(self, client: str, cost: float, already: float, what: str) -> None:
        if already + cost > self.per_request:
            raise ApiError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"{what} costs {already + cost:,.0f} {self.unit}; one request may cost at most "
                f"{self.per_request:,.0f}: send fewer or shorter sequences, or split the batch",
            )
        with self._lock:
            held = self._outstanding.get(client, 0.0)
            if held + cost > self.per_client:
                raise ApiError(
                    ErrorCode.RATE_LIMITED,
                    f"{what} costs {cost:,.0f} {self.unit} and your requests in flight already cost {held:,.0f}; "
                    f"a client may have at most {self.per_client:,.0f} in flight: retry when they finish",
                    retry_after=self._retry_after(held + cost - self.per_client),
                )
            self._outstanding[client] = held + cost

    def _give_back(self, client: str, cost: float, seconds: float) -> None:
        with self._lock:
            left = self._outstanding.get(client, 0.0) - cost
            if left > 1e-9:
                self._outstanding[client] = left
            else:
                self._outstanding.pop(client, None)
            if cost > 0 and seconds > 0:
                rate = cost / seconds
                self._rate = rate if self._rate is None else (1 - _RATE_SMOOTHING) * self._rate + _RATE_SMOOTHING * rate

    def _retry_after(self, excess: float) -> float:
        if self._rate is None:
            return _RETRY_DEFAULT_S
        return min(_RETRY_MAX_S, max(_RETRY_MIN_S, excess / self._rate))


class Ticket:
    """One request's charges against the budget (see :func:`charge`)."""

    def __init__(self, budget: CostBudget, client: str, opened: float) -> None:
        self.budget, self.client, self.opened = budget, client, opened
        self.cost = 0.0

    def charge(self, cost: float, what: str) -> None:
        self.budget._take(self.client, cost, self.cost, what)
        self.cost += cost

    def release(self) -> None:
        if self.cost:
            self.budget._give_back(self.client, self.cost, self.budget._clock() - self.opened)
            self.cost = 0.0


def open_ticket(ticket: Ticket) -> None:
    """Make ``ticket`` the current request's (the runtime's guard does this)."""
    g.cost_ticket = ticket


def charge(cost: float, what: str = "this request") -> None:
    """Count ``cost`` against the current request's budget; raise 413/429 when it does not fit.

    Call it after validating the input and before doing the work. A no-op outside a request
    that has a ticket, so models stay usable as libraries and kinds without budgets pay nothing.
    """
    if has_request_context():
        ticket = g.get("cost_ticket")
        if ticket is not None:
            ticket.charge(cost, what)
