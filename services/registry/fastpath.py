"""A WSGI fast path for the one call that dominates the registry's load: the heartbeat.

With 10,000 workers beating every 5 s the registry answers 2,000 heartbeats a second, and
Flask's request machinery (routing, request/response objects, hooks) was about a fifth of
each one's CPU. This middleware answers the plain success case itself: a PUT to
``/api/v1/services/<id>/heartbeat`` with the right token, a small valid JSON body and a known
id, sent by its owner (:mod:`services.registry.ownership`). Anything else — a bad token or
secret, bad or too deeply nested JSON, an unknown id, a chunked body — is handed to the Flask
app untouched (the body re-wound), so every error keeps its one envelope and code.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from services.common.auth import bearer_from_header
from services.common.clock import iso_utc, utc_now
from services.common.envelope import REQUEST_ID_RE, ApiError, new_request_id
from services.common.instance import HEALTH_STATES, INSTANCE_ID_RE, validate_load
from services.registry.ownership import SECRET_RE, Caller
from services.registry.store import StoreUnavailable

PREFIX = "/api/v1/services/"
SUFFIX = "/heartbeat"
ROUTE = "/api/v1/services/<iid:instance_id>/heartbeat"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class HeartbeatFastPath:
    """Wraps the Flask ``wsgi_app``; see the module docstring for what it serves."""

    def __init__(self, app: WSGIApp, state: Any, max_body: int) -> None:
        self.app = app
        self.state = state
        self.max_body = max_body
        metrics = state.metrics
        self._requests_ok = metrics.requests.labels(route=ROUTE, method="PUT", code="200")
        self._latency = metrics.latency.labels(route=ROUTE)
        self._beats_ok = metrics.heartbeats.labels(result="ok")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") == "PUT" and path.startswith(PREFIX) and path.endswith(SUFFIX):
            answer = self._serve(environ, path[len(PREFIX) : -len(SUFFIX)])
            if answer is not None:
                headers, body = answer
                start_response("200 OK", headers)
                return [body]
        return self.app(environ, start_response)

    def _serve(self, environ: dict[str, Any], instance_id: str) -> tuple[list[tuple[str, str]], bytes] | None:
        started = time.perf_counter()
        st = self.state
        if not INSTANCE_ID_RE.match(instance_id) or instance_id == "register":
            return None
        role = st.credentials.role_of(bearer_from_header(environ.get("HTTP_AUTHORIZATION", "")))
        if role is None:
            return None
        secret = environ.get("HTTP_X_INSTANCE_SECRET")
        if secret is not None and not SECRET_RE.match(secret):
            return None  # Flask answers the 400
        caller = Caller(role, secret or "")
        body = _read_body(environ, self.max_body)
        if body is None:
            return None
        status, load = body.get("status"), body.get("load")
        if status is not None and status not in HEALTH_STATES:
            return None
        if load is not None:
            try:
                load = validate_load(load)
            except ApiError:
                return None
        try:
            inst = st.catalog.heartbeat(instance_id, status, load, caller)
        except StoreUnavailable:
            return None  # Flask answers the 503 (the store fails fast the second time)
        except ApiError:
            return None  # not the owner: Flask answers the 401
        if inst is None:
            return None  # Flask answers the 404 that tells the worker to register again
        rid = environ.get("HTTP_X_REQUEST_ID", "")
        if not REQUEST_ID_RE.match(rid):
            rid = new_request_id()
        data = {
            "instance_id": instance_id,
            "status": inst.status,
            "heartbeat_interval_s": st.settings.heartbeat_interval,
        }
        envelope = {
            "success": True,
            "message": "ok",
            "data": data,
            "error": None,
            "timestamp": inst.last_heartbeat or iso_utc(utc_now()),
            "request_id": rid,
        }
        payload = json.dumps(envelope, separators=(",", ":")).encode()
        self._beats_ok.inc()
        self._requests_ok.inc()
        self._latency.observe(time.perf_counter() - started)
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload))), ("X-Request-ID", rid)]
        return headers, payload


def _read_body(environ: dict[str, Any], max_body: int) -> dict[str, Any] | None:
    """The JSON object of the body, or None (with the body re-wound for Flask) if it is not plain."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length == 0:
        return {} if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower() else None
    if length > max_body:
        return None
    raw = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(raw)  # Flask can still read it if we hand over
    try:
        body = json.loads(raw)  # only status and load are kept, both validated flat (no depth to bound)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None  # Flask answers the 400
    return body if isinstance(body, dict) else None
