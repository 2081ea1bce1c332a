"""Training, Data, Models and Sequence tools against the real fleet (AppTest through Home.py)."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
import requests

from tests.flashdock.apptest import open_page, texts
from tests.support import AUTH, REPO, wait_until


def by_label(widgets: Any, label: str) -> Any:
    return next(w for w in widgets if w.label == label)


def examples_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted((REPO / "examples" / "complexes").rglob("*")):
            if path.is_file():
                zf.write(path, f"examples/{path.relative_to(REPO / 'examples' / 'complexes')}")
    return buf.getvalue()


@pytest.fixture(scope="module")
def dataset_id(fleet: dict[str, Any]) -> str:
    """The example complexes uploaded to the compass-lite worker (AppTest cannot upload files)."""
    api = fleet["lite"].base_url + "/api/v1/data/datasets"
    resp = requests.post(
        api, files={"file": ("ex.zip", examples_zip())}, data={"name": "examples"}, headers=AUTH, timeout=30
    )
    assert resp.status_code == 202, resp.text
    ds = resp.json()["data"]["id"]
    wait_until(
        lambda: requests.get(f"{api}/{ds}", timeout=2).json()["data"]["status"] == "ready", timeout=60, what="dataset"
    )
    return ds


def job_status(fleet: dict[str, Any], job_id: str) -> str:
    return requests.get(f"{fleet['lite'].base_url}/api/v1/training/tasks/{job_id}", timeout=2).json()["data"]["status"]


def test_training_start_stop_and_compare(fleet: dict[str, Any], dataset_id: str) -> None:
    at = open_page("training")
    by_label(at.text_input, "Name").input("apptest-run")
    by_label(at.selectbox, "Dataset").select_index(0)
    by_label(at.radio, "Model").set_value("compass")
    by_label(at.selectbox, "Model size (COMPASS)").set_value("tiny")
    by_label(at.number_input, "Epochs").set_value(500)
    by_label(at.button, "Start job").click().run()
    assert not at.exception
    job_id = at.session_state["train_job"]
    assert "Started " + job_id in texts(at)
    assert job_status(fleet, job_id) == "running"

    wait_until(lambda: job_progress(fleet, job_id).get("epoch"), timeout=60, interval=0.3, what="training progress")
    at = open_page("training")
    assert f"**{job_id}** · status **running**" in texts(at)
    assert at.get("progress"), "no progress bar for a running job"
    assert "epoch" in at.code[0].value, "the log tail shows no epoch line"
    by_label(at.button, "Stop job").click().run()
    assert "Stop requested" in texts(at)
    wait_until(lambda: job_status(fleet, job_id) == "cancelled", timeout=30, interval=0.3, what="cancelled")
    at = open_page("training")
    assert f"**{job_id}** · status **cancelled**" in texts(at)
    assert at.dataframe, "jobs table and run comparison are missing"
    assert "apptest-run" in set(at.dataframe[0].value["name"])


def job_progress(fleet: dict[str, Any], job_id: str) -> dict[str, Any]:
    url = f"{fleet['lite'].base_url}/api/v1/training/tasks/{job_id}"
    return requests.get(url, timeout=2).json()["data"].get("progress") or {}


def test_data_report_and_delete(fleet: dict[str, Any], dataset_id: str) -> None:
    at = open_page("data")
    by_label(at.selectbox, "Dataset").set_value(dataset_id).run()
    assert f"{dataset_id} is ready: 3 usable, 0 failed" in texts(at)
    extra = requests.post(
        fleet["lite"].base_url + "/api/v1/data/datasets",
        files={"file": ("junk.zip", examples_zip())}, data={"name": "to-delete"}, headers=AUTH, timeout=30,
    ).json()["data"]["id"]  # fmt: skip
    at = open_page("data")
    by_label(at.selectbox, "Dataset").set_value(extra).run()
    wait_until(lambda: job_like_ready(fleet, extra), timeout=60, what="second dataset")
    by_label(at.button, "Delete dataset").click().run()
    assert f"Deleted {extra}" in texts(at)
    assert requests.get(f"{fleet['lite'].base_url}/api/v1/data/datasets/{extra}", timeout=2).status_code == 404


def job_like_ready(fleet: dict[str, Any], ds: str) -> bool:
    return (
        requests.get(f"{fleet['lite'].base_url}/api/v1/data/datasets/{ds}", timeout=2).json()["data"]["status"]
        != "validating"
    )


def test_models_card_and_download(fleet: dict[str, Any]) -> None:
    at = open_page("models")
    table = at.dataframe[0].value
    active = requests.get(fleet["lite"].base_url + "/api/v1/models/active", timeout=2).json()["data"]["id"]
    assert active in set(table["id"])
    assert table.set_index("id").loc[active, "active"] == "✓"
    assert f"Active on **compass-lite**: `{active}`" in texts(at)
    by_label(at.button, "Prepare download").click().run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]


def test_sequence_codon_and_missing_worker(fleet: dict[str, Any]) -> None:
    at = open_page("sequence")
    by_label(at.button, "Optimise and verify").click().run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Verified"] == "yes"
    assert 0.5 < float(metrics["CAI"]) <= 1.0
    assert "served by **codon**" in texts(at)
    by_label(at.button, "Run").click().run()  # no antibody worker in this fleet
    assert "No usable worker for protein-embedding" in texts(at)
