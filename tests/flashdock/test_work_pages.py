"""Training, Data and Models against the real fleet (AppTest through Home.py)."""

from __future__ import annotations

from typing import Any

import requests

from tests.flashdock.apptest import by_label, open_page, texts
from tests.flashdock.fleet import examples_zip
from tests.support import wait_until


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

    # A second dataset uploaded through the page's form, then deleted from it.
    at = open_page("data")
    archive = by_label(at.file_uploader, "Dataset archive (.zip, .tar.gz) of any data-root layout")
    archive.set_value(("to-delete.zip", with_a_broken_complex(), "application/zip"))
    by_label(at.text_input, "Name").input("to-delete")
    by_label(at.button, "Upload").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    extra = at.session_state["data_selected"]
    listed = requests.get(f"{fleet['lite'].base_url}/api/v1/data/datasets/{extra}", timeout=2).json()["data"]
    assert (listed["name"], listed["archive_name"]) == ("to-delete", "to-delete.zip")
    wait_until(lambda: job_like_ready(fleet, extra), timeout=60, what="second dataset")
    at.run()
    assert by_label(at.selectbox, "Dataset").value == extra
    assert f"{extra} is ready: 3 usable, 1 failed" in texts(at)
    failed = at.dataframe[1].value  # one row per complex that failed, with the worker's reason
    assert "9bad" in failed.to_string() and len(failed) == 1, failed
    by_label(at.button, "Delete dataset").click().run()
    assert f"Deleted {extra}" in texts(at)
    assert extra not in set(at.dataframe[0].value["id"]), "the deleted dataset is still listed"
    assert requests.get(f"{fleet['lite'].base_url}/api/v1/data/datasets/{extra}", timeout=2).status_code == 404


def with_a_broken_complex() -> bytes:
    """The examples archive plus one complex whose pocket is not a structure (and its index row)."""
    import io
    import zipfile

    from tests.flashdock.fleet import EXAMPLES

    buf = io.BytesIO(examples_zip())
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr("examples/9bad/9bad_pocket.pdb", "this is not a structure\n")
        zf.writestr("examples/9bad/9bad_ligand.sdf", (EXAMPLES / "1a30" / "1a30_ligand.sdf").read_text())
    original = zipfile.ZipFile(io.BytesIO(examples_zip()))
    index = original.read("examples/index.csv").decode().rstrip("\n") + "\n9bad,6.0,,,,,,\n"
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            if item.filename != "examples/index.csv":
                dst.writestr(item, src.read(item))
        dst.writestr("examples/index.csv", index)
    return out.getvalue()


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
