"""What the sequence workers add to the runtime's HTTP surface, installed when their blueprint is registered.

* ``POST /predict/batch`` also takes the seed systems' shape ``{"sequences": [...], "task_type",
  "options"}``: a WSGI middleware rewrites it into the runtime's ``{"items": [...]}`` before
  Flask sees it, so the runtime's limits, guards and per-item answers apply unchanged.
* ``GET /metrics`` gains the per-task-type metrics of :class:`seqmodels.metrics.TaskMetrics`
  (appended here only when the runtime did not take them through its ``add_metrics`` hook).

Both hook in through public Flask/WSGI seams (``Blueprint.record_once``, ``app.wsgi_app``,
``app.view_functions``); the runtime needs no change.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response
from flask.blueprints import BlueprintSetupState

from services.common.envelope import REQUEST_ID_HEADER, REQUEST_ID_RE, ErrorCode, envelope, new_request_id

if TYPE_CHECKING:
    from seqmodels.worker import SequenceModel

BATCH_PATH = "/predict/batch"


class SequencesBatchMiddleware:
    """Rewrites ``{"sequences": [...], ...}`` on POST /predict/batch into ``{"items": [{"sequence": s, ...}]}``."""

    def __init__(self, app: Callable[..., Iterable[bytes]], max_items: Callable[[], int], max_bytes: int) -> None:
        self.app = app
        self.max_items = max_items
        self.max_bytes = max_bytes

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO") == BATCH_PATH:
            refusal = self._rewrite(environ)
            if refusal is not None:
                return refusal(environ, start_response)
        return self.app(environ, start_response)

    def _rewrite(self, environ: dict[str, Any]) -> Response | None:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None
        if length <= 0 or length > self.max_bytes:
            return None  # empty or too big: the runtime gives its own answer
        raw = environ["wsgi.input"].read(length)
        body = raw
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            doc = None  # malformed: the runtime says so
        if isinstance(doc, dict) and "sequences" in doc and "items" not in doc:
            sequences = doc.pop("sequences")
            if not isinstance(sequences, list) or not sequences:
                return _refuse(environ, "'sequences' must be a non-empty list of strings")
            if len(sequences) > self.max_items():
                return _refuse(environ, f"{len(sequences)} sequences; at most {self.max_items()} per batch")
            body = json.dumps({"items": [{**doc, "sequence": seq} for seq in sequences]}).encode()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return None


def _refuse(environ: dict[str, Any], details: str) -> Response:
    """An INVALID_REQUEST envelope answered before Flask (the request id is echoed all the same)."""
    rid = environ.get("HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_"), "")
    rid = rid if REQUEST_ID_RE.match(rid) else new_request_id()
    body = envelope(None, details, success=False, error={"code": ErrorCode.INVALID_REQUEST.value, "details": details})
    body["request_id"] = rid
    resp = Response(json.dumps(body), status=ErrorCode.INVALID_REQUEST.status, mimetype="application/json")
    resp.headers[REQUEST_ID_HEADER] = rid
    return resp


def _append_task_metrics(app: Flask, render: Callable[[], bytes]) -> None:
    original = app.view_functions["metrics"]

    @functools.wraps(original)
    def metrics_with_tasks(*args: Any, **kwargs: Any) -> Response:
        resp = original(*args, **kwargs)
        resp.set_data(resp.get_data() + render())
        return resp

    app.view_functions["metrics"] = metrics_with_tasks


def sequence_blueprint(model: SequenceModel) -> Blueprint:
    """An empty blueprint whose registration installs the two extensions on the worker app."""
    bp = Blueprint(f"{model.service_name}_sequences", __name__)

    def install(state: BlueprintSetupState) -> None:
        app = state.app
        worker = app.extensions["worker"]
        app.wsgi_app = SequencesBatchMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, lambda: worker.max_batch_items, worker.settings.max_body_bytes
        )
        if not model.metrics.attached:
            _append_task_metrics(app, model.metrics.render)

    bp.record_once(install)
    return bp
