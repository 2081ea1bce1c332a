"""Training from an uploaded plan file, and activating a model on the Models page (AppTest, real worker).

The plan file trains a small compass-lite model to completion (seconds on the example dataset), which
is also the second model the activation needs. Every check of an effect asks the worker's own API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.flashdock.apptest import by_label, open_page, texts
from tests.flashdock.fleet import EXAMPLES, instances
from tests.support import AUTH, wait_until

PDB, SDF = EXAMPLES / "1a30" / "1a30_pocket.pdb", EXAMPLES / "1a30" / "1a30_ligand.sdf"
PLAN_LABEL = "…or an experiment plan (JSON) instead of the fields above"
# What the form cannot express (its compass-lite settings are fixed): proof that the file was used.
PLAN = {
    "seed": 7,
    "split": {"kind": "none"},
    "model": {"kind": "compass-lite", "config": {"max_iter": 15, "min_samples_leaf": 1}},
}


def api(fleet: dict[str, Any], path: str) -> Any:
    resp = requests.get(f"{fleet['lite'].base_url}/api/v1{path}", timeout=5)
    assert resp.ok, resp.text
    return resp.json()["data"]


def wait_finished(fleet: dict[str, Any], job_id: str) -> dict[str, Any]:
    done = wait_until(
        lambda: (j := api(fleet, f"/training/tasks/{job_id}"))["status"] != "running" and j,
        timeout=120,
        interval=0.5,
        what=f"job {job_id} to finish",
    )
    assert done["status"] == "completed", done
    assert done["model_id"], f"job {job_id} completed without registering its model: {done.get('error')}"
    return done


def start_from_plan_file(content: bytes, name: str) -> Any:
    at = open_page("training")
    by_label(at.text_input, "Name").input(name)
    by_label(at.radio, "Model").set_value("compass")  # the form says COMPASS: the file must win
    by_label(at.file_uploader, PLAN_LABEL).set_value(("plan.json", content, "application/json"))
    by_label(at.button, "Start job").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_training_from_a_plan_file(fleet: dict[str, Any], dataset_id: str) -> None:
    at = start_from_plan_file(json.dumps(PLAN).encode(), "plan-file-run")
    job_id = at.session_state["train_job"]
    assert f"Started {job_id}" in texts(at)

    job = api(fleet, f"/training/tasks/{job_id}")
    assert (job["name"], job["model_kind"], job["dataset_id"]) == ("plan-file-run", "compass-lite", dataset_id)
    assert job["plan"]["seed"] == PLAN["seed"]
    assert job["plan"]["model"] == PLAN["model"]

    done = wait_finished(fleet, job_id)
    at = open_page("training")
    assert f"**{job_id}** · status **completed**" in texts(at)
    assert done["model_id"] in set(at.dataframe[0].value["model_id"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "Bad file: the plan is not JSON"),
        (json.dumps({"model": {"kind": "no-such-model"}}).encode(), "The worker refused the request (INVALID_REQUEST)"),
    ],
    ids=["not-json", "refused-by-worker"],
)
def test_a_bad_plan_file_is_one_clear_message(
    fleet: dict[str, Any], dataset_id: str, content: bytes, message: str
) -> None:
    before = {j["id"] for j in api(fleet, "/training/tasks?limit=200")["items"]}
    at = start_from_plan_file(content, "bad-plan")
    assert message in texts(at)
    assert "Traceback" not in texts(at)
    assert {j["id"] for j in api(fleet, "/training/tasks?limit=200")["items"]} == before, "no job was created"


@pytest.fixture(scope="module")
def inactive_model(fleet: dict[str, Any], dataset_id: str) -> str:
    """A compass-lite model the worker knows but does not serve: the plan-file run's, else one trained here."""
    listing = api(fleet, "/models?limit=200")
    active = listing["active"]["id"]
    others = [m["id"] for m in listing["items"] if m["id"] != active and m["kind"] == "compass-lite"]
    if others:
        return others[0]
    body = {"plan": PLAN, "dataset_id": dataset_id, "name": "activation-candidate"}
    resp = requests.post(f"{fleet['lite'].base_url}/api/v1/training/tasks", json=body, headers=AUTH, timeout=15)
    assert resp.ok, resp.text
    return wait_finished(fleet, resp.json()["data"]["id"])["model_id"]


@pytest.fixture
def restore_active(fleet: dict[str, Any]) -> Iterator[str]:
    """The model served before the test, served again after it (other tests compare against the worker)."""
    before = api(fleet, "/models/active")["id"]
    yield before
    url = f"{fleet['lite'].base_url}/api/v1/models/{before}/activate"
    requests.post(url, headers=AUTH, json={"confirm": True, "override": True}, timeout=30).raise_for_status()


def test_models_activate_makes_the_worker_serve_it(
    fleet: dict[str, Any], inactive_model: str, restore_active: str
) -> None:
    at = open_page("models")
    assert by_label(at.button, "Activate…").disabled, "the active model cannot be activated again"
    by_label(at.selectbox, "Model").set_value(inactive_model).run()
    assert at.expander and at.get("html"), "the model card is missing"
    by_label(at.button, "Activate…").click().run()
    said = texts(at)
    assert "Candidate: no validation figure" in said and "This model has no validation figure" in said
    assert by_label(at.button, "Confirm activation").disabled, "no activation of an unvalidated model by one click"
    assert api(fleet, "/models/active")["id"] == restore_active
    override = next(c for c in at.checkbox if c.label.startswith("Serve it anyway (override)"))
    override.check().run()
    by_label(at.button, "Confirm activation").click().run()
    assert not at.exception
    assert f"{inactive_model} is now served by compass-lite without a validation figure (override)." in texts(at)
    table = at.dataframe[0].value.set_index("id")
    assert table.loc[inactive_model, "active"] == "✓", "the page must mark the new model active at once"

    # The worker's own API, its predictions and its registry entry all say so.
    assert api(fleet, "/models/active")["id"] == inactive_model
    assert api(fleet, "/models?limit=200")["active"]["id"] == inactive_model
    lite = fleet["lite"].base_url
    wait_until(
        lambda: any(
            i["base_url"] == lite and f"compass-lite@{inactive_model}" in i["metadata"].get("models", [])
            for i in instances(fleet["registry"])
        ),
        timeout=10,
        what="the registry to list the newly served model",
    )
    answer = requests.post(
        f"{lite}/predict", json={"protein_pdb": PDB.read_text(), "ligand_sdf": SDF.read_text()}, timeout=30
    ).json()["data"]
    assert answer["model_id"] == inactive_model and "no validation figure" in answer["warning"]
    at = open_page("models")
    assert f"Active on **compass-lite**: `{inactive_model}`" in texts(at)
    table = at.dataframe[0].value.set_index("id")
    assert table.loc[inactive_model, "active"] == "✓" and table.loc[restore_active, "active"] == ""
