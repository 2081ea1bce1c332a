"""The job routes every kind shares (services.worker.job_routes), on a demo job type: both shapes in use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Blueprint
from flask.testing import FlaskClient

from services.common.settings import WorkerSettings
from services.worker.app import create_worker_app
from services.worker.job_routes import job_blueprint
from services.worker.jobs import JobPolicy, JobRunner, jobs_table, new_job_id
from services.worker.model import WorkerModel
from services.worker.procs import owner_token
from services.worker.store import Store
from tests.support import wait_until
from tests.unit.test_worker_jobs import DemoJob

AUTH = {"Authorization": "Bearer t0k"}


class JobsModel(WorkerModel):
    """A kind with the training shape (``/training/tasks/<task_id>``) and the docking one side by side."""

    service_name = "jobs-demo"

    def __init__(self, runner: JobRunner) -> None:
        self.capabilities = ["testing"]
        self.models = ["none"]
        self.runner = runner

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        job_id = new_job_id()
        return self.runner.start(job_id, {"name": "demo", "params_json": {"steps": 1, "mode": body["mode"]}})

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {}

    def blueprint(self) -> Blueprint:
        bp = Blueprint("demo", __name__)
        bp.register_blueprint(job_blueprint(self.runner, "t0k", create=self.create))
        docking = job_blueprint(
            self.runner, "t0k", base="/docking/jobs", noun="docking job", create=self.create,
            cancel_on_delete=True, id_arg="job_id",
        )  # fmt: skip
        bp.register_blueprint(docking, name="docking")
        return bp


@pytest.fixture
def client(tmp_path: Path) -> FlaskClient:
    store = Store(tmp_path / "db.sqlite", jobs_table())
    runner = JobRunner(store, tmp_path / "jobs", DemoJob(), owner=owner_token(), policy=JobPolicy(4, 5.0))
    return create_worker_app(JobsModel(runner), WorkerSettings(registry_urls=[])).test_client()


def data(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, resp.get_json()
    return resp.get_json()["data"]


def test_training_shape_creates_lists_stops_and_deletes(client: FlaskClient) -> None:
    base = "/api/v1/training/tasks"
    assert client.post(base, json={"mode": "hang"}).status_code == 401
    job = data(client.post(base, json={"mode": "hang"}, headers=AUTH), 201)
    assert data(client.get(base, query_string={"status": "running"}))["total"] == 1
    assert client.get(base, query_string={"limit": 0}).status_code == 400
    assert client.delete(f"{base}/{job['id']}", headers=AUTH).status_code == 409  # running: stop it first
    assert data(client.post(f"{base}/{job['id']}/stop", headers=AUTH), 202)["id"] == job["id"]
    wait_until(lambda: data(client.get(f"{base}/{job['id']}"))["status"] == "cancelled", timeout=15)
    log = data(client.get(f"{base}/{job['id']}/logs"))
    assert log["stream"] == "output" and log["status"] == "cancelled" and "next_offset" in log
    assert client.get(f"{base}/{job['id']}/logs", query_string={"stream": "train"}).status_code == 400
    assert data(client.delete(f"{base}/{job['id']}", headers=AUTH)) == {"deleted": job["id"]}
    assert client.get(f"{base}/{job['id']}").status_code == 404


def test_docking_shape_cancels_on_delete_and_names_its_id(client: FlaskClient) -> None:
    base = "/api/v1/docking/jobs"
    job = data(client.post(base, json={"mode": "hang"}, headers=AUTH), 201)
    assert client.delete(f"{base}/{job['id']}").status_code == 401
    resp = client.delete(f"{base}/{job['id']}", headers=AUTH)
    assert resp.status_code == 202 and resp.get_json()["message"] == "cancel requested"
    wait_until(lambda: data(client.get(f"{base}/{job['id']}"))["status"] == "cancelled", timeout=15)
    assert data(client.delete(f"{base}/{job['id']}", headers=AUTH)) == {"deleted": job["id"]}
    paths = client.get("/openapi.json").get_json()["paths"]
    assert "/api/v1/docking/jobs/{job_id}" in paths and "/api/v1/training/tasks/{task_id}/stop" in paths
