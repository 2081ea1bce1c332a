"""The interface a worker kind implements; the runtime supplies everything else.

A kind (echo, COMPASS, AntiBERTy, SpliceAI, codon, ...) subclasses :class:`WorkerModel`,
sets its names and capabilities, and implements :meth:`WorkerModel.predict`. The runtime
(:mod:`services.worker.app`, :mod:`services.worker.serve`) owns HTTP, the envelope, probes,
metrics, limits, registration and draining, so a kind never touches any of that.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from services.common.envelope import ApiError, ErrorCode

if TYPE_CHECKING:
    from flask import Blueprint
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

# Exception messages put into an error response are cut here so a huge repr cannot bloat it.
_MAX_ERROR_DETAILS = 500


@dataclass
class WorkerIdentity:
    """Who this process is on the network; the runtime fills it in as it learns (port, instance id)."""

    kind: str
    service_name: str
    pid: int
    host: str = ""
    port: int = 0
    base_url: str = ""
    instance_id: str | None = None
    device: str = "cpu"

    def served_by(self) -> dict[str, Any]:
        """What a response says about who answered it (useful when a Router retried)."""
        return {"instance_id": self.instance_id, "port": self.port, "pid": self.pid, "base_url": self.base_url}


@dataclass(frozen=True)
class UploadedFile:
    """A multipart file part, handed to :meth:`WorkerModel.predict` inside the payload dict."""

    filename: str
    content_type: str
    data: bytes

    def text(self, encoding: str = "utf-8") -> str:
        """The content decoded as text (structure and sequence files are text)."""
        try:
            return self.data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"file {self.filename!r} is not {encoding} text") from exc


def item_ok(data: dict[str, Any]) -> dict[str, Any]:
    """One successful entry of a batch answer."""
    return {"success": True, "data": data, "error": None}


def item_error(code: ErrorCode, details: str) -> dict[str, Any]:
    """One failed entry of a batch answer (the others still succeed)."""
    return {"success": False, "data": None, "error": {"code": code.value, "details": details}}


def as_api_error(exc: Exception) -> ApiError:
    """Map an exception raised by a model to the error the client sees.

    ``ApiError`` passes through (the model chose the code); anything else is a
    PREDICTION_FAILED, because a model bug must not look like a bad request.
    """
    if isinstance(exc, ApiError):
        return exc
    details = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_DETAILS]
    return ApiError(ErrorCode.PREDICTION_FAILED, details)


class WorkerModel(ABC):
    """One worker kind. Subclasses set the attributes below and implement :meth:`predict`.

    Attributes (plain attributes, set on the class or in ``__init__``):

    * ``service_name`` – registry name, ``[a-z0-9-]{1,63}`` (e.g. ``compass-lite``).
    * ``kind`` – the launcher kind; defaults to ``service_name``.
    * ``version`` – model/worker version reported to the registry and in ``/health``.
    * ``capabilities`` – what Routers look workers up by (``affinity``, ``splice-site``...).
    * ``models`` – model names this worker serves (``/model/info``, registry metadata).
    * ``task_types`` – accepted ``task_type`` values (others get 400); None accepts any.
    * ``rate_limit_per_min`` – per-client request limit; 0 turns it off.
    * ``max_batch_items`` – optional cap below the runtime's ``max_batch_items`` setting.
    * ``predict_schema`` – optional JSON Schema of the /predict body, shown in ``/openapi.json``.
    * ``max_upload_bytes`` – optional larger body limit for routes that accept uploads; the
      server's hard limit is raised to it, each such route raises Flask's per request.
    * ``max_request_cost`` / ``max_client_cost`` / ``cost_unit`` – admission by cost
      (:mod:`services.worker.admission`): what one request, and one client's requests in
      flight, may cost in the kind's own unit; the kind calls ``admission.charge()``. 0: off.

    Errors: raise :class:`ApiError` with a specific code (``INVALID_SEQUENCE``...) for bad
    input; any other exception becomes ``PREDICTION_FAILED``.
    """

    service_name: str
    version: str = "0.0.0"
    capabilities: list[str]
    models: list[str]
    task_types: list[str] | None = None
    rate_limit_per_min: int = 0
    max_batch_items: int | None = None
    predict_schema: dict[str, Any] | None = None
    max_upload_bytes: int | None = None
    max_request_cost: float = 0.0
    max_client_cost: float = 0.0
    cost_unit: str = "cost units"
    identity: WorkerIdentity | None = None
    # Set by the server once it registers; :meth:`publish_metadata` calls it.
    metadata_listener: Callable[[], None] | None = None

    @property
    def kind(self) -> str:
        """The launcher kind; differs from ``service_name`` only when one module serves several."""
        return self.service_name

    def load(self) -> None:  # noqa: B027 - optional hook, deliberately empty
        """Load weights and warm up. Called once, off the request path, after the port is bound.

        The worker registers only after this returns; raising makes the process exit 1 so
        the launcher can restart it.
        """

    def ready(self) -> bool:
        """Whether requests can be served now (``/health/ready``); checked after :meth:`load`."""
        return True

    @abstractmethod
    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Answer one request body (JSON object, or multipart fields with :class:`UploadedFile` values)."""

    def predict_batch(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Answer many bodies; one entry per item built with :func:`item_ok` / :func:`item_error`.

        The default calls :meth:`predict` per item so one bad item never fails the batch.
        GPU kinds override it to run one forward pass over the whole batch.
        """
        results = []
        for item in items:
            try:
                results.append(item_ok(self.predict(item)))
            except Exception as exc:  # each item reports its own failure
                err = as_api_error(exc)
                if err.code is ErrorCode.PREDICTION_FAILED:
                    log.warning("batch item failed: %s", err.details)
                results.append(item_error(err.code, err.details))
        return results

    def batch_items(self, body: dict[str, Any]) -> Any:
        """The items of a ``/predict/batch`` body; the runtime checks they are a non-empty list.

        A kind with its own batch shorthand (sequences: ``{"sequences": [...]}``) overrides it,
        so the runtime's limits, guards and per-item answers apply to that shape unchanged.
        """
        return body.get("items")

    def queued_items(self) -> int:
        """Items waiting inside the kind, e.g. in its micro-batcher; the heartbeat's ``queued`` counts them.

        Requests waiting for a server thread are counted by the runtime; a request already handed to a
        batcher is not in that queue, yet it is waiting all the same, so a balancer must see it.
        """
        return 0

    def limits(self) -> dict[str, Any]:
        """Input limits of this model (e.g. ``max_sequence_length``), listed in ``/model/info``."""
        return {}

    def info(self) -> dict[str, Any]:
        """The model part of ``/model/info``; the runtime adds its own limits beside it."""
        return {
            "name": self.service_name,
            "kind": self.kind,
            "version": self.version,
            "models": list(self.models),
            "capabilities": list(self.capabilities),
            "task_types": list(self.task_types) if self.task_types is not None else None,
            "limits": self.limits(),
        }

    def blueprint(self) -> Blueprint | None:
        """Extra routes of this kind, mounted under ``/api/v1/`` (datasets, training jobs...)."""
        return None

    def metadata(self) -> dict[str, Any]:
        """Extra registry metadata of this kind (e.g. its active model); read at every registration."""
        return {}

    def publish_metadata(self) -> None:
        """Tell the runtime :meth:`metadata` or ``models`` changed, so it re-registers now (no-op standalone)."""
        listener = self.metadata_listener
        if listener is not None:
            listener()

    def add_metrics(self, registry: CollectorRegistry) -> None:  # noqa: B027 - optional hook
        """Register this kind's own Prometheus metrics in the app's registry (served on ``/metrics``)."""

    def bind(self, identity: WorkerIdentity) -> None:
        """Receive the runtime's identity object; it is updated in place (port, instance id)."""
        self.identity = identity


def check_model(model: WorkerModel) -> None:
    """Fail at start-up, not at the first registration, when a kind is misdeclared."""
    from services.common.instance import SERVICE_NAME_RE

    name = getattr(model, "service_name", None)
    if not isinstance(name, str) or not SERVICE_NAME_RE.match(name):
        raise TypeError(f"{type(model).__name__}.service_name must match [a-z0-9-]{{1,63}}, got {name!r}")
    for attr in ("capabilities", "models"):
        value = getattr(model, attr, None)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TypeError(f"{type(model).__name__}.{attr} must be a list of strings, got {value!r}")
