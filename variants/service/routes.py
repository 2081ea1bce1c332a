"""The variant worker's routes under ``/api/v1``: design, training tasks, models, the mutation store.

Reads are open; mutating calls need ``Authorization: Bearer <token>`` when the worker has one.
Training task routes are the job runtime's (:mod:`services.worker.job_routes`), as COMPASS's are;
this module gives them the run's metrics and curves.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request

from services.common.auth import guard_writes
from services.common.envelope import ApiError, ErrorCode, json_body, ok
from services.worker import jobfiles
from services.worker.job_routes import job_blueprint
from variants.db import StoreError, VariantStore
from variants.importer import ImportOptions, import_table

if TYPE_CHECKING:
    from variants.service.worker import VariantWorker

_IMPORT_FIELDS = (
    "template",
    "mutant_column",
    "label_column",
    "label_name",
    "reads_column",
    "fraction_column",
    "nucleotide_column",
    "assay",
)


def build_blueprint(worker: VariantWorker) -> Blueprint:
    bp = Blueprint("variants", __name__)
    jobs, serving = worker.jobs, worker.serving

    guard_writes(bp, worker.api_token, open_endpoints=frozenset({"variants.design"}))

    def run_metrics(task_id: str) -> dict[str, Any]:
        """The run's ``metrics.json`` (ROC-AUC, AP, confusion matrix) once it exists, and its curves' data."""
        run = jobs.runs_dir / task_id
        metrics = jobfiles.read_json(run / "metrics.json")
        return {"metrics": metrics, "curves": worker.curves(run) if metrics else None}

    bp.register_blueprint(job_blueprint(jobs, worker.api_token, metrics=run_metrics))

    @bp.post("/design")
    def design() -> Response:
        """Top-``n`` variants of a region from an in-silico library, ranked by the active model."""
        return ok(serving.design(json_body()), "design library ranked")

    # -- models ------------------------------------------------------------------------------

    @bp.get("/models")
    def list_models() -> Response:
        return ok({"items": serving.list(), "active": serving.describe()})

    @bp.post("/models/<model_id>/activate")
    def activate(model_id: str) -> Response:
        data = serving.activate(model_id)
        worker.publish_metadata()
        return ok(data, "model activated")

    # -- the mutation store ------------------------------------------------------------------

    @bp.get("/data/summary")
    def data_summary() -> Response:
        with VariantStore(worker.db_path) as store:
            return ok(store.summary())

    @bp.post("/data/sources")
    def add_source() -> Response:
        body = json_body()
        tid, seq = body.get("template_id"), body.get("sequence")
        if not isinstance(tid, str) or not tid or not isinstance(seq, str) or not seq.strip():
            raise ApiError(ErrorCode.INVALID_REQUEST, "'template_id' and 'sequence' are required strings")
        seq = "".join(seq.split()).upper()
        bad = "".join(sorted(set(seq) - set("ACDEFGHIKLMNPQRSTVWY")))
        if bad or len(seq) > 5000:
            raise ApiError(ErrorCode.INVALID_SEQUENCE, f"template has letters outside the protein alphabet: {bad!r}")
        with VariantStore(worker.db_path) as store:
            try:
                row = store.add_source(tid[:128], seq, name=str(body.get("name", ""))[:256], provenance="api")
            except StoreError as exc:
                raise ApiError(ErrorCode.CONFLICT, str(exc)) from None
        return ok(row, "template added", status=201)

    @bp.post("/data/import")
    def import_upload() -> Response:
        """Multipart ``file`` (CSV or FASTA) plus column fields; validated whole, stored all or nothing."""
        request.max_content_length = worker.settings.max_upload_bytes + (1 << 16)
        upload = request.files.get("file")
        if upload is None:
            raise ApiError(ErrorCode.INVALID_REQUEST, "multipart field 'file' (a CSV or FASTA table) is required")
        try:
            text = upload.read().decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(ErrorCode.INVALID_REQUEST, "the table is not UTF-8 text") from None
        opts = ImportOptions(**{k: request.form.get(k, "") for k in _IMPORT_FIELDS})
        if request.form.get("window_start"):
            opts.window_start = _form_int("window_start")
        if request.form.get("label"):
            opts.label = float(_form_int("label"))
        name = (upload.filename or "upload.csv").rsplit("/", 1)[-1][:128]
        with VariantStore(worker.db_path) as store:
            try:
                n = import_table(store, name, opts, text=text)
            except StoreError as exc:
                raise ApiError(ErrorCode.INVALID_REQUEST, str(exc)) from None
        return ok({"imported": n, "file": name, "options": json.loads(json.dumps(opts.__dict__))}, status=201)

    return bp


def _form_int(name: str) -> int:
    try:
        return int(request.form[name])
    except ValueError:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"{name} must be an integer") from None
