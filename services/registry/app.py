"""The registry's Flask application: native API under /api/v1, probes, metrics and the spec."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter

from services.common.auth import require_token
from services.common.clock import Clock, SystemClock
from services.common.envelope import ApiError, ErrorCode, error_response, install_envelope, json_body, ok, ok_raw
from services.common.instance import STATUSES, parse_registration, validate_health, validate_load
from services.common.settings import RegistrySettings
from services.registry.advertise import refuse_loopback_from_afar
from services.registry.catalog import Catalog
from services.registry.etcd_catalog import EtcdCatalog
from services.registry.etcd_store import EtcdStore
from services.registry.fastpath import HeartbeatFastPath
from services.registry.health import ActiveChecker, HealthSweeper
from services.registry.metrics import RegistryMetrics
from services.registry.openapi import build_spec
from services.registry.query import parse_list_params
from services.registry.store import Store, StoreUnavailable
from services.registry.watch import WatchCache

MAX_BODY_BYTES = 64 * 1024
VERSION = "0.1.0"


@dataclass
class RegistryState:
    """Everything the routes need, kept on ``app.extensions['registry']``."""

    settings: RegistrySettings
    catalog: Catalog
    metrics: RegistryMetrics
    sweeper: HealthSweeper
    checker: ActiveChecker
    watch_slots: threading.BoundedSemaphore
    started: float
    rng: random.Random
    watch_cache: WatchCache

    def start(self) -> None:
        self.sweeper.start()
        self.checker.start()

    def stop(self) -> None:
        self.checker.stop()
        self.sweeper.stop()
        self.catalog.close()


class InstanceIdConverter(BaseConverter):
    """Instance ids in paths; 'register' is reserved so /services/register has one meaning."""

    regex = r"(?!register$)[A-Za-z0-9][A-Za-z0-9._\-]{0,127}"


def state() -> RegistryState:
    return current_app.extensions["registry"]


api = Blueprint("registry_api", __name__)


@api.post("/services/register")
def register() -> Response:
    st = state()
    require_token(st.settings.token)
    inst = parse_registration(json_body(MAX_BODY_BYTES))
    refuse_loopback_from_afar(inst, request.remote_addr)
    stored, created = st.catalog.register(inst)
    st.metrics.registrations.labels(result="created" if created else "replaced").inc()
    data = {
        "instance_id": stored.instance_id,
        "ttl_s": st.settings.ttl_s,
        "heartbeat_interval_s": st.settings.heartbeat_interval,
        "deregister_after_s": st.settings.deregister_after,
        "instance": stored.to_dict(),
    }
    return ok(data, "registered" if created else "registration replaced", status=201 if created else 200)


@api.put("/services/<iid:instance_id>/heartbeat")
def heartbeat(instance_id: str) -> Response:
    st = state()
    require_token(st.settings.token)
    body = json_body(MAX_BODY_BYTES)
    status = validate_health(body["status"]) if body.get("status") is not None else None
    load = validate_load(body["load"]) if body.get("load") is not None else None
    inst = st.catalog.heartbeat(instance_id, status, load)
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
    require_token(st.settings.token)
    body = json_body(MAX_BODY_BYTES)
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        raise ApiError(ErrorCode.INVALID_REQUEST, "'enabled' must be true or false")
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 256:
        raise ApiError(ErrorCode.INVALID_REQUEST, "'reason' must be a string of at most 256 characters")
    inst = st.catalog.set_maintenance(instance_id, enabled, reason)
    if inst is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"instance {instance_id!r} is not registered")
    return ok(inst.to_dict(), "maintenance on" if enabled else "maintenance off")


@api.delete("/services/<iid:instance_id>")
def deregister(instance_id: str) -> Response:
    st = state()
    require_token(st.settings.token)
    inst = st.catalog.deregister(instance_id)
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


def create_app(
    settings: RegistrySettings,
    store: Store | EtcdStore,
    clock: Clock | None = None,
    *,
    start_background: bool = True,
) -> Flask:
    """Build the registry app over ``store``; background sweeps start unless told not to."""
    from services.registry.compat import compat, routing_error

    clock = clock or SystemClock()
    if isinstance(store, EtcdStore):
        catalog: Catalog = EtcdCatalog(store, clock, settings.ttl_s, settings.deregister_after)
    else:
        catalog = Catalog(store, clock, settings.ttl_s, settings.deregister_after)
    metrics_ = RegistryMetrics(catalog.snapshot, lambda: catalog.index)
    sweep_every = min(settings.heartbeat_interval, settings.ttl_s) / 2
    reg_state = RegistryState(
        settings=settings,
        catalog=catalog,
        metrics=metrics_,
        sweeper=HealthSweeper(catalog, metrics_, sweep_every, settings.flush_interval),
        checker=ActiveChecker(catalog),
        watch_slots=threading.BoundedSemaphore(settings.max_watchers),
        started=time.monotonic(),
        rng=random.Random(),
        watch_cache=WatchCache(catalog),
    )
    app = Flask("services.registry", static_folder=None)
    app.url_map.converters["iid"] = InstanceIdConverter
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False
    app.extensions["registry"] = reg_state
    install_envelope(app)
    app.register_error_handler(HTTPException, routing_error)
    app.register_error_handler(StoreUnavailable, store_unavailable)
    _install_request_metrics(app, metrics_)
    app.register_blueprint(api, url_prefix="/api/v1")
    app.register_blueprint(compat, url_prefix="/compat/v0")
    for prefix in ("", "/api/v1"):
        app.add_url_rule(f"{prefix}/health", f"health{prefix}", health)
        app.add_url_rule(f"{prefix}/metrics", f"metrics{prefix}", metrics)
        app.add_url_rule(f"{prefix}/openapi.json", f"openapi{prefix}", openapi)
        app.add_url_rule(f"{prefix}/prometheus/targets", f"targets{prefix}", prometheus_targets)
    app.wsgi_app = HeartbeatFastPath(app.wsgi_app, reg_state, MAX_BODY_BYTES)  # type: ignore[method-assign]
    if start_background:
        reg_state.start()
    return app


def store_unavailable(err: StoreUnavailable) -> Response:
    """503 + Retry-After: the worker or client moves to another replica (reads still work)."""
    return error_response(ApiError(ErrorCode.OVERLOADED, f"the registry's store is unavailable: {err}", retry_after=1))


def _install_request_metrics(app: Flask, metrics_: RegistryMetrics) -> None:
    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _observe(resp: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else "unmatched"
        metrics_.requests.labels(route=route, method=request.method, code=str(resp.status_code)).inc()
        started = g.get("started")
        if started is not None:
            metrics_.latency.labels(route=route).observe(time.perf_counter() - started)
        return resp
