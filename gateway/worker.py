"""The gateway process: a worker of the mesh (kind ``gateway``, capability ``agent-gateway``).

Built on the worker runtime, so it has health, metrics, the envelope, limits, registration and
drain like any worker; its own routes are :mod:`gateway.routes` and the MCP endpoint
(:mod:`gateway.mcp.http`). ``POST /predict`` is ``/analyze`` (the batch runner can drive it).

    python -m gateway --port 0 --registry http://127.0.0.1:8500
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from gateway.mcp.http import McpHttpBridge
from gateway.mcp.tools import build_mcp_server
from gateway.operations import Gateway
from gateway.routes import build_blueprint
from gateway.settings import GatewaySettings
from services.common.cli import from_params, options
from services.common.envelope import ApiError, ErrorCode
from services.common.settings import WorkerSettings
from services.worker.cli import run_worker_cli
from services.worker.model import WorkerModel

if TYPE_CHECKING:
    from flask import Blueprint

log = logging.getLogger(__name__)

VERSION = "1.0.0"
# Anonymous callers are limited here, by address; callers with a token are limited again by the workers.
DEFAULT_RATE_LIMIT_PER_MIN = 600


class GatewayModel(WorkerModel):
    """The gateway as a worker kind: stateless, any number of replicas."""

    service_name = "gateway"
    version = VERSION
    rate_limit_per_min = DEFAULT_RATE_LIMIT_PER_MIN

    def __init__(self, settings: GatewaySettings, worker: WorkerSettings) -> None:
        self.capabilities = ["agent-gateway"]
        self.models = [f"agent-gateway-{VERSION}"]
        self.settings = settings
        self.worker = worker
        self.gateway: Gateway | None = None
        self.mcp = McpHttpBridge(
            build_mcp_server(lambda: self.gateway), host=worker.host, timeout_s=settings.deadline_s + 5
        )

    def load(self) -> None:
        """Open the registry cache and the Router; start the MCP loop. Fails without a registry."""
        if not self.worker.registry_urls:
            raise RuntimeError("the gateway needs a registry to read the mesh from: pass --registry URL")
        self.mcp.start()
        gateway = Gateway.open(self.worker.registry_urls, self.settings, self.worker.token)
        gateway.catalog()  # first fetch now: the watcher keeps it fresh from here on
        self.gateway = gateway

    def ready(self) -> bool:
        return self.gateway is not None

    def metadata(self) -> dict[str, Any]:
        return {"mcp_path": "/api/v1/mcp", "rest_prefix": "/api/v1"}

    def limits(self) -> dict[str, Any]:
        return {"max_items": self.settings.max_items, "max_sequence_chars": self.settings.max_sequence_chars}

    def blueprint(self) -> Blueprint:
        return build_blueprint(lambda: self.gateway, self.mcp.view)

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        if self.gateway is None:
            raise ApiError(ErrorCode.MODEL_NOT_LOADED, "the gateway is starting", retry_after=1)
        return self.gateway.analyze(payload, _authorization())


def _authorization() -> str | None:
    from flask import request

    return request.headers.get("Authorization") or None


GATEWAY_OPTIONS = options(GatewaySettings, exclude=("caller_token",))


def make_gateway_model(args: SimpleNamespace, worker: WorkerSettings) -> GatewayModel:
    return GatewayModel(from_params(GatewaySettings, vars(args), GatewaySettings()), worker)


def main(argv: list[str] | None = None) -> int:
    return run_worker_cli(
        make_gateway_model,
        prog="python -m gateway",
        description="Agent gateway: the mesh's models as REST (/api/v1/models, /analyze...) and MCP tools.",
        options=GATEWAY_OPTIONS,
        argv=argv,
    )
