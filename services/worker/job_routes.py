"""The HTTP routes of a kind's jobs on the job runtime (:mod:`services.worker.jobs`), written once.

COMPASS training, variant training and docking jobs answer alike: create (201), a page of jobs
filtered by ``?status=``, one job, stop (202), delete, the log from a byte offset and the process's
resources. What differs between kinds is a parameter, never a copy: the URL and the noun of the
messages, how the kind creates a job (its plan checks), what one job's view adds, whether a
DELETE cancels a running job, the log streams and the run's metrics.

Mutating calls need ``Authorization: Bearer <token>`` when the worker has one; reads are open.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, request

from services.common.auth import guard_writes
from services.common.envelope import ApiError, ErrorCode, json_body, ok
from services.worker import jobfiles
from services.worker.jobs import STATUSES, JobRunner
from services.worker.paging import int_arg, listing

Record = dict[str, Any]


def job_blueprint(
    jobs: JobRunner,
    api_token: str,
    *,
    base: str = "/training/tasks",
    noun: str = "training task",
    create: Callable[[Record], Record] | None = None,
    view: Callable[[str], Record] | None = None,
    cancel_on_delete: bool = False,
    logs: Mapping[str, Callable[[str], Path]] | None = None,
    metrics: Callable[[str], Record] | None = None,
    id_arg: str = "task_id",
) -> Blueprint:
    """The job routes under ``base``, to nest in the kind's blueprint (``bp.register_blueprint``).

    :param create: body → job record (default ``jobs.create``); raises ApiError for a bad body.
    :param view: job id → the answer of ``GET base/<id>`` (default: the record in detail).
    :param cancel_on_delete: ``DELETE`` on a running job stops it (202) instead of refusing (409).
    :param logs: stream name → job id → log file; ``?stream=`` picks one (default: the process output).
    :param metrics: job id → the run's metrics, served at ``base/<id>/metrics`` when given.
    :param id_arg: the id's name in the URL rule, which names the path parameter in ``/openapi.json``.
    """
    bp = Blueprint("jobs", __name__)
    guard_writes(bp, api_token)
    make = create or jobs.create
    streams = dict(logs or {"output": jobs.output_log})
    default_stream = next(iter(streams))
    one = f"{base}/<{id_arg}>"

    @bp.url_value_preprocessor
    def _job_id(_endpoint: str | None, values: dict[str, Any] | None) -> None:
        """The views take ``job_id`` whatever the rule calls it."""
        if values is not None and id_arg in values:
            values["job_id"] = values.pop(id_arg)

    @bp.post(base)
    def create_job() -> Response:
        """Start a job from the body, checked by the kind first; 503 OVERLOADED when every device is busy."""
        return ok(jobs.public(make(json_body()), detail=True), f"{noun} started", status=201)

    @bp.get(base)
    def list_jobs() -> Response:
        """A page of jobs (``limit``, ``offset``), filtered by ``?status=running,failed...``."""
        return listing(jobs.list, STATUSES)

    @bp.get(one)
    def get_job(job_id: str) -> Response:
        """One job: status, live progress, the stop request and what the kind adds."""
        return ok(view(job_id) if view else jobs.public(jobs.get(job_id), detail=True))

    @bp.post(f"{one}/stop")
    def stop_job(job_id: str) -> Response:
        """SIGTERM now, SIGKILL after the grace period; the status turns ``cancelled`` once the process is gone."""
        return ok(jobs.public(jobs.stop(job_id)), "stop requested", status=202)

    @bp.delete(one)
    def delete_job(job_id: str) -> Response:
        """Delete a finished job and its files (where DELETE cancels, a running job is stopped: 202)."""
        if cancel_on_delete and jobs.get(job_id)["status"] == "running":
            return ok(jobs.public(jobs.stop(job_id)), "cancel requested", status=202)
        jobs.delete(job_id)
        return ok({"deleted": job_id}, f"{noun} deleted")

    @bp.get(f"{one}/logs")
    def job_logs(job_id: str) -> Response:
        """A log of the job from byte ``offset`` (``stream``: the process output unless the kind has others)."""
        row = jobs.get(job_id)
        stream = request.args.get("stream", default_stream)
        if stream not in streams:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"stream must be {' or '.join(map(repr, streams))}")
        chunk = jobfiles.read_log(
            streams[stream](job_id), int_arg("offset", 0, 0, 2**62), int_arg("limit", 65536, 1, 2**20)
        )
        return ok({**chunk, "stream": stream, "status": row["status"]})

    @bp.get(f"{one}/resources")
    def job_resources(job_id: str) -> Response:
        """CPU, memory and GPU use of the job's process while it runs."""
        row = jobs.get(job_id)
        alive = row["status"] == "running"
        usage = jobfiles.resources(row.get("pid") if alive else None, row.get("pid_started"), row.get("device"))
        return ok({"status": row["status"], **usage})

    if metrics is not None:
        read_metrics = metrics

        @bp.get(f"{one}/metrics")
        def job_metrics(job_id: str) -> Response:
            """The run's metrics once it wrote them (``status`` beside them)."""
            row = jobs.get(job_id)
            return ok({"status": row["status"], **read_metrics(job_id)})

    return bp
