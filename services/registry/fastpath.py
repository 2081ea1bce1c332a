"""A WSGI fast path for the calls that dominate the registry's load: heartbeats and node beats.

With 10,000 workers beating every 5 s the registry answers 2,000 heartbeats a second, and
Flask's request machinery (routing, request/response objects, hooks) was about a fifth of
each one's CPU. This middleware answers the plain success case itself: a PUT to
``/api/v1/services/<id>/heartbeat`` with the right token, a small valid JSON body and a known
id, sent by its owner (:mod:`services.registry.ownership`). Anything else — a bad token or
secret, bad or too deeply nested JSON, an unknown id, a chunked body — is handed to the Flask
app untouched (the body re-wound), so every error keeps its one envelope and code.

A node agent's beat, ``PUT /api/v1/nodes/<node>/heartbeat`` (:mod:`services.registry.node_routes`),
is served the same way: the right token, ``X-Node`` naming the path's node with its
``X-Node-Secret`` (claimed or proved exactly as :func:`services.registry.state.caller` does), no
query string, no ``X-Instance-Secret``, and a small body that :func:`~services.registry.bodies.check_json`
and :func:`~services.registry.nodes.parse_node_beat` accept. Anything else goes to Flask; so does a
claim or a beat that raises (a 409, a store that is down), which Flask then tries again and answers
in the envelope. The one error answered here is the 404 of a node whose lease ran out during the
beat (etcd): handing that to Flask would claim the node again and turn the 404 into a 200, so it is
built here by :func:`~services.common.envelope.error_envelope`, as Flask's error handler does.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from services.common.auth import bearer_from_header
from services.common.clock import iso_utc, utc_now
from services.common.envelope import REQUEST_ID_RE, ApiError, envelope, error_envelope, new_request_id
from services.common.instance import HEALTH_STATES, INSTANCE_ID_RE, validate_load
from services.registry.bodies import check_json
from services.registry.node_routes import node_gone
from services.registry.nodes import MIN_SECRET_CHARS, NODE_RE, parse_node_beat
from services.registry.ownership import NATIVE, SECRET_RE, Caller
from services.registry.store import StoreUnavailable

PREFIX = "/api/v1/services/"
SUFFIX = "/heartbeat"
ROUTE = "/api/v1/services/<iid:instance_id>/heartbeat"
NODE_PREFIX = "/api/v1/nodes/"
NODE_ROUTE = "/api/v1/nodes/<node>/heartbeat"

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
        self._node_ok = metrics.requests.labels(route=NODE_ROUTE, method="PUT", code="200")
        self._node_gone = metrics.requests.labels(route=NODE_ROUTE, method="PUT", code="404")
        self._node_latency = metrics.latency.labels(route=NODE_ROUTE)
        self._node_beats = metrics.heartbeats.labels(result="node")
        self._node_unknown = metrics.heartbeats.labels(result="unknown")
        self._node_removed = metrics.deregistrations.labels(reason="node")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") == "PUT" and path.endswith(SUFFIX):
            answer = None
            if path.startswith(PREFIX):
                answer = self._serve(environ, path[len(PREFIX) : -len(SUFFIX)])
            elif path.startswith(NODE_PREFIX):
                answer = self._serve_node(environ, path[len(NODE_PREFIX) : -len(SUFFIX)])
            if answer is not None:
                status, headers, body = answer
                start_response(status, headers)
                return [body]
        return self.app(environ, start_response)

    def _serve(self, environ: dict[str, Any], instance_id: str) -> tuple[str, list[tuple[str, str]], bytes] | None:
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
        rid = _request_id(environ)
        data = {
            "instance_id": instance_id,
            "status": inst.status,
            "heartbeat_interval_s": st.settings.heartbeat_interval,
        }
        body = {  # the envelope, stamped with the heartbeat's own time
            "success": True,
            "message": "ok",
            "data": data,
            "error": None,
            "timestamp": inst.last_heartbeat or iso_utc(utc_now()),
            "request_id": rid,
        }
        self._beats_ok.inc()
        self._requests_ok.inc()
        self._latency.observe(time.perf_counter() - started)
        return _answer("200 OK", body, rid)

    def _serve_node(self, environ: dict[str, Any], node: str) -> tuple[str, list[tuple[str, str]], bytes] | None:
        """A node agent's plain beat (see the module docstring); None hands the request to Flask."""
        started = time.perf_counter()
        st = self.state
        if not NODE_RE.match(node) or environ.get("QUERY_STRING"):
            return None  # a bad name is Flask's 400; ?take_over= is parsed (and checked) by Flask
        if environ.get("HTTP_X_NODE", "").strip() != node or "HTTP_X_INSTANCE_SECRET" in environ:
            return None  # another node or none (401), or an instance secret Flask checks (400)
        node_secret = environ.get("HTTP_X_NODE_SECRET", "").strip()
        if len(node_secret) < MIN_SECRET_CHARS:
            return None  # Flask answers the 401
        role = st.credentials.role_of(bearer_from_header(environ.get("HTTP_AUTHORIZATION", "")))
        if role is None:
            return None
        body = _read_body(environ, self.max_body)
        if body is None:
            return None
        try:
            items, full = parse_node_beat(body)
        except ApiError:
            return None  # Flask answers the 400 or 413
        try:
            # caller() claims an unheld node, or proves the secret of a held one, before the beat
            st.catalog.claim_node(node, node_secret, Caller(role, via=NATIVE))
            result = st.catalog.node_heartbeat(node, items, full)
        except Exception:  # a 409, a store that is down, anything: Flask runs it again and answers
            return None
        rid = _request_id(environ)
        if result is None:  # the node's lease ran out during the beat: see the module docstring
            self._node_gone.inc()
            self._node_latency.observe(time.perf_counter() - started)
            return _answer("404 NOT FOUND", error_envelope(node_gone(node), rid), rid)
        self._node_beats.inc()
        if result.unknown:
            self._node_unknown.inc(len(result.unknown))
        if result.removed:
            self._node_removed.inc(len(result.removed))
        settings = st.settings
        data = {
            "node": node,
            "heartbeat_interval_s": settings.heartbeat_interval,
            "ttl_s": settings.ttl_s,
            "deregister_after_s": settings.deregister_after,
            "renewed": result.renewed,
            "unknown": result.unknown,
            "removed": result.removed,
        }
        self._node_ok.inc()
        self._node_latency.observe(time.perf_counter() - started)
        return _answer("200 OK", envelope(data, f"{result.renewed} instance(s) renewed", request_id=rid), rid)


def _request_id(environ: dict[str, Any]) -> str:
    rid = environ.get("HTTP_X_REQUEST_ID", "")
    return rid if REQUEST_ID_RE.match(rid) else new_request_id()


def _answer(status: str, envelope: dict[str, Any], rid: str) -> tuple[str, list[tuple[str, str]], bytes]:
    payload = json.dumps(envelope, separators=(",", ":")).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload))), ("X-Request-ID", rid)]
    return status, headers, payload


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
        body = json.loads(raw)
        check_json(body)  # as read_body(): depth and finite numbers anywhere, in keys no route reads too
    except (ValueError, UnicodeDecodeError, RecursionError, ApiError):
        return None  # Flask answers the 400
    return body if isinstance(body, dict) else None
