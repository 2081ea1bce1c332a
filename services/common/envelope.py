"""The one JSON envelope every registry and worker response uses, and its error codes.

Handlers raise :class:`ApiError`; :func:`install_envelope` turns it (and every Werkzeug
HTTP error, and any unexpected exception) into an envelope with the right status code, so
no route ever answers a bare HTML error page or a traceback.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import uuid
from enum import StrEnum
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from services.common.clock import iso_utc, utc_now

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
# Minted ids: a random per-process prefix plus a counter. uuid4 reads os.urandom on every
# request and showed up as 4 % of the registry's heartbeat profile.
_ID_PREFIX = uuid.uuid4().hex[:12]
_ID_COUNTER = itertools.count(1)
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class ErrorCode(StrEnum):
    """Machine-readable error codes and the HTTP status each one maps to."""

    INVALID_REQUEST = "INVALID_REQUEST"
    INVALID_STRUCTURE = "INVALID_STRUCTURE"
    INVALID_SEQUENCE = "INVALID_SEQUENCE"
    INVALID_SMILES = "INVALID_SMILES"
    SEQUENCE_TOO_LONG = "SEQUENCE_TOO_LONG"
    UNAUTHORIZED = "UNAUTHORIZED"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    CONFLICT = "CONFLICT"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    RATE_LIMITED = "RATE_LIMITED"
    PREDICTION_FAILED = "PREDICTION_FAILED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    MODEL_NOT_LOADED = "MODEL_NOT_LOADED"
    OVERLOADED = "OVERLOADED"

    @property
    def status(self) -> int:
        return _STATUS[self]


_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.INVALID_STRUCTURE: 400,
    ErrorCode.INVALID_SEQUENCE: 400,
    ErrorCode.INVALID_SMILES: 400,
    ErrorCode.SEQUENCE_TOO_LONG: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.CONFLICT: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.PREDICTION_FAILED: 500,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.MODEL_NOT_LOADED: 503,
    ErrorCode.OVERLOADED: 503,
}

# Werkzeug's HTTP errors mapped onto our codes (anything else 4xx is INVALID_REQUEST).
_HTTP_TO_CODE: dict[int, ErrorCode] = {
    401: ErrorCode.UNAUTHORIZED,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    429: ErrorCode.RATE_LIMITED,
}


class ApiError(Exception):
    """An error a handler wants the client to see, with its code and details."""

    def __init__(
        self,
        code: ErrorCode,
        details: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code.value}: {details}")
        self.code = code
        self.details = details
        self.status = status or code.status
        self.retry_after = retry_after
        self.extra = extra or {}


def current_request_id() -> str:
    """The id of the request being served (echoed from X-Request-ID or minted)."""
    rid = g.get("request_id")
    if rid is None:
        rid = _incoming_request_id()
        g.request_id = rid
    return rid


def _incoming_request_id() -> str:
    rid = request.headers.get(REQUEST_ID_HEADER, "")
    return rid if REQUEST_ID_RE.match(rid) else new_request_id()


def new_request_id() -> str:
    """A process-unique request id (random prefix + counter)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"


def envelope(
    data: Any = None,
    message: str = "ok",
    *,
    success: bool = True,
    error: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Build the envelope dict: the request's id, ``request_id`` when given (a WSGI path before Flask),
    else one minted (outside a request)."""
    rid = request_id
    if rid is None:
        try:
            rid = current_request_id()
        except RuntimeError:  # outside an application context
            rid = new_request_id()
    return {
        "success": success,
        "message": message,
        "data": data if data is not None else ({} if success else None),
        "error": error,
        "timestamp": iso_utc(utc_now()),
        "request_id": rid,
    }


def envelope_schema(error: dict[str, Any], timestamp: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI schema of the envelope above, for the registry's and the workers' documents."""
    return {
        "type": "object",
        "required": ["success", "message", "data", "error", "timestamp", "request_id"],
        "properties": {
            "success": {"type": "boolean"},
            "message": {"type": "string"},
            "data": {},
            "error": error,
            "timestamp": timestamp,
            "request_id": {"type": "string"},
        },
    }


def ok(data: Any = None, message: str = "ok", status: int = 200, headers: dict | None = None) -> Response:
    """A success response in the envelope."""
    resp = jsonify(envelope(data, message))
    resp.status_code = status
    for key, value in (headers or {}).items():
        resp.headers[key] = str(value)
    return resp


def ok_raw(data_json: str, message: str, headers: dict | None = None) -> Response:
    """A success envelope around ``data`` that is already serialised (shared watch answers)."""
    head = envelope(None, message)
    del head["data"]
    body = json.dumps(head, separators=(",", ":"))[:-1] + ',"data":' + data_json + "}"
    resp = Response(body, status=200, mimetype="application/json")
    for key, value in (headers or {}).items():
        resp.headers[key] = str(value)
    return resp


def error_envelope(err: ApiError, request_id: str | None = None) -> dict[str, Any]:
    """The envelope dict of an error (``request_id`` as in :func:`envelope`)."""
    error = {"code": err.code.value, "details": err.details, **err.extra}
    return envelope(None, err.details, success=False, error=error, request_id=request_id)


def error_response(err: ApiError) -> Response:
    """An error response in the envelope; 503/429 carry Retry-After."""
    resp = jsonify(error_envelope(err))
    resp.status_code = err.status
    if err.retry_after is not None:
        resp.headers["Retry-After"] = str(max(1, round(err.retry_after)))
    return resp


def http_error_response(err: HTTPException) -> Response:
    """A Werkzeug HTTP error (404, 405, 413, ...) as an envelope."""
    status = err.code or 500
    code = _HTTP_TO_CODE.get(status, ErrorCode.INVALID_REQUEST if status < 500 else ErrorCode.INTERNAL_ERROR)
    resp = error_response(ApiError(code, err.description or err.name, status=status))
    if status == 405 and getattr(err, "valid_methods", None):
        resp.headers["Allow"] = ", ".join(err.valid_methods)
    return resp


def install_envelope(app: Flask) -> None:
    """Make every error of ``app`` an envelope and echo the request id on every response."""

    @app.before_request
    def _assign_request_id() -> None:
        g.request_id = _incoming_request_id()

    @app.after_request
    def _echo_request_id(resp: Response) -> Response:
        rid = g.get("request_id")
        if rid:
            resp.headers[REQUEST_ID_HEADER] = rid
        return resp

    @app.errorhandler(ApiError)
    def _api_error(err: ApiError) -> Response:
        return error_response(err)

    app.register_error_handler(HTTPException, http_error_response)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(ApiError(ErrorCode.INTERNAL_ERROR, f"internal error: {type(err).__name__}"))


def json_body(max_bytes: int | None = None) -> dict[str, Any]:
    """The request's JSON object, or an INVALID_REQUEST / PAYLOAD_TOO_LARGE error.

    An empty body counts as ``{}`` so optional-body calls (heartbeat) accept it.
    """
    length = request.content_length
    if max_bytes is not None and length is not None and length > max_bytes:
        raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, f"body of {length} bytes exceeds the {max_bytes}-byte limit")
    raw = request.get_data(cache=True)
    if max_bytes is not None and len(raw) > max_bytes:
        raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, f"body exceeds the {max_bytes}-byte limit")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"malformed JSON body: {exc}") from None
    except RecursionError:  # the decoder recursed past Python's limit: a 400, not a 500
        raise ApiError(ErrorCode.INVALID_REQUEST, "the JSON body nests too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(ErrorCode.INVALID_REQUEST, "the JSON body must be an object")
    return body
