"""Bearer-token check for mutating calls (constant-time, so the token cannot be timed out)."""

from __future__ import annotations

import hmac

from flask import request

from services.common.envelope import ApiError, ErrorCode


def bearer_token() -> str:
    """The token of the current request's ``Authorization: Bearer`` header, or ''."""
    header = request.headers.get("Authorization", "")
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
