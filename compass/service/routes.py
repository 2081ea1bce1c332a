"""The COMPASS worker's own routes under ``/api/v1``: training tasks, datasets, models.

Reads are open; every mutating call needs ``Authorization: Bearer <token>`` when the worker has
a token. Lists page with ``limit``/``offset`` and answer ``{items, total, limit, offset}``
(:mod:`services.worker.paging`). The training task routes are the job runtime's
(:mod:`services.worker.job_routes`); this module gives them the plan checks, the ``train`` log
and the run's metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, Response, request, send_file

from compass.service import runfiles
from compass.service.datasets import STATUSES as DATASET_STATUSES
from compass.service.models import SUFFIXES
from services.common.auth import guard_writes
from services.common.envelope import ApiError, ErrorCode, json_body, ok
from services.worker.job_routes import job_blueprint
from services.worker.paging import listing, page, paging

if TYPE_CHECKING:
    from compass.service.manage import Management
    from compass.service.serving import Serving


def build_blueprint(serving: Serving, manage: Management, api_token: str) -> Blueprint:
    """The routes take the worker's parts, never the worker: inference for the active model, the rest for records."""
    bp = Blueprint("compass", __name__)
    jobs, datasets, registry = manage.jobs, manage.datasets, manage.registry

    guard_writes(bp, api_token)
    train_logs = {"output": jobs.output_log, "train": lambda job_id: jobs.run_dir(job_id) / "train.log"}
    bp.register_blueprint(
        job_blueprint(jobs, api_token, logs=train_logs, metrics=lambda job_id: runfiles.metrics(jobs.run_dir(job_id)))
    )

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
        return listing(datasets.list, DATASET_STATUSES)

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
        limit, offset = paging()
        kind = request.args.get("kind") or None
        if kind is not None and kind not in SUFFIXES:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"kind must be one of {', '.join(SUFFIXES)}")
        rows, total = registry.list(kind, limit, offset)
        served = serving.served
        data = page([registry.public(r) for r in rows], total, limit, offset)
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
