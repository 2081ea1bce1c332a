"""The Flask app every worker serves: probes, metrics, /predict, /predict/batch and the kind's routes.

:func:`create_worker_app` does no network I/O of its own, so unit tests drive it with
Flask's test client; :mod:`services.worker.serve` puts it on waitress and registers it.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, g, jsonify, request

from services.common.client_tokens import ClientTokens
from services.common.envelope import ApiError, ErrorCode, install_envelope, json_body, ok
from services.common.settings import WorkerSettings
from services.worker.admission import CostBudget, open_ticket
from services.worker.limits import OVERLOADED_RETRY_AFTER_S, InflightLimiter, RateLimiter, client_key
from services.worker.metrics import CONTENT_TYPE, WorkerMetrics
from services.worker.model import UploadedFile, WorkerIdentity, WorkerModel, as_api_error, check_model, item_error
from services.worker.openapi import build_openapi
from services.worker.resources import ResourceProbe

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
# Routes that never count as work: they answer while draining, overloaded or rate limited,
# so probes and scrapes see the truth exactly when it matters.
PROBE_ENDPOINTS = frozenset({"health", "health_live", "health_ready", "metrics", "model_info", "openapi"})
_MODEL_NOT_LOADED_RETRY_AFTER_S = 5.0


@dataclass
class WorkerState:
    """Everything the routes, the registry agent and the drain logic share about one worker."""

    model: WorkerModel
    settings: WorkerSettings
    identity: WorkerIdentity
    limiter: InflightLimiter
    rate_limiter: RateLimiter | None
    probe: ResourceProbe
    max_batch_items: int
    budget: CostBudget | None = None
    client_tokens: ClientTokens | None = None
    started: float = field(default_factory=time.monotonic)
    draining: threading.Event = field(default_factory=threading.Event)
    loaded: threading.Event = field(default_factory=threading.Event)
    load_error: str | None = None
    queued: Callable[[], int] = lambda: 0  # requests waiting for a server thread (set by the server)

    def is_ready(self) -> bool:
        """Loaded, healthy by the model's own account, and not on its way out."""
        return self.loaded.is_set() and not self.draining.is_set() and self.model.ready()

    def health_status(self) -> str:
        """Registry health: critical while the model cannot serve (draining is maintenance, not health)."""
        return "passing" if self.loaded.is_set() and self.model.ready() else "critical"

    def load_snapshot(self) -> dict[str, float | int]:
        """The ``load`` a heartbeat carries: what a balancer needs to pick the least busy worker."""
        load: dict[str, float | int] = {
            "inflight": self.limiter.inflight,
            "queued": self.queued() + self.model.queued_items(),
            "max_inflight": self.limiter.limit,
            "cpu_percent": self.probe.cpu_percent(),
            "rss_mb": self.probe.rss_mb(),
        }
        gpu = self.probe.gpu_mem_mb()
        if gpu is not None:
            load["gpu_mem_mb"] = gpu
        return load


def worker_state(app: Flask) -> WorkerState:
    """The state :func:`create_worker_app` attached to ``app``."""
    return app.extensions["worker"]


def effective_rate_limit(model: WorkerModel, settings: WorkerSettings, override: int | None = None) -> int:
    """An explicit override (CLI) wins, then a positive setting (env), then the kind's default."""
    if override is not None:
        return max(0, override)
    return settings.rate_limit_per_min if settings.rate_limit_per_min > 0 else model.rate_limit_per_min


def cost_budget(model: WorkerModel, clock: Callable[[], float] = time.monotonic) -> CostBudget | None:
    """The kind's cost limits (see :mod:`services.worker.admission`), None when it declares none."""
    if model.max_request_cost <= 0:
        return None
    per_client = max(model.max_client_cost, model.max_request_cost)
    return CostBudget(model.max_request_cost, per_client, model.cost_unit, clock=clock)


def create_worker_app(
    model: WorkerModel,
    settings: WorkerSettings | None = None,
    *,
    identity: WorkerIdentity | None = None,
    rate_limit_per_min: int | None = None,
    loaded: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> Flask:
    """Build the worker app around ``model``.

    ``loaded=False`` is for the server, which calls ``model.load()`` after binding and
    marks the state loaded itself; tests usually pass an already-usable model.
    """
    settings = settings or WorkerSettings()
    check_model(model)
    identity = identity or WorkerIdentity(
        kind=model.kind, service_name=model.service_name, pid=os.getpid(), host=settings.host, device=settings.device
    )
    model.bind(identity)
    per_min = effective_rate_limit(model, settings, rate_limit_per_min)
    state = WorkerState(
        model=model,
        settings=settings,
        identity=identity,
        limiter=InflightLimiter(settings.max_inflight),
        rate_limiter=RateLimiter(per_min, clock=clock) if per_min > 0 else None,
        probe=ResourceProbe(settings.device),
        max_batch_items=min(settings.max_batch_items, model.max_batch_items or settings.max_batch_items),
        budget=cost_budget(model, clock),
        client_tokens=ClientTokens(settings.client_tokens_file) if settings.client_tokens_file else None,
    )
    if loaded:
        state.loaded.set()

    app = Flask(f"worker.{model.service_name}", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["worker"] = state
    install_envelope(app)
    metrics = WorkerMetrics(
        model.service_name,
        model.version,
        inflight=lambda: state.limiter.inflight,
        draining=lambda: float(state.draining.is_set()),
    )
    model.add_metrics(metrics.registry)
    _install_metrics(app, metrics, clock)
    _add_probe_routes(app, state, metrics)
    _add_predict_routes(app, state)
    bp = model.blueprint()
    if bp is not None:
        app.register_blueprint(bp, url_prefix=API_PREFIX)
    _guard_work_routes(app, state)
    return app


def _install_metrics(app: Flask, metrics: WorkerMetrics, clock: Callable[[], float]) -> None:
    @app.before_request
    def _start_timer() -> None:
        g.worker_t0 = clock()

    @app.after_request
    def _observe(resp: Response) -> Response:
        t0 = g.get("worker_t0")
        if t0 is not None:
            route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
            metrics.observe(route, request.method, resp.status_code, clock() - t0)
        return resp


def _add_probe_routes(app: Flask, state: WorkerState, metrics: WorkerMetrics) -> None:
    model = state.model

    def health() -> Response:
        """Process health and identity; always 200 so a dashboard can show an unhealthy worker."""
        return ok(
            {
                "status": "healthy" if state.health_status() == "passing" else "unhealthy",
                "model": model.service_name,
                "kind": model.kind,
                "version": model.version,
                "uptime_s": round(time.monotonic() - state.started, 3),
                "gpu_available": state.probe.gpu_available(),
                "memory_mb": state.probe.rss_mb(),
                "device": state.settings.device,
                "instance_id": state.identity.instance_id,
                "draining": state.draining.is_set(),
                "inflight": state.limiter.inflight,
                "load_error": state.load_error,
            }
        )

    def health_live() -> Response:
        """Liveness: the process answers HTTP."""
        return ok({"status": "alive"})

    def health_ready() -> Response:
        """Readiness: 503 until the model is loaded, and again once draining starts."""
        if state.draining.is_set():
            raise ApiError(ErrorCode.OVERLOADED, "draining: this worker is shutting down", retry_after=1)
        if not state.loaded.is_set() or not model.ready():
            details = f"model failed to load: {state.load_error}" if state.load_error else "model is not loaded yet"
            raise ApiError(ErrorCode.MODEL_NOT_LOADED, details, retry_after=_MODEL_NOT_LOADED_RETRY_AFTER_S)
        return ok({"status": "ready"})

    def metrics_route() -> Response:
        """Prometheus text exposition."""
        return Response(metrics.render(), content_type=CONTENT_TYPE)

    def model_info() -> Response:
        """The model's names, capabilities and input limits, plus the runtime's own limits."""
        return ok(
            {
                **model.info(),
                "runtime": {
                    "max_inflight": state.limiter.limit,
                    "max_body_bytes": state.settings.max_body_bytes,
                    "max_batch_items": state.max_batch_items,
                    "rate_limit_per_min": state.rate_limiter.per_minute if state.rate_limiter else 0,
                    "rate_limit_key": "issued client token, else peer address",
                    **(state.budget.info() if state.budget else {"max_request_cost": 0}),
                    "device": state.settings.device,
                },
            }
        )

    def openapi() -> Response:
        """The OpenAPI 3 document of this worker (a bare document, so tools can read it)."""
        return jsonify(build_openapi(app, model))

    app.add_url_rule("/health", "health", health, methods=["GET"])
    app.add_url_rule("/health/live", "health_live", health_live, methods=["GET"])
    app.add_url_rule("/health/ready", "health_ready", health_ready, methods=["GET"])
    app.add_url_rule("/metrics", "metrics", metrics_route, methods=["GET"])
    app.add_url_rule("/model/info", "model_info", model_info, methods=["GET"])
    app.add_url_rule("/openapi.json", "openapi", openapi, methods=["GET"])


def request_payload() -> dict[str, Any]:
    """The body of a predict call: a JSON object, or multipart fields and files."""
    if request.mimetype == "multipart/form-data":
        payload: dict[str, Any] = dict(request.form.items())
        for name, part in request.files.items():
            payload[name] = UploadedFile(
                part.filename or name, part.mimetype or "application/octet-stream", part.read()
            )
        return payload
    return json_body()


def _check_task_type(model: WorkerModel, payload: dict[str, Any]) -> None:
    task_type = payload.get("task_type")
    if task_type is None or model.task_types is None:
        return
    if task_type not in model.task_types:
        raise ApiError(
            ErrorCode.INVALID_REQUEST,
            f"task_type {task_type!r} is not served by {model.service_name}; use one of {', '.join(model.task_types)}",
        )


def _require_ready(state: WorkerState) -> None:
    if not state.loaded.is_set() or not state.model.ready():
        raise ApiError(
            ErrorCode.MODEL_NOT_LOADED, "model is not loaded yet", retry_after=_MODEL_NOT_LOADED_RETRY_AFTER_S
        )


def _add_predict_routes(app: Flask, state: WorkerState) -> None:
    model = state.model

    def predict() -> Response:
        """One prediction; the model's dict is the envelope's data."""
        payload = request_payload()
        _require_ready(state)
        _check_task_type(model, payload)
        try:
            result = model.predict(payload)
        except ApiError:
            raise
        except Exception as exc:  # a model bug is PREDICTION_FAILED, not a traceback
            log.warning("prediction failed", exc_info=True)
            raise as_api_error(exc) from exc
        if not isinstance(result, dict):
            raise ApiError(ErrorCode.INTERNAL_ERROR, f"{type(model).__name__}.predict returned {type(result).__name__}")
        return ok(result, "prediction complete")

    def predict_batch() -> Response:
        """Many predictions in one call; each item succeeds or fails on its own."""
        items = model.batch_items(json_body())
        if not isinstance(items, list) or not items:
            raise ApiError(ErrorCode.INVALID_REQUEST, "'items' must be a non-empty list of objects")
        if len(items) > state.max_batch_items:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"{len(items)} items; at most {state.max_batch_items} per batch")
        _require_ready(state)
        results: list[dict[str, Any] | None] = [None] * len(items)
        runnable: list[int] = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                results[i] = item_error(ErrorCode.INVALID_REQUEST, "each item must be a JSON object")
                continue
            try:
                _check_task_type(model, item)
            except ApiError as err:
                results[i] = item_error(err.code, err.details)
                continue
            runnable.append(i)
        if runnable:
            try:
                answers = model.predict_batch([items[i] for i in runnable])
            except ApiError:
                raise
            except Exception as exc:  # the whole batch failed inside the model
                log.warning("batch prediction failed", exc_info=True)
                raise as_api_error(exc) from exc
            if len(answers) != len(runnable):
                raise ApiError(ErrorCode.INTERNAL_ERROR, f"model answered {len(answers)} of {len(runnable)} items")
            for i, answer in zip(runnable, answers, strict=True):
                results[i] = answer
        entries = [{"index": i, **(r or {})} for i, r in enumerate(results)]
        succeeded = sum(1 for e in entries if e.get("success"))
        data = {"results": entries, "count": len(entries), "succeeded": succeeded, "failed": len(entries) - succeeded}
        return ok(data, f"{succeeded} of {len(entries)} items succeeded")

    app.add_url_rule("/predict", "predict", predict, methods=["POST"])
    app.add_url_rule("/predict/batch", "predict_batch", predict_batch, methods=["POST"])


def _guard_work_routes(app: Flask, state: WorkerState) -> None:
    """Wrap every non-probe view (ours and the kind's) in drain, rate and in-flight checks."""
    for endpoint, view in list(app.view_functions.items()):
        if endpoint not in PROBE_ENDPOINTS:
            app.view_functions[endpoint] = _guarded(state, view)


def _guarded(state: WorkerState, view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if state.draining.is_set():
            raise ApiError(
                ErrorCode.OVERLOADED, "draining: this worker is shutting down", retry_after=OVERLOADED_RETRY_AFTER_S
            )
        client = client_key(request, state.client_tokens)
        if state.rate_limiter is not None:
            state.rate_limiter.acquire(client)
        with state.limiter.slot():
            if state.budget is None:
                return view(*args, **kwargs)
            with state.budget.ticket(client) as ticket:
                open_ticket(ticket)
                return view(*args, **kwargs)

    return guarded
