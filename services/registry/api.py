"""The registry's native API (/api/v1) and its probes: health, metrics, the spec, Prometheus targets."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from flask import Blueprint, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.common.envelope import ApiError, ErrorCode, ok, ok_raw
from services.common.instance import STATUSES, parse_registration, validate_health, validate_load
from services.registry.advertise import refuse_loopback_from_afar
from services.registry.bodies import read_body
from services.registry.openapi import build_spec
from services.registry.query import parse_list_params
from services.registry.state import RegistryState, caller, state

VERSION = "0.1.0"

api = Blueprint("registry_api", __name__)


@api.post("/services/register")
def register() -> Response:
    st = state()
    who = caller()
    inst = parse_registration(read_body())
    refuse_loopback_from_afar(inst, request.remote_addr)
    stored, created, secret = st.catalog.register(inst, who)
    st.metrics.registrations.labels(result="created" if created else "replaced").inc()
    data = {
        "instance_id": stored.instance_id,
        "instance_secret": secret or who.secret,
        "ttl_s": st.settings.ttl_s,
        "heartbeat_interval_s": st.settings.heartbeat_interval,
        "deregister_after_s": st.settings.deregister_after,
        "instance": stored.to_dict(),
    }
    return ok(data, "registered" if created else "registration replaced", status=201 if created else 200)


@api.put("/services/<iid:instance_id>/heartbeat")
def heartbeat(instance_id: str) -> Response:
    st = state()
    who = caller()
    body = read_body()
    status = validate_health(body["status"]) if body.get("status") is not None else None
    load = validate_load(body["load"]) if body.get("load") is not None else None
    inst = st.catalog.heartbeat(instance_id, status, load, who)
    if inst is None:
        st.metrics.heartbeats.labels(result="unknown").inc()
        raise ApiError(ErrorCode.NOT_FOUND, f"instance {instance_id!r} is not registered; register again")
    st.metrics.heartbeats.labels(result="ok").inc()
    return ok(
        {"instance_id": instance_id, "status": inst.status, "heartbeat_interval_s": st.settings.heartbeat_interval}
    )


@api.put("/services/<iid:instance_id>/maintenance")
def maintenance(instance_id: str) -> Response:
    st = state()
    who = caller()
    body = read_body()
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        raise ApiError(ErrorCode.INVALID_REQUEST, "'enabled' must be true or false")
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 256:
        raise ApiError(ErrorCode.INVALID_REQUEST, "'reason' must be a string of at most 256 characters")
    inst = st.catalog.set_maintenance(instance_id, enabled, reason, who)
    if inst is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"instance {instance_id!r} is not registered")
    return ok(inst.to_dict(), "maintenance on" if enabled else "maintenance off")


@api.delete("/services/<iid:instance_id>")
def deregister(instance_id: str) -> Response:
    st = state()
    inst = st.catalog.deregister(instance_id, caller())
    if inst is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"instance {instance_id!r} is not registered")
    st.metrics.deregistrations.labels(reason="api").inc()
    return ok({"instance_id": instance_id}, "deregistered")


@api.get("/services")
def list_services() -> Response:
    st = state()
    params = parse_list_params(request.args)
    if params.index is not None:
        wait_s = min(params.wait_s if params.wait_s is not None else 30.0, st.settings.max_wait)
        _blocking_wait(st, params.query, params.index, wait_s)
        data_json, index, count = st.watch_cache.answer(params.query)
        return ok_raw(data_json, f"{count} instance(s)", headers={"X-Registry-Index": index})
    instances, index = st.catalog.query_dicts(params.query)
    data = {"instances": instances, "index": index}
    return ok(data, f"{len(instances)} instance(s)", headers={"X-Registry-Index": index})


def _blocking_wait(st: RegistryState, query: Any, index: int, wait_s: float) -> None:
    """Hold the request until the answer changes (bounded: past the cap, 503 with Retry-After)."""
    if not st.watch_slots.acquire(blocking=False):
        st.metrics.watch_rejected.inc()
        raise ApiError(
            ErrorCode.OVERLOADED,
            "too many blocking queries; retry after the indicated delay",
            retry_after=1 + st.rng.random() * 2,
        )
    st.metrics.watchers.inc()
    try:
        if st.catalog.current_index(query) != index:
            return
        deadline = time.monotonic() + wait_s + st.rng.uniform(0, wait_s / 16)
        if st.catalog.wait(query, index, deadline - time.monotonic()) != index:
            # Coalesce: a burst of changes (a fleet registering) becomes one answer, not dozens.
            time.sleep(max(0.0, min(st.settings.watch_coalesce, deadline - time.monotonic())))
    finally:
        st.metrics.watchers.dec()
        st.watch_slots.release()


@api.get("/services/<iid:instance_id>")
def get_service(instance_id: str) -> Response:
    inst = state().catalog.get(instance_id)
    if inst is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"instance {instance_id!r} is not registered")
    return ok(inst.to_dict())


@api.get("/catalog")
def catalog() -> Response:
    st = state()
    instances, index = st.catalog.query(parse_list_params(request.args).query)
    services: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"instances": 0, **{s: 0 for s in STATUSES}, "capabilities": set(), "models": set(), "tags": set()}
    )
    for inst in instances:
        svc = services[inst.service_name]
        svc["instances"] += 1
        svc[inst.status] += 1
        svc["capabilities"].update(inst.capabilities)
        svc["models"].update(inst.models)
        svc["tags"].update(inst.tags)
    out = {
        name: {
            **svc,
            "capabilities": sorted(svc["capabilities"]),
            "models": sorted(svc["models"]),
            "tags": sorted(svc["tags"]),
        }
        for name, svc in sorted(services.items())
    }
    return ok({"services": out, "total": len(instances), "index": index}, f"{len(out)} service(s)")


def prometheus_targets() -> Response:
    """Prometheus HTTP service discovery: one target group per passing instance."""
    groups = []
    for inst in sorted(state().catalog.snapshot(), key=lambda i: i.instance_id):
        if inst.status != "passing":
            continue
        scheme, _, rest = inst.base_url.partition("://")
        hostport, _, prefix = rest.partition("/")
        labels = {
            "__scheme__": scheme,
            "__metrics_path__": ("/" + prefix.rstrip("/") if prefix else "") + "/metrics",
            "service": inst.service_name,
            "instance_id": inst.instance_id,
            "version": inst.version,
        }
        if inst.metadata.get("device"):
            labels["device"] = str(inst.metadata["device"])
        groups.append({"targets": [hostport], "labels": labels})
    return jsonify(groups)


def health() -> Response:
    st = state()
    return jsonify(
        {
            "status": "healthy",
            "version": VERSION,
            "store": st.settings.store,
            "instances": st.catalog.count(),
            "index": st.catalog.index,
            "uptime_s": round(time.monotonic() - st.started, 3),
        }
    )


def metrics() -> Response:
    return Response(generate_latest(state().metrics.registry), mimetype=CONTENT_TYPE_LATEST)


def openapi() -> Response:
    return jsonify(build_spec(VERSION))
