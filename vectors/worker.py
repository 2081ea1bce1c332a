"""The ``vectors`` worker: collections on Milvus over REST (``/api/v1/vectors``) and gRPC.

    python -m vectors.worker --port 0 --registry http://127.0.0.1:8500 --milvus-uri vectors.db

Capability ``vector-search``. The Milvus Lite file (the default) belongs to this one process:
each replica needs its own (``--milvus-uri``); replicas sharing data use a Milvus server
(``--milvus-uri http://milvus:19530``). The gRPC port (``--grpc-port``, 0 = free) is advertised
in the registry metadata as ``grpc_port``; it serves the VectorService and the ModelService
(:mod:`vectors.models`). ``POST /predict`` is a search: ``{collection, vectors | smiles, top_k,
filter}``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from services.common.cli import from_params, options
from services.common.envelope import ApiError, ErrorCode
from services.worker import WorkerModel
from services.worker.cli import configure_logging, parse_worker_args
from vectors.settings import VectorSettings
from vectors.store import is_lite

if TYPE_CHECKING:
    from flask import Blueprint

    from vectors.service import VectorService

log = logging.getLogger(__name__)

VERSION = "1.0.0"
PROG = "python -m vectors.worker"
VECTOR_OPTIONS = options(VectorSettings)


class VectorModel(WorkerModel):
    """The worker kind; the Milvus client is opened in :meth:`load`, after the port is bound."""

    service_name = "vectors"
    version = VERSION

    def __init__(self, settings: VectorSettings) -> None:
        self.settings = settings
        self.capabilities = ["vector-search"]
        self.models = ["milvus"]
        self.task_types = ["search"]
        self.service: VectorService | None = None
        self.grpc_port = 0
        self._bp: Blueprint | None = None

    def load(self) -> None:
        from pymilvus import __version__ as pymilvus_version

        from vectors.service import VectorService
        from vectors.store import MilvusStore

        store = MilvusStore(self.settings.milvus_uri, self.settings.milvus_token)
        service = VectorService(store, self.settings)
        if service.front:  # load (or rebuild from the Lite file) the in-process indexes before reporting ready
            service.front.warm()
            service.front.start(self.settings.index_save_s)
        self.service = service
        self.models = [f"{store.backend}-pymilvus-{pymilvus_version}"]
        log.info("vectors on %s (%s), %d collection(s)", self.settings.milvus_uri, store.backend, len(store.names()))

    def ready(self) -> bool:
        return self.service is not None

    def blueprint(self) -> Blueprint:
        from vectors.api import build_blueprint

        return build_blueprint(_Deferred(self), self.settings.api_token)  # type: ignore[arg-type]

    def metadata(self) -> dict[str, Any]:
        backend = self.service.store.backend if self.service else "milvus"
        return {"grpc_port": self.grpc_port, "vector_backend": backend}

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "grpc_port": self.grpc_port,
            "milvus": "lite" if is_lite(self.settings.milvus_uri) else "server",
        }

    def limits(self) -> dict[str, Any]:
        s = self.settings
        return {
            "max_top_k": s.max_top_k,
            "max_dim": s.max_dim,
            "max_items": s.max_items,
            "max_queries": s.max_queries,
            "max_metadata_bytes": s.max_metadata_bytes,
            "max_grpc_message_bytes": s.max_grpc_message_bytes,
        }

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``/predict`` is a search, so the batch runner and Router.predict can use the service."""
        if self.service is None:
            raise ApiError(ErrorCode.MODEL_NOT_LOADED, "Milvus is not open yet", retry_after=2)
        name = payload.get("collection")
        body = {k: v for k, v in payload.items() if k not in ("collection", "task_type")}
        return self.service.search(name if isinstance(name, str) else "", body)


class _Deferred:
    """The service as the routes see it before :meth:`VectorModel.load` has opened Milvus (503 until then)."""

    def __init__(self, model: VectorModel) -> None:
        self._model = model

    def __getattr__(self, name: str) -> Any:
        service = self._model.service
        if service is None:
            raise ApiError(ErrorCode.MODEL_NOT_LOADED, "Milvus is not open yet", retry_after=2)
        return getattr(service, name)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve REST and gRPC until SIGTERM; the gRPC server stops after the HTTP drain."""
    from services.client.registry_client import RegistryClient
    from services.client.router import Router
    from services.worker.serve import WorkerServer
    from vectors.grpc_server import Admission, start_server
    from vectors.grpc_vectors import VectorServicer
    from vectors.models import ModelServicer, add_servicers

    args, settings, rate_limit = parse_worker_args(argv, PROG, __doc__, VECTOR_OPTIONS)
    configure_logging(settings.log_level)
    vsettings = from_params(VectorSettings, vars(args))
    model = VectorModel(vsettings)
    server = WorkerServer(model, settings, rate_limit_per_min=rate_limit)
    try:
        server.bind()
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", settings.host, settings.port, exc)
        return 1
    state = server.state
    admission = Admission(state.limiter, state.draining.is_set, vsettings.api_token, vsettings.max_grpc_message_bytes)
    registry = RegistryClient(settings.registry_urls) if settings.registry_urls else None
    router = Router.from_settings(discovery=registry, deadline_s=60.0) if registry else None
    vector_servicer = VectorServicer(_Deferred(model), admission)  # type: ignore[arg-type]
    model_servicer = ModelServicer(
        router, registry, admission, lambda: server.identity.instance_id or server.identity.base_url
    )
    try:
        grpc_server, model.grpc_port = start_server(
            settings.host,
            vsettings.grpc_port,
            lambda s: add_servicers(s, vector_servicer, model_servicer),
            vsettings.max_grpc_message_bytes,
            threads=settings.max_inflight + 4,
        )
    except (OSError, RuntimeError) as exc:
        log.error("cannot start gRPC on %s:%d: %s", settings.host, vsettings.grpc_port, exc)
        return 1
    log.info("gRPC VectorService and ModelService on port %d", model.grpc_port)
    try:
        return server.run()
    finally:
        grpc_server.stop(grace=1.0).wait(5.0)  # in-flight RPCs ended in the drain (shared limiter)
        if router is not None:
            router.close()
        if registry is not None:
            registry.close()
        if model.service is not None:
            model.service.close()  # saves the in-process indexes that changed


if __name__ == "__main__":
    sys.exit(main())
