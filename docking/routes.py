"""The dock worker's own routes: ``POST /dock`` (the /predict call under its own name), docking jobs
and pocket detection under ``/api/v1/docking/``.

The job routes are the job runtime's (:mod:`services.worker.job_routes`) under ``/docking/jobs``:
here they get the ligand checks, a view with a page of results, and a DELETE that cancels a
running job. Job creation, stop and DELETE need ``Authorization: Bearer <token>`` when the worker
has a token; reads, /dock and pocket detection are open like /predict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Response
from flask.blueprints import BlueprintSetupState

from docking.errors import DockingError, api_error
from docking.jobs import DockingJobs
from services.common.envelope import json_body, ok
from services.worker.job_routes import job_blueprint
from services.worker.paging import MAX_LIMIT, int_arg

T = TypeVar("T")


def _mount_dock(state: BlueprintSetupState) -> None:
    """``POST /dock`` at the root is the runtime's /predict view: same checks, same answer."""
    state.app.add_url_rule("/dock", "dock", state.app.view_functions["predict"], methods=["POST"])


def _checked(fn: Callable[[dict[str, Any]], T], body: dict[str, Any]) -> T:
    """``fn(body)`` with the docking core's error as the envelope's."""
    try:
        return fn(body)
    except DockingError as err:
        raise api_error(err) from None


def build_blueprint(
    jobs: DockingJobs, pockets: Callable[[dict[str, Any]], dict[str, Any]], api_token: str
) -> Blueprint:
    bp = Blueprint("docking", __name__)
    bp.record_once(_mount_dock)

    def view(job_id: str) -> dict[str, Any]:
        """The job (status, progress) with a page of results so far (``offset``, ``limit``)."""
        return jobs.view(job_id, int_arg("offset", 0, 0, 10**9), int_arg("limit", 100, 0, MAX_LIMIT))

    bp.register_blueprint(
        job_blueprint(
            jobs,
            api_token,
            base="/docking/jobs",
            noun="docking job",
            create=lambda body: _checked(jobs.create, body),
            view=view,
            cancel_on_delete=True,
            id_arg="job_id",
        )
    )

    @bp.post("/docking/pockets")
    def detect() -> Response:
        """``{protein_pdb}`` → the largest cavities pyKVFinder finds (``{pockets: [{id, volume, center, size}]}``)."""
        return ok(_checked(pockets, json_body()))

    return bp
