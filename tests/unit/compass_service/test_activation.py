"""Activation through the worker's route: confirmation, the validation figure, and override said in every answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from compass.service.settings import ServiceSettings
from compass.service.validation import validation_of
from compass.service.worker import CompassModel
from services.common.settings import WorkerSettings
from services.worker.app import create_worker_app
from tests.support import REPO
from tests.unit.compass_service.test_worker_routes import TOKEN, body, lite_checkpoint

VALIDATED = {"val_pearson": 0.52, "val_rmse": 1.31, "n_val": 12}


@pytest.fixture
def model(tmp_path: Path) -> CompassModel:
    return CompassModel("compass-lite", ServiceSettings(state_dir=tmp_path / "state"), api_token="t0k")


@pytest.fixture
def client(model: CompassModel) -> FlaskClient:
    return create_worker_app(model, WorkerSettings(registry_urls=[])).test_client()


def activate(client: FlaskClient, model_id: str, **body_: bool) -> tuple[int, dict]:
    resp = client.post(f"/api/v1/models/{model_id}/activate", headers=TOKEN, json=body_)
    return resp.status_code, resp.get_json()


def test_a_model_without_a_figure_is_refused_unless_overridden_and_then_every_answer_says_so(
    client: FlaskClient, model: CompassModel, tmp_path: Path
) -> None:
    bare = model.manage.registry.register(lite_checkpoint(tmp_path / "bare.skops", 0), name="bare", source="file")
    preview = client.get(f"/api/v1/models/{bare['id']}/activation").get_json()["data"]
    assert preview["candidate"]["validation"] is None and preview["needs_override"] and preview["active"] is None

    status, answer = activate(client, bare["id"], confirm=True)
    assert status == 409 and "no validation figure" in answer["error"]["details"]
    assert model.serving.served is None, "a refused activation changes nothing"
    status, answer = activate(client, bare["id"], override=True)
    assert status == 409 and "needs confirmation" in answer["error"]["details"]

    status, answer = activate(client, bare["id"], confirm=True, override=True)
    assert status == 200 and answer["data"]["override"] is True and "WITHOUT a validation figure" in answer["message"]
    for _ in range(2):
        data = client.post("/predict", json=body()).get_json()["data"]
        assert data["validation"] is None and "no validation figure" in data["warning"]
    assert model.metadata()["validation"] is None


def test_activation_shows_both_figures_and_needs_confirmation(
    client: FlaskClient, model: CompassModel, tmp_path: Path
) -> None:
    registry = model.manage.registry
    first = registry.register(lite_checkpoint(tmp_path / "a.skops", 0), name="a", source="job", metrics=VALIDATED)
    second = registry.register(
        lite_checkpoint(tmp_path / "b.skops", 1), name="b", source="job", metrics={**VALIDATED, "val_pearson": 0.31}
    )
    assert activate(client, first["id"], confirm=True)[0] == 200
    preview = client.get(f"/api/v1/models/{second['id']}/activation").get_json()["data"]
    assert preview["candidate"]["validation"]["value"] == 0.31
    assert preview["active"]["validation"]["value"] == 0.52 and not preview["needs_override"]

    status, answer = activate(client, second["id"])
    details = answer["error"]["details"]
    assert status == 409 and "needs confirmation" in details and "0.31" in details and "0.52" in details
    assert model.serving.served.id == first["id"]
    bad = client.post(f"/api/v1/models/{second['id']}/activate", headers=TOKEN, json={"confirm": "yes"})
    assert bad.status_code == 400

    assert activate(client, second["id"], confirm=True)[0] == 200
    data = client.post("/predict", json=body()).get_json()["data"]
    assert data["validation"]["value"] == 0.31 and data["validation"]["metric"] == "pearson" and "warning" not in data
    advertised = model.metadata()["validation"]
    assert advertised["value"] == 0.31 and "by protein" in advertised["split"]


def test_the_shipped_model_carries_its_protein_grouped_cross_validation() -> None:
    from compass.model.checkpoint import load_checkpoint

    shipped = REPO / "compass" / "weights" / "compass-lite.skops"
    if not shipped.is_file():
        pytest.skip("no shipped compass-lite weights")
    meta = load_checkpoint(shipped).meta
    figure = validation_of({"metrics": {}}, meta)
    assert figure is not None and figure["metric"] == "pearson"
    assert figure["value"] == pytest.approx(meta["grouped_cv"]["pearson_r"], abs=1e-3)
    assert "grouped by protein" in figure["split"]
