"""Bearer tokens: the one check of a shared token, and the registry's two roles (operator, worker).

Tokens are compared in constant time so they cannot be timed out byte by byte.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import IntEnum

from flask import Blueprint, request

from services.common.envelope import ApiError, ErrorCode


def bearer_token() -> str:
    """The token of the current request's ``Authorization: Bearer`` header, or ''."""
    return bearer_from_header(request.headers.get("Authorization", ""))


def bearer_from_header(header: str) -> str:
    """The token of an ``Authorization`` header value (``Bearer <token>``), or ''."""
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def token_matches(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())


def require_token(expected: str) -> None:
    """Raise 401 UNAUTHORIZED unless the request carries ``expected`` (no-op when unset)."""
    if not expected:
        return
    given = bearer_token()
    if not given:
        raise ApiError(ErrorCode.UNAUTHORIZED, "this call needs 'Authorization: Bearer <token>'")
    if not token_matches(expected, given):
        raise ApiError(ErrorCode.UNAUTHORIZED, "invalid token")


WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def guard_writes(bp: Blueprint, expected: str, *, open_endpoints: frozenset[str] = frozenset()) -> None:
    """Every mutating call on ``bp`` needs ``expected`` (reads, and ``open_endpoints``, stay open to all)."""

    @bp.before_request
    def _writes_need_the_token() -> None:
        if request.method in WRITE_METHODS and request.endpoint not in open_endpoints:
            require_token(expected)


class Role(IntEnum):
    """What a registry caller may do; a higher role may do everything a lower one may."""

    WORKER = 1  # register new instances; renew, drain and remove the ones it holds the secret of
    OPERATOR = 2  # anything, on any instance (drain, deregister, take over)


@dataclass(frozen=True)
class Credentials:
    """The tokens a registry is configured with.

    ``shared`` is the single ``--token`` of earlier versions: it stands in for whichever of the
    two roles has no token of its own, so a registry started with ``--token T`` alone still lets
    every holder of T do anything (the drain button included). A role with no token at all
    matches nothing, unless no token is configured anywhere: then every caller is an operator
    (the single-machine default; README_SERVICES.md "Security model" says what that leaves open).
    """

    operator: str = ""
    worker: str = ""
    shared: str = ""

    @property
    def open(self) -> bool:
        return not (self.operator or self.worker or self.shared)

    def role_of(self, given: str) -> Role | None:
        """The role a bearer token grants, or None for a token that matches none."""
        if self.open:
            return Role.OPERATOR
        operator = self.operator or self.shared
        worker = self.worker or self.shared
        if given and operator and token_matches(operator, given):
            return Role.OPERATOR
        if given and worker and token_matches(worker, given):
            return Role.WORKER
        return None

    def require(self, header: str) -> Role:
        """The caller's role from an ``Authorization`` header value; 401 UNAUTHORIZED when it has none."""
        given = bearer_from_header(header)
        role = self.role_of(given)
        if role is None:
            if not given:
                raise ApiError(ErrorCode.UNAUTHORIZED, "this call needs 'Authorization: Bearer <token>'")
            raise ApiError(ErrorCode.UNAUTHORIZED, "invalid token")
        return role
