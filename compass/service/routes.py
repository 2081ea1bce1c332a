"""The COMPASS worker's own routes under ``/api/v1``: training tasks, datasets, models.

Reads are open; every mutating call needs ``Authorization: Bearer <token>`` when the worker has
a token. Lists page with ``limit``/``offset`` and answer ``{items, total, limit, offset}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request, send_file

from compass.service import runfiles
from compass.service.datasets import STATUSES as DATASET_STATUSES
from compass.service.jobs import STATUSES as JOB_STATUSES
from compass.service.models import SUFFIXES
from services.common.auth import require_token
from services.common.envelope import ApiError, ErrorCode, json_body, ok
from services.worker import jobfiles

if TYPE_CHECKING:
    from compass.service.manage import Management
    from compass.service.serving import Serving

_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_LIMIT = 500


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"{name} must be between {lo} and {hi}")
    return value


def _paging() -> tuple[int, int]:
    return _int_arg("limit", 50, 1, MAX_LIMIT), _int_arg("offset", 0, 0, 10**9)


def _status_filter(allowed: tuple[str, ...]) -> list[str] | None:
    raw = request.args.get("status", "")
    wanted = [s.strip() for s in raw.split(",") if s.strip()]
    bad = [s for s in wanted if s not in allowed]
    if bad:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"unknown status {bad[0]!r}; use {', '.join(allowed)}")
    return wanted or None


def _page(items: list[dict[str, Any]], total: int, limit: int, offset: int) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": limit, "offset": offset}


def _listing(lister: Callable[..., tuple[list[dict[str, Any]], int]], statuses: tuple[str, ...]) -> Response:
    """One page of jobs or datasets filtered by ``?status=``: both list routes answer alike."""
    limit, offset = _paging()
    items, total = lister(_status_filter(statuses), limit, offset)
    return ok(_page(items, total, limit, offset))


def build_blueprint(serving: Serving, manage: Management, api_token: str) -> Blueprint:
    """The routes take the worker's parts, never the worker: inference for the active model, the rest for records."""
    bp = Blueprint("compass", __name__)
    jobs, datasets, registry = manage.jobs, manage.datasets, manage.registry

    @bp.before_request
    def _auth() -> None:
        if request.method in _MUTATING:
            require_token(api_token)

    # -- training tasks ----------------------------------------------------------------------

    @bp.post("/training/tasks")
    def create_task() -> Response:
        """Start a training job: ``{plan, dataset_id, name?}``; 503 OVERLOADED when every device is busy."""
        task = jobs.create(json_body())
        return ok(jobs.public(task, detail=True), "training task started", status=201)

    @bp.get("/training/tasks")
    def list_tasks() -> Response:
        return _listing(jobs.list, JOB_STATUSES)

    @bp.get("/training/tasks/<task_id>")
    def get_task(task_id: str) -> Response:
        return ok(jobs.public(jobs.get(task_id), detail=True))

    @bp.post("/training/tasks/<task_id>/stop")
    def stop_task(task_id: str) -> Response:
        """SIGTERM now, SIGKILL after the grace period; the status turns ``cancelled`` once the process is gone."""
        return ok(jobs.public(jobs.stop(task_id)), "stop requested", status=202)

    @bp.delete("/training/tasks/<task_id>")
    def delete_task(task_id: str) -> Response:
        jobs.delete(task_id)
        return ok({"deleted": task_id}, "training task deleted")

    @bp.get("/training/tasks/<task_id>/logs")
    def task_logs(task_id: str) -> Response:
        """The process output (``stream=output``, default) or ``train.log`` from byte ``offset``."""
        row = jobs.get(task_id)
        stream = request.args.get("stream", "output")
        if stream not in ("output", "train"):
            raise ApiError(ErrorCode.INVALID_REQUEST, "stream must be 'output' or 'train'")
        path = jobs.output_log(task_id) if stream == "output" else jobs.run_dir(task_id) / "train.log"
        chunk = jobfiles.read_log(path, _int_arg("offset", 0, 0, 2**62), _int_arg("limit", 65536, 1, 2**20))
        return ok({**chunk, "stream": stream, "status": row["status"]})

    @bp.get("/training/tasks/<task_id>/metrics")
    def task_metrics(task_id: str) -> Response:
        row = jobs.get(task_id)
        return ok({"status": row["status"], **runfiles.metrics(jobs.run_dir(task_id))})

    @bp.get("/training/tasks/<task_id>/resources")
    def task_resources(task_id: str) -> Response:
        row = jobs.get(task_id)
        alive = row["status"] == "running"
        usage = jobfiles.resources(row.get("pid") if alive else None, row.get("pid_started"), row.get("device"))
        return ok({"status": row["status"], **usage})

    # -- datasets ----------------------------------------------------------------------------

    @bp.post("/data/datasets")
    def upload_dataset() -> Response:
        """Multipart ``file`` (.zip/.tar.gz of a data root) + ``name``; 202 while it validates."""
        request.max_content_length = manage.settings.max_upload_bytes + (1 << 20)  # the upload's own limit
        upload = request.files.get("file")
        if upload is None:
            raise ApiError(ErrorCode.INVALID_REQUEST, "multipart field 'file' (a .zip or .tar.gz archive) is required")
        record = datasets.create(upload.stream, upload.filename or "", request.form.get("name", ""))
        return ok(record, "dataset uploaded; validating", status=202)

    @bp.get("/data/datasets")
    def list_datasets() -> Response:
        return _listing(datasets.list, DATASET_STATUSES)

    @bp.get("/data/datasets/<dataset_id>")
    def get_dataset(dataset_id: str) -> Response:
        return ok(datasets.public(datasets.get(dataset_id), detail=True))

    @bp.delete("/data/datasets/<dataset_id>")
    def delete_dataset(dataset_id: str) -> Response:
        datasets.delete(dataset_id, jobs.running_with_dataset(dataset_id))
        return ok({"deleted": dataset_id}, "dataset deleted")

    # -- models ------------------------------------------------------------------------------

    @bp.get("/models")
    def list_models() -> Response:
        limit, offset = _paging()
        kind = request.args.get("kind") or None
        if kind is not None and kind not in SUFFIXES:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"kind must be one of {', '.join(SUFFIXES)}")
        rows, total = registry.list(kind, limit, offset)
        served = serving.served
        data = _page([registry.public(r) for r in rows], total, limit, offset)
        data["active"] = served.describe() if served else None
        return ok(data)

    @bp.get("/models/active")
    def active_model() -> Response:
        served = serving.served
        if served is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"no {serving.kind} model is active")
        return ok(registry.public(registry.get(served.id), detail=True))

    @bp.get("/models/<model_id>")
    def get_model(model_id: str) -> Response:
        return ok(registry.public(registry.get(model_id), detail=True))

    @bp.get("/models/<model_id>/download")
    def download_model(model_id: str) -> Response:
        row = registry.get(model_id)
        path = registry.path(row)
        if not path.is_file():
            raise ApiError(ErrorCode.NOT_FOUND, f"the file of model {model_id} is missing")
        name = f"{row['kind']}-{model_id}{path.suffix}"
        return send_file(path, mimetype="application/octet-stream", as_attachment=True, download_name=name)

    @bp.delete("/models/<model_id>")
    def delete_model(model_id: str) -> Response:
        registry.delete(model_id)
        return ok({"deleted": model_id}, "model deleted")

    @bp.get("/models/<model_id>/activation")
    def activation_preview(model_id: str) -> Response:
        """What activating this model would change: its validation figure beside the active model's."""
        return ok(serving.activation_preview(model_id))

    @bp.post("/models/<model_id>/activate")
    def activate_model(model_id: str) -> Response:
        """Serve this model from now on (loaded first, then swapped in; no request is dropped).

        Body ``{"confirm": true, "override": false}``: without ``confirm`` the answer is a 409 naming the
        candidate's and the active model's figures; a model without a validation figure needs ``override``.
        """
        body = json_body(4096)
        if not all(isinstance(body.get(k, False), bool) for k in ("confirm", "override")):
            raise ApiError(ErrorCode.INVALID_REQUEST, "confirm and override must be true or false")
        done = serving.activate(model_id, confirm=body.get("confirm", False), override=body.get("override", False))
        return ok(done, "model activated" + (" WITHOUT a validation figure (override)" if done["override"] else ""))

    return bp
