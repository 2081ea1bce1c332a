"""Compatibility API (/compat/v0) for clients of the registry we replace.

Their calls land in the same catalog under the same rules (stable ids, validation, TTL
expiry, token), but answer in the old shapes: no envelope, ``{"detail": ...}`` on errors, and
timestamps ending in ``+00:00`` because older Python clients cannot parse ``Z``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from services.common.clock import iso_utc_offset, parse_iso, utc_now
from services.common.envelope import ApiError, ErrorCode
from services.common.instance import Instance, parse_registration, validate_service_name
from services.registry.advertise import refuse_loopback_from_afar
from services.registry.bodies import read_body
from services.registry.catalog import Query
from services.registry.errors import detail_response, http_detail
from services.registry.ownership import COMPAT, Caller
from services.registry.state import state


def _caller() -> Caller:
    """A compat client: its token's role, no secret (the old protocol has none); see ownership.py."""
    return Caller(state().credentials.require(request.headers.get("Authorization", "")), via=COMPAT)


compat = Blueprint("registry_compat", __name__)

_STATUS_MAP = {"passing": "healthy", "warning": "healthy", "critical": "unhealthy", "maintenance": "unhealthy"}
_FILTER_MAP = {"healthy": {"passing", "warning"}, "unhealthy": {"critical", "maintenance"}, "unknown": set()}


def _ts(text: str | None) -> str | None:
    return iso_utc_offset(parse_iso(text)) if text else None


def service_info(inst: Instance) -> dict[str, Any]:
    """The old ServiceInfo shape; service_id is our stable instance_id."""
    return {
        "service_name": inst.service_name,
        "service_id": inst.instance_id,
        "host": inst.host,
        "port": inst.port,
        "base_url": inst.base_url,
        "status": _STATUS_MAP.get(inst.status, "unknown"),
        "metadata": inst.metadata,
        "registered_at": _ts(inst.registered_at),
        "last_heartbeat": _ts(inst.last_heartbeat),
        "version": inst.version,
    }


@compat.errorhandler(ApiError)
def _api_error(err: ApiError) -> Response:
    return detail_response(err.details, err.status)


@compat.errorhandler(HTTPException)
def _http_error(err: HTTPException) -> Response:
    return http_detail(err)


@compat.get("/health")
def health() -> Response:
    return jsonify({"status": "healthy", "message": "registry is running", "timestamp": iso_utc_offset(utc_now())})


@compat.post("/api/v1/services/register")
def register() -> tuple[Response, int]:
    st = state()
    who = _caller()
    body = read_body()
    allowed = {"service_name", "host", "port", "metadata", "version"}
    inst = parse_registration({k: v for k, v in body.items() if k in allowed})
    refuse_loopback_from_afar(inst, request.remote_addr)
    stored, created, _secret = st.catalog.register(inst, who)
    st.metrics.registrations.labels(result="created" if created else "replaced").inc()
    answer = {
        "service_id": stored.instance_id,
        "message": "Service registered successfully" if created else "Service registration replaced",
        "registered_at": _ts(stored.registered_at),
    }
    return jsonify(answer), 200


@compat.post("/api/v1/services/<iid:service_id>/heartbeat")
def heartbeat(service_id: str) -> Response:
    st = state()
    who = _caller()
    read_body()  # the old body is ignored, but it must still be valid and small
    inst = st.catalog.heartbeat(service_id, None, None, who)
    if inst is None:
        raise ApiError(ErrorCode.NOT_FOUND, "Service not found")
    return jsonify({"message": "Heartbeat received", "timestamp": _ts(inst.last_heartbeat)})


@compat.delete("/api/v1/services/<iid:service_id>")
def deregister(service_id: str) -> Response:
    st = state()
    if st.catalog.deregister(service_id, _caller()) is None:
        raise ApiError(ErrorCode.NOT_FOUND, "Service not found")
    st.metrics.deregistrations.labels(reason="api").inc()
    return jsonify({"message": "Service deregistered successfully"})


@compat.get("/api/v1/services")
def discover() -> Response:
    st = state()
    q = Query()
    name = request.args.get("service_name")
    if name is not None:
        q.name = validate_service_name(name)
    status_filter = request.args.get("status_filter")
    if status_filter is not None:
        if status_filter not in _FILTER_MAP:
            raise ApiError(ErrorCode.INVALID_REQUEST, "status_filter must be healthy, unhealthy or unknown")
        q.statuses = sorted(_FILTER_MAP[status_filter]) or ["__none__"]
    instances, _ = st.catalog.query(q)
    services = [service_info(i) for i in instances]
    return jsonify({"services": services, "count": len(services)})


@compat.get("/api/v1/services/<iid:service_id>")
def get_one(service_id: str) -> Response:
    st = state()
    inst = st.catalog.get(service_id)
    if inst is None:
        raise ApiError(ErrorCode.NOT_FOUND, "Service not found")
    return jsonify(service_info(inst))
