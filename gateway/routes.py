"""The gateway's REST routes, mounted by the worker runtime under ``/api/v1`` (so drain, the in-flight
limit, the per-client rate limit, metrics and the envelope apply to them as to any worker route).

Every route is one call of :class:`~gateway.operations.Gateway`; the caller's ``Authorization``
header travels with it to the worker that does the work.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, request

from gateway.operations import Gateway
from services.common.auth import require_token
from services.common.envelope import ApiError, ErrorCode, json_body, ok

GatewayGetter = Callable[[], Gateway | None]


def build_blueprint(get_gateway: GatewayGetter, mcp_view: Callable[[], Response] | None = None) -> Blueprint:
    """The routes; ``get_gateway`` returns None until the gateway has started (503 then)."""
    bp = Blueprint("gateway", __name__)

    def gw() -> Gateway:
        gateway = get_gateway()
        if gateway is None:
            raise ApiError(ErrorCode.MODEL_NOT_LOADED, "the gateway is starting", retry_after=1)
        return gateway

    def caller() -> str | None:
        return request.headers.get("Authorization") or None

    @bp.get("/models")
    def list_models() -> Response:
        """Every serving model of the mesh: capabilities, versions, validated figures, instances and health."""
        return ok(gw().models())

    @bp.get("/models/loaded")
    def loaded_models() -> Response:
        """The models with at least one usable instance."""
        return ok(gw().models(loaded_only=True))

    @bp.post("/models/best")
    def best_model() -> Response:
        """``{task_type, sequence_type}`` → ``{best_model, reason}`` by the rule in gateway/README.md."""
        body = json_body()
        return ok(gw().best(body.get("task_type"), body.get("sequence_type")))

    @bp.post("/analyze")
    def analyze() -> Response:
        """Run a task over sequences or inputs on the named or best model, with fallbacks; says who served it."""
        return ok(gw().analyze(json_body(), caller()), "analysis complete")

    @bp.get("/tasks")
    def tasks() -> Response:
        return ok(gw().tasks())

    @bp.get("/sequence-types")
    def sequence_types() -> Response:
        return ok(Gateway.sequence_types())

    @bp.get("/model/<name>/info")
    def model_info(name: str) -> Response:
        return ok(gw().model_info(name))

    @bp.post("/model/<name>/load")
    def load_model(name: str) -> Response:
        """Activate a model, or start a replica through a local launcher (the gateway's token when set)."""
        require_token(gw().operator_token)
        data, status = gw().load(name, json_body(), caller())
        return ok(data, data.get("message", data["action"]), status=status)

    @bp.post("/model/<name>/unload")
    def unload_model(name: str) -> Response:
        """Stop a replica this gateway started, or drain one through the registry (the gateway's token when set)."""
        require_token(gw().operator_token)
        data = gw().unload(name, json_body(), caller())
        return ok(data, data.get("message", data["action"]))

    @bp.get("/jobs/<service>/<job_id>")
    def job_status(service: str, job_id: str) -> Response:
        """Status and progress of a long job (training, docking) on the worker that runs it."""
        return ok(gw().job_status(service, job_id, caller()))

    if mcp_view is not None:
        bp.add_url_rule("/mcp", "mcp", mcp_view, methods=["GET", "POST", "DELETE"])
    return bp
