"""Error answers the registry's app and its blueprints share.

The native API answers in the envelope (``services.common.envelope``); the compatibility API
under ``/compat/v0`` answers ``{"detail": ...}`` as the registry it replaces did.
"""

from __future__ import annotations

from flask import Response, jsonify, request
from werkzeug.exceptions import HTTPException

from services.common.envelope import ApiError, ErrorCode, error_response, http_error_response
from services.registry.store import StoreUnavailable

COMPAT_PREFIX = "/compat/v0"


def detail_response(detail: object, status: int) -> Response:
    """The old error shape: ``{"detail": ...}`` and the status, no envelope."""
    resp = jsonify({"detail": detail})
    resp.status_code = status
    return resp


def http_detail(err: HTTPException) -> Response:
    return detail_response(err.description or err.name, err.code or 500)


def routing_error(err: HTTPException) -> Response:
    """Errors raised before a blueprint is chosen (unknown path, bad id): old shape under /compat/v0."""
    if request.path.startswith(COMPAT_PREFIX + "/"):
        resp = http_detail(err)
        if resp.status_code == 404 and "/services/" in request.path:
            resp.set_data(b'{"detail":"Service not found"}\n')
        if resp.status_code == 405 and getattr(err, "valid_methods", None):
            resp.headers["Allow"] = ", ".join(err.valid_methods)
        return resp
    return http_error_response(err)


def store_unavailable(err: StoreUnavailable) -> Response:
    """503 + Retry-After: the worker or client moves to another replica (reads still work)."""
    return error_response(ApiError(ErrorCode.OVERLOADED, f"the registry's store is unavailable: {err}", retry_after=1))
