"""The registry's app factory: the native API under /api/v1, the compatibility API under
/compat/v0, probes, metrics and the spec, over a SQLite or an etcd store."""

from __future__ import annotations

import random
import sys
import threading
import time
from typing import TYPE_CHECKING

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter

from services.common.clock import Clock, SystemClock
from services.common.envelope import install_envelope
from services.common.settings import RegistrySettings
from services.registry.api import api, health, metrics, openapi, prometheus_targets
from services.registry.catalog import Catalog
from services.registry.compat import compat
from services.registry.errors import COMPAT_PREFIX, routing_error, store_unavailable
from services.registry.fastpath import HeartbeatFastPath
from services.registry.health import ActiveChecker, HealthSweeper
from services.registry.history import MAX_INSTANCES, install_history
from services.registry.metrics import KNOWN_METHODS, OTHER_METHOD, UNMATCHED, RegistryMetrics
from services.registry.node_routes import nodes
from services.registry.state import MAX_BODY_BYTES, RegistryState
from services.registry.store import Store, StoreUnavailable
from services.registry.watch import WatchCache

if TYPE_CHECKING:
    from services.registry.etcd_store import EtcdStore


class InstanceIdConverter(BaseConverter):
    """Instance ids in paths; 'register' is reserved so /services/register has one meaning."""

    regex = r"(?!register$)[A-Za-z0-9][A-Za-z0-9._\-]{0,127}"


def create_app(
    settings: RegistrySettings,
    store: Store | EtcdStore,
    clock: Clock | None = None,
    *,
    start_background: bool = True,
) -> Flask:
    """Build the registry app over ``store``; background sweeps start unless told not to."""
    clock = clock or SystemClock()
    catalog = catalog_for(store, clock, settings)
    metrics_ = RegistryMetrics(catalog.load_rows, lambda: catalog.index)  # type: ignore[arg-type]
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
    app.register_blueprint(compat, url_prefix=COMPAT_PREFIX)
    app.register_blueprint(nodes, url_prefix="/api/v1")  # node agents' beats (services.registry.node_routes)
    # GET /api/v1/history (services.registry.history); rows, not copies: see Catalog.load_rows
    install_history(app, lambda: catalog.load_rows(MAX_INSTANCES), start=start_background)
    for prefix in ("", "/api/v1"):
        app.add_url_rule(f"{prefix}/health", f"health{prefix}", health)
        app.add_url_rule(f"{prefix}/metrics", f"metrics{prefix}", metrics)
        app.add_url_rule(f"{prefix}/openapi.json", f"openapi{prefix}", openapi)
        app.add_url_rule(f"{prefix}/prometheus/targets", f"targets{prefix}", prometheus_targets)
    app.wsgi_app = HeartbeatFastPath(app.wsgi_app, reg_state, MAX_BODY_BYTES)  # type: ignore[method-assign]
    if start_background:
        reg_state.start()
    return app


def catalog_for(store: Store | EtcdStore, clock: Clock, settings: RegistrySettings) -> Catalog:
    """The catalog over ``store``: an etcd store gets the catalog that watches etcd, any other the in-memory one.

    A SQLite registry must start without importing the etcd modules (and etcd3gw with them), so
    they are not imported at the top of this module. An ``EtcdStore`` can only exist once its
    module was imported, so looking that module up in ``sys.modules`` tells the store's kind
    without importing anything; only then is the etcd catalog imported, inside this function.
    """
    etcd_store = sys.modules.get("services.registry.etcd_store")
    if etcd_store is None or not isinstance(store, etcd_store.EtcdStore):
        return Catalog(store, clock, settings.ttl_s, settings.deregister_after)
    from services.registry.etcd_catalog import EtcdCatalog  # lazy: see the docstring

    return EtcdCatalog(store, clock, settings.ttl_s, settings.deregister_after)


def _install_request_metrics(app: Flask, metrics_: RegistryMetrics) -> None:
    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _observe(resp: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else UNMATCHED
        method = request.method if request.method in KNOWN_METHODS else OTHER_METHOD
        metrics_.requests.labels(route=route, method=method, code=str(resp.status_code)).inc()
        started = g.get("started")
        if started is not None:
            metrics_.latency.labels(route=route).observe(time.perf_counter() - started)
        return resp
