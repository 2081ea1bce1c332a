"""The dock worker's own routes: ``POST /dock`` (the /predict call under its own name), docking jobs
and pocket detection under ``/api/v1/docking/``.

Job creation and cancel need ``Authorization: Bearer <token>`` when the worker has a token;
reads, /dock and pocket detection are open like /predict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, request
from flask.blueprints import BlueprintSetupState

from docking.errors import DockingError, api_error
from docking.jobs import STATUSES, DockingJobs
from services.common.auth import require_token
from services.common.envelope import ApiError, ErrorCode, json_body, ok

MAX_LIMIT = 500


def _int_arg(name: str, default: int, hi: int) -> int:
    raw = request.args.get(name, "")
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"{name} must be an integer") from None
    if not 0 <= value <= hi:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"{name} must be between 0 and {hi}")
    return value


def _mount_dock(state: BlueprintSetupState) -> None:
    """``POST /dock`` at the root is the runtime's /predict view: same checks, same answer."""
    state.app.add_url_rule("/dock", "dock", state.app.view_functions["predict"], methods=["POST"])


def build_blueprint(
    jobs: DockingJobs, pockets: Callable[[dict[str, Any]], dict[str, Any]], api_token: str
) -> Blueprint:
    bp = Blueprint("docking", __name__)
    bp.record_once(_mount_dock)

    def _checked(fn: Callable[[], Response]) -> Response:
        try:
            return fn()
        except DockingError as err:
            raise api_error(err) from None

    @bp.post("/docking/jobs")
    def create_job() -> Response:
        """``{protein_pdb, ligands: [smiles...], names?, box, exhaustiveness, n_poses, seed, ph, score}`` → job."""
        require_token(api_token)
        body = json_body()
        return _checked(lambda: ok(jobs.public(jobs.create(body), detail=True), "docking job started", status=201))

    @bp.get("/docking/jobs")
    def list_jobs() -> Response:
        raw = [s for s in request.args.get("status", "").split(",") if s]
        if any(s not in STATUSES for s in raw):
            raise ApiError(ErrorCode.INVALID_REQUEST, f"status must be among {', '.join(STATUSES)}")
        limit, offset = _int_arg("limit", 50, MAX_LIMIT) or 1, _int_arg("offset", 0, 10**9)
        items, total = jobs.list(raw or None, limit, offset)
        return ok({"items": items, "total": total, "limit": limit, "offset": offset})

    @bp.get("/docking/jobs/<job_id>")
    def get_job(job_id: str) -> Response:
        """The job (status, progress) with a page of results so far (``offset``, ``limit``)."""
        return ok(jobs.view(job_id, _int_arg("offset", 0, 10**9), _int_arg("limit", 100, MAX_LIMIT)))

    @bp.delete("/docking/jobs/<job_id>")
    def cancel_job(job_id: str) -> Response:
        """Cancel a running job (202; its Vina process gets SIGTERM now), or delete a finished one."""
        require_token(api_token)
        if jobs.get(job_id)["status"] == "running":
            return ok(jobs.public(jobs.stop(job_id)), "cancel requested", status=202)
        jobs.delete(job_id)
        return ok({"deleted": job_id}, "docking job deleted")

    @bp.post("/docking/pockets")
    def detect() -> Response:
        """``{protein_pdb}`` → the largest cavities pyKVFinder finds (``{pockets: [{id, volume, center, size}]}``)."""
        body = json_body()
        return _checked(lambda: ok(pockets(body)))

    return bp
