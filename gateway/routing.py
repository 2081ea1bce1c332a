"""The gateway's edge to the Router: the caller's identity going out; who served and what failed coming back.

Every routed call carries the caller's ``Authorization`` (:func:`forwarded`), so a worker's rate
limit and budget count the real caller. Whatever the Router raises becomes the envelope error an
agent can act on (:func:`api_error`): a worker's own code passes through with its status, a missing
service names the capability and the command that starts one.
"""

from __future__ import annotations

from typing import Any

from services.client import (
    AllAttemptsFailed,
    CallResult,
    ClientError,
    DeadlineExceeded,
    NoInstanceAvailable,
    RequestFailed,
)
from services.common.envelope import ApiError, ErrorCode
from services.common.kinds import KIND_FOR_CAPABILITY


def forwarded(authorization: str | None) -> dict[str, str]:
    """The headers that carry the caller's identity to a worker (nothing when the caller sent none)."""
    return {"Authorization": authorization} if authorization else {}


def served_by(result: CallResult) -> dict[str, Any]:
    """Who answered a routed call (DESIGN "Client contract")."""
    return {
        "service": result.service,
        "instance": result.instance,
        "model": result.model,
        "attempts": result.attempts,
        "fallback_used": result.fallback_used,
        "latency_ms": round(result.latency_ms, 3),
    }


def item_failure(results: list[dict[str, Any]], result: CallResult) -> ApiError:
    """Every item failed: the first item's error, with the count, as the call's error."""
    error = results[0].get("error") or {}
    raw = error.get("code")
    code = ErrorCode(raw) if raw in ErrorCode.__members__ else ErrorCode.PREDICTION_FAILED
    details = str(error.get("details") or "failed")
    if len(results) > 1:
        details = f"all {len(results)} items failed on {result.service}; item 0: {details}"
    return ApiError(code, details)


def api_error(exc: ClientError, what: str) -> ApiError:
    """A client error as the envelope error an agent can act on (a worker's own code passes through)."""
    if isinstance(exc, RequestFailed):
        code = ErrorCode(exc.code) if exc.code in ErrorCode.__members__ else _code_for_status(exc.status)
        return ApiError(code, exc.details or str(exc), status=exc.status)
    if isinstance(exc, NoInstanceAvailable):
        return ApiError(
            ErrorCode.MODEL_NOT_LOADED, f"no instance serves capability {what}{start_hint(what)}", retry_after=5
        )
    if isinstance(exc, DeadlineExceeded):
        return ApiError(ErrorCode.OVERLOADED, f"{what}: {exc}", retry_after=2)
    if isinstance(exc, AllAttemptsFailed):
        last = next((a for a in reversed(exc.attempts) if a.status is not None), exc.last)
        if last is not None and last.status == 429:  # the caller's own limit on the worker: say so
            return ApiError(ErrorCode.RATE_LIMITED, f"{what}: {last.details or 'rate limited'}", retry_after=5)
        if last is not None and last.reached and last.code:
            code = ErrorCode(last.code) if last.code in ErrorCode.__members__ else ErrorCode.PREDICTION_FAILED
            return ApiError(code, f"{what}: {exc}")
        return ApiError(ErrorCode.OVERLOADED, f"{what}: {exc}", retry_after=2)
    return ApiError(ErrorCode.OVERLOADED, f"{what}: {exc}", retry_after=2)


def _code_for_status(status: int) -> ErrorCode:
    return {
        401: ErrorCode.UNAUTHORIZED,
        404: ErrorCode.NOT_FOUND,
        409: ErrorCode.CONFLICT,
        413: ErrorCode.PAYLOAD_TOO_LARGE,
    }.get(status, ErrorCode.INVALID_REQUEST)


def start_hint(capability: str) -> str:
    kind = KIND_FOR_CAPABILITY.get(capability)
    return f" (start one: python -m services.worker.launch {kind} --registry URL)" if kind else ""
