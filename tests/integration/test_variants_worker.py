"""The variant worker as a real process: import a real DMS slice, train as a job, predict, design, survive kill -9."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from tests.support import AUTH, TOKEN, Proc, python_env, read_json_line, spawn, wait_until
from tests.unit.variants.dms import TRASTUZUMAB_VH, dms_slice

API = "/api/v1"
TINY = {
    "model": {"name": "cnn", "filters": 8, "dense": 8},
    "data": {"label": "AgClass"},
    "train": {"max_epochs": 2, "batch_size": 64},
    "split": {"seed": 3},
}


def start_variant(tmp: Path, registry: Proc, name: str, state: Path) -> Proc:
    env = python_env(REGISTRY_TOKEN=TOKEN, OMP_NUM_THREADS="1")
    args = [
        "-m",
        "variants.service.worker",
        "--port",
        "0",
        "--registry",
        registry.base_url,
        "--state-dir",
        str(state),
        "--drain-timeout",
        "5",
    ]
    proc = spawn(args, tmp / f"{name}.log", "", env=env)
    try:
        proc.base_url = read_json_line(proc, "event", timeout=90)["base_url"]
        # The line comes when the port is bound; the model (an activated one included) loads after it.
        wait_until(lambda: requests.get(proc.base_url + "/health/ready", timeout=2).ok, timeout=90, what=name)
    except BaseException:
        proc.stop()
        raise
    return proc


def data(resp: requests.Response, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()["data"]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from tests.support import REGISTRY_FLAGS, start_registry

    tmp = tmp_path_factory.mktemp("variants")
    registry = start_registry(tmp, *REGISTRY_FLAGS)
    worker = start_variant(tmp, registry, "variant", tmp / "state")
    procs = [registry, worker]
    info = {"tmp": tmp, "registry": registry, "worker": worker, "state": tmp / "state", "procs": procs}
    yield info
    for proc in reversed(info["procs"]):
        proc.stop()


def wait_status(worker: Proc, job_id: str, wanted: set[str], timeout: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        row = data(requests.get(f"{worker.base_url}{API}/training/tasks/{job_id}", timeout=5))
        return row if row["status"] in wanted else None

    return wait_until(done, timeout=timeout, interval=0.3, what=f"task {job_id} to be {wanted}")


def test_import_train_predict_design(mesh: dict[str, Any]) -> None:
    worker: Proc = mesh["worker"]
    base = worker.base_url + API
    source = {"template_id": "tz", "sequence": TRASTUZUMAB_VH, "name": "trastuzumab VH"}
    assert requests.post(f"{base}/data/sources", json=source, timeout=5).status_code == 401  # token required
    data(requests.post(f"{base}/data/sources", json=source, headers=AUTH, timeout=5), 201)
    table = dms_slice(mesh["tmp"], 300)
    form = {
        "template": "tz",
        "mutant_column": "AASeq",
        "window_start": "99",
        "label_column": "AgClass",
        "reads_column": "Count",
        "assay": "her2",
    }
    with table.open("rb") as fh:
        imported = data(
            requests.post(f"{base}/data/import", files={"file": fh}, data=form, headers=AUTH, timeout=30), 201
        )
    assert imported["imported"] == 600
    with table.open("rb") as fh:  # the same rows again: refused whole, naming the line
        again = requests.post(f"{base}/data/import", files={"file": fh}, data=form, headers=AUTH, timeout=30)
    assert again.status_code == 400 and "line 2" in again.json()["error"]["details"]
    assert requests.post(worker.base_url + "/predict", json={"variants": ["W99F"]}, timeout=5).status_code == 503

    bad = requests.post(f"{base}/training/tasks", json={"plan": {**TINY, "train": {"lr": -1}}}, headers=AUTH, timeout=5)
    assert bad.status_code == 400 and "plan.train.lr" in bad.json()["error"]["details"]
    job = data(requests.post(f"{base}/training/tasks", json={"plan": TINY}, headers=AUTH, timeout=10), 201)
    done = wait_status(worker, job["id"], {"completed", "failed"})
    assert done["status"] == "completed", done
    metrics = data(requests.get(f"{base}/training/tasks/{job['id']}/metrics", timeout=5))
    assert 0.0 <= metrics["metrics"]["test"]["roc_auc"] <= 1.0 and metrics["curves"]["roc"]["fpr"]
    models = data(requests.get(f"{base}/models", timeout=5))["items"]
    assert [m["id"] for m in models] == [job["id"]]
    data(requests.post(f"{base}/models/{job['id']}/activate", headers=AUTH, timeout=30))

    body = {"variants": ["W99F", "WGGDGFYAMD", TRASTUZUMAB_VH, "W99Y:D102E"]}
    answer = data(requests.post(worker.base_url + "/predict", json=body, timeout=10))
    scores = answer["scores"]
    assert len(scores) == 4 and scores[1] == pytest.approx(scores[2])  # the window and the chain are the parent
    assert answer["mutations"] == ["W99F", "", "", "W99Y:D102E"]
    wrong = requests.post(worker.base_url + "/predict", json={"variants": ["A99F"]}, timeout=5)
    assert wrong.status_code == 400 and "A99F" in wrong.json()["error"]["details"]

    ranked = data(requests.post(f"{base}/design", json={"n": 5, "strategy": "singles-doubles"}, timeout=30))
    assert ranked["library_size"] == 10 * 19 + 45 * 19 * 19
    got = [v["score"] for v in ranked["variants"]]
    assert len(got) == 5 and got == sorted(got, reverse=True)
    rescored = data(
        requests.post(worker.base_url + "/predict", json={"variants": [ranked["variants"][0]["sequence"]]}, timeout=10)
    )["scores"][0]
    assert rescored == pytest.approx(got[0], rel=1e-5)


def test_training_job_survives_worker_kill9_as_failed(mesh: dict[str, Any]) -> None:
    worker: Proc = mesh["worker"]
    base = worker.base_url + API
    slow = {**TINY, "train": {"max_epochs": 10_000, "patience": 10_000, "batch_size": 8}}
    job = data(requests.post(f"{base}/training/tasks", json={"plan": slow}, headers=AUTH, timeout=10), 201)
    assert job["status"] == "running" and psutil.pid_exists(job["pid"])
    worker.kill9()
    wait_until(lambda: not psutil.pid_exists(job["pid"]), timeout=30, what="the orphaned training process to end")
    restarted = start_variant(mesh["tmp"], mesh["registry"], "variant-restarted", mesh["state"])
    mesh["worker"] = restarted
    mesh["procs"].append(restarted)
    row = data(requests.get(f"{restarted.base_url}{API}/training/tasks/{job['id']}", timeout=5))
    assert row["status"] == "failed" and "worker" in row["error"], row
    served = data(requests.post(restarted.base_url + "/predict", json={"variants": ["W99F"]}, timeout=10))
    assert served["model"]["id"] != job["id"]  # the model trained earlier is still the one served
