"""The COMPASS worker app in-process (Flask test client): auth, paging, errors, predict, and model swaps."""

from __future__ import annotations

import io
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from compass.service.settings import ServiceSettings
from compass.service.worker import CompassModel
from services.common.settings import WorkerSettings
from services.worker.app import create_worker_app
from tests.support import REPO

TOKEN = {"Authorization": "Bearer t0k"}
EXAMPLE = REPO / "examples" / "complexes" / "1a30"


@pytest.fixture
def model(tmp_path: Path) -> CompassModel:
    return CompassModel("compass-lite", ServiceSettings(state_dir=tmp_path / "state", max_pairs=4), api_token="t0k")


@pytest.fixture
def client(model: CompassModel) -> FlaskClient:
    return create_worker_app(model, WorkerSettings(registry_urls=[], max_inflight=16)).test_client()


def lite_checkpoint(path: Path, seed: int) -> Path:
    from compass.model.lite import save_lite, train_lite
    from compass.train.synthetic import synthetic_set

    graphs, records = synthetic_set(24, seed=seed)
    return save_lite(train_lite(graphs, records, {"max_iter": 10, "min_samples_leaf": 2}, seed), path)


OVERRIDE = {"confirm": True, "override": True}  # these tiny models have no validation figure


def body() -> dict[str, str]:
    return {
        "protein_pdb": (EXAMPLE / "1a30_pocket.pdb").read_text(),
        "ligand_sdf": (EXAMPLE / "1a30_ligand.sdf").read_text(),
    }


def test_mutating_calls_need_the_token_and_reads_do_not(client: FlaskClient) -> None:
    for method, path in [
        ("post", "/api/v1/training/tasks"),
        ("post", "/api/v1/training/tasks/x/stop"),
        ("delete", "/api/v1/training/tasks/x"),
        ("post", "/api/v1/data/datasets"),
        ("delete", "/api/v1/data/datasets/x"),
        ("post", "/api/v1/models/x/activate"),
        ("delete", "/api/v1/models/x"),
    ]:
        resp = getattr(client, method)(path)
        assert resp.status_code == 401 and resp.get_json()["error"]["code"] == "UNAUTHORIZED", path
    page = client.get("/api/v1/models").get_json()["data"]
    assert page == {"items": [], "total": 0, "limit": 50, "offset": 0, "active": None}
    assert client.get("/api/v1/training/tasks?status=running&limit=5").get_json()["data"]["limit"] == 5


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("get", "/api/v1/training/tasks?status=bogus", 400, "INVALID_REQUEST"),
        ("get", "/api/v1/training/tasks?limit=0", 400, "INVALID_REQUEST"),
        ("get", "/api/v1/training/tasks/nope", 404, "NOT_FOUND"),
        ("get", "/api/v1/training/tasks/nope/logs", 404, "NOT_FOUND"),
        ("delete", "/api/v1/training/tasks/nope", 404, "NOT_FOUND"),
        ("post", "/api/v1/training/tasks", 400, "INVALID_REQUEST"),
        ("get", "/api/v1/data/datasets/nope", 404, "NOT_FOUND"),
        ("post", "/api/v1/data/datasets", 400, "INVALID_REQUEST"),
        ("get", "/api/v1/models/nope", 404, "NOT_FOUND"),
        ("get", "/api/v1/models/active", 404, "NOT_FOUND"),
        ("get", "/api/v1/models?kind=other", 400, "INVALID_REQUEST"),
        ("post", "/api/v1/models/nope/activate", 404, "NOT_FOUND"),
        ("post", "/predict", 503, "MODEL_NOT_LOADED"),
    ],
)
def test_errors_are_enveloped(client: FlaskClient, method: str, path: str, status: int, code: str) -> None:
    resp = getattr(client, method)(
        path, headers=TOKEN, json={} if method == "post" and "datasets" not in path else None
    )
    assert resp.status_code == status and resp.get_json()["error"]["code"] == code, resp.get_json()


def test_a_file_that_is_not_an_archive_is_refused(client: FlaskClient, model: CompassModel) -> None:
    files = {"file": (io.BytesIO(b"just text"), "data.zip"), "name": "x"}
    resp = client.post("/api/v1/data/datasets", data=files, headers=TOKEN, content_type="multipart/form-data")
    assert resp.status_code == 400 and "archive refused" in resp.get_json()["error"]["details"]
    assert not any((model.settings.state_dir / "datasets").iterdir())


def test_predict_inputs_and_activation_without_dropping_requests(
    client: FlaskClient, model: CompassModel, tmp_path: Path
) -> None:
    first = model.manage.registry.register(lite_checkpoint(tmp_path / "a.skops", 0), name="a", source="file")
    second = model.manage.registry.register(lite_checkpoint(tmp_path / "b.skops", 1), name="b", source="file")
    assert client.post(f"/api/v1/models/{first['id']}/activate", headers=TOKEN, json=OVERRIDE).status_code == 200
    answer = client.post("/predict", json=body()).get_json()["data"]
    assert answer["model"] == "compass-lite" and answer["model_id"] == first["id"] and answer["ligand_atoms"] > 0
    mol2 = {
        "protein": (io.BytesIO((EXAMPLE / "1a30_pocket.pdb").read_bytes()), "p.pdb"),
        "ligand": (io.BytesIO((EXAMPLE / "1a30_ligand.mol2").read_bytes()), "l.mol2"),
    }
    resp = client.post("/predict", data=mol2, content_type="multipart/form-data")
    assert resp.status_code == 200 and abs(resp.get_json()["data"]["pK"] - answer["pK"]) < 1e-6
    for bad, code in [({"protein_pdb": "x"}, "INVALID_REQUEST"), ({**body(), "ligand_index": 3}, "INVALID_STRUCTURE")]:
        assert client.post("/predict", json=bad).get_json()["error"]["code"] == code
    too_many = client.post("/predict/batch", json={"items": [body()] * 5})
    assert too_many.status_code == 400  # max_pairs = 4

    seen: list[Any] = []
    stop = threading.Event()

    def hammer() -> None:
        local = create_worker_app(model, WorkerSettings(registry_urls=[])).test_client()
        while not stop.is_set():
            resp = local.post("/predict", json=body())
            seen.append((resp.status_code, (resp.get_json()["data"] or {}).get("model_id")))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    for target in [second, first, second]:
        assert client.post(f"/api/v1/models/{target['id']}/activate", headers=TOKEN, json=OVERRIDE).status_code == 200
    stop.set()
    for t in threads:
        t.join()
    assert seen and all(status == 200 for status, _ in seen)
    assert {mid for _, mid in seen} <= {first["id"], second["id"]}
    assert model.serving.served is not None and model.serving.served.id == second["id"]
    assert client.delete(f"/api/v1/models/{second['id']}", headers=TOKEN).status_code == 409
    assert client.delete(f"/api/v1/models/{first['id']}", headers=TOKEN).status_code == 200


def test_dataset_uploads_may_exceed_the_predict_body_limit(model: CompassModel) -> None:
    client = create_worker_app(model, WorkerSettings(registry_urls=[], max_body_bytes=4096)).test_client()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # stored, not deflated: well above 4 KiB
        for path in sorted((REPO / "examples" / "complexes").rglob("*")):
            if path.is_file():
                zf.write(path, f"examples/{path.relative_to(REPO / 'examples' / 'complexes')}")
    assert buf.tell() > 4096
    upload = {"file": (io.BytesIO(buf.getvalue()), "ex.zip"), "name": "examples"}
    resp = client.post("/api/v1/data/datasets", data=upload, headers=TOKEN, content_type="multipart/form-data")
    record = resp.get_json()["data"]
    assert resp.status_code == 202 and record["status"] == "validating" and record["root"] == "examples"
    assert (model.settings.state_dir / "datasets" / record["id"] / "files" / "examples" / "index.csv").is_file()
    too_big = client.post("/predict", json={"protein_pdb": "x" * 5000, "ligand_sdf": "y"})
    assert too_big.status_code == 413


def test_new_shipped_weights_replace_the_old_shipped_ones_but_never_a_chosen_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upgrade that ships new weights serves them; a model someone activated stays active."""
    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setenv("COMPASS_WEIGHTS_DIR", str(weights))
    settings = ServiceSettings(state_dir=tmp_path / "state")

    def start() -> CompassModel:
        worker = CompassModel("compass-lite", settings, api_token="t0k")
        worker.load()
        return worker

    lite_checkpoint(weights / "compass-lite.skops", seed=1)
    old = start().serving.served.id
    lite_checkpoint(weights / "compass-lite.skops", seed=2)  # the upgrade
    upgraded = start()
    assert upgraded.serving.served.id != old
    mine = lite_checkpoint(tmp_path / "mine.skops", seed=3)
    chosen = upgraded.manage.registry.register(mine, name="mine", source="file")
    upgraded.serving.activate(chosen["id"])
    lite_checkpoint(weights / "compass-lite.skops", seed=4)  # another upgrade
    assert start().serving.served.id == chosen["id"]
