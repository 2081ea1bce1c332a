"""The COMPASS worker as real processes on loopback: datasets, training jobs, models, inference, fallback.

One token-secured registry and one compass-lite worker serve the whole module (starting a
worker costs seconds of imports); tests that kill or stop workers start their own. Checkpoints
to serve at start are built in-process from a few CASF-2016 complexes; the models a test trains
go through the worker's own training jobs.
"""

from __future__ import annotations

import csv
import io
import os
import stat
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from services.client import Router
from tests.support import (
    AUTH,
    REGISTRY_FLAGS,
    TOKEN,
    Proc,
    python_env,
    read_json_line,
    shared_data,
    spawn,
    start_registry,
    wait_until,
)

IDS = ["1a30", "1bcu", "1bzc", "1c5z", "1e66", "1eby", "1g2k", "1gpk"]
LITE_PLAN = {
    "split": {"kind": "none"},
    "model": {"kind": "compass-lite", "config": {"max_iter": 30, "learning_rate": 0.2, "min_samples_leaf": 2}},
}
# Tiny ViSNet with many epochs: still running when the tests stop it or kill its worker.
VISNET_PLAN = {
    "split": {"kind": "none"},
    "model": {"kind": "compass", "config": {"hidden_channels": 16, "num_layers": 1, "num_heads": 2, "num_rbf": 8}},
    "optim": {"epochs": 200, "batch_size": 2},
}
GRACE_S = 10.0


def api(proc: Proc, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, f"{proc.base_url}/api/v1{path}", headers=AUTH, timeout=30, **kwargs)


def data(resp: requests.Response, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()["data"]


def complex_files(pdb_id: str) -> tuple[str, str]:
    folder = shared_data("casf2016", pdb_id)
    return (folder / f"{pdb_id}_pocket.pdb").read_text(), (folder / f"{pdb_id}_ligand.sdf").read_text()


def start_compass(tmp: Path, registry: Proc, name: str, kind: str, state: Path, *flags: str) -> Proc:
    """``python -m compass.service.worker`` registered with the test registry; returns once it is ready."""
    # One OpenMP thread: on a shared 2-core machine, spinning OpenMP teams made a 0.1 s compass-lite fit take 20 s.
    env = python_env(REGISTRY_TOKEN=TOKEN, OMP_NUM_THREADS="1")
    args = ["-m", "compass.service.worker", "--model", kind, "--port", "0", "--registry", registry.base_url]
    args += ["--state-dir", str(state), "--stop-grace-s", str(GRACE_S), "--drain-timeout", "5", *flags]
    proc = spawn(args, tmp / f"{name}.log", "", env=env)
    try:
        proc.base_url = read_json_line(proc, "event", timeout=90)["base_url"]
        wait_until(lambda: requests.get(proc.base_url + "/health/ready", timeout=2).ok, timeout=90, what=name)
    except BaseException:
        proc.stop()  # a worker that never got ready must not outlive the test
        raise
    return proc


def build_checkpoints(folder: Path) -> tuple[Path, Path]:
    """A compass-lite and a tiny (untrained) ViSNet checkpoint from the test complexes."""
    from compass.data import FeatureSettings, featurize_files
    from compass.data.graph import ComplexRecord
    from compass.model import CompassViSNet, ViSNetConfig, save_checkpoint
    from compass.model.lite import save_lite, train_lite

    root = shared_data("casf2016")
    labels = {row["pdb_id"]: float(row["pK"]) for row in csv.DictReader((root / "index.csv").open())}
    settings = FeatureSettings()
    graphs, records = [], []
    for pdb_id in IDS:
        graph, _ = featurize_files(
            root / pdb_id / f"{pdb_id}_pocket.pdb", [root / pdb_id / f"{pdb_id}_ligand.sdf"], settings, y=labels[pdb_id]
        )
        graphs.append(graph)
        records.append(ComplexRecord(pdb_id, "", [], labels[pdb_id], pdb_id))
    lite = save_lite(
        train_lite(graphs, records, {"max_iter": 20, "min_samples_leaf": 2}, 0, settings), folder / "lite.skops"
    )
    net = CompassViSNet(ViSNetConfig(hidden_channels=16, num_layers=1, num_heads=2, num_rbf=8, y_mean=6.0))
    visnet = save_checkpoint(net, folder / "compass.safetensors", feature_settings=settings)
    return lite, visnet


def dataset_archive() -> bytes:
    """A zip of a per-complex data root (index.csv + 8 CASF-2016 folders) under one top folder."""
    root = shared_data("casf2016")
    rows = [row for row in csv.DictReader((root / "index.csv").open()) if row["pdb_id"] in IDS]
    index = io.StringIO()
    writer = csv.DictWriter(index, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("casf8/index.csv", index.getvalue())
        for pdb_id in IDS:
            for path in sorted((root / pdb_id).iterdir()):
                zf.write(path, f"casf8/{pdb_id}/{path.name}")
    return buf.getvalue()


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("compass")
    lite, visnet = build_checkpoints(tmp)
    registry = start_registry(tmp, *REGISTRY_FLAGS)
    procs = [registry]
    state = {"tmp": tmp, "registry": registry, "procs": procs, "lite": lite, "visnet": visnet, "state": tmp / "state"}
    try:
        state["worker"] = start_compass(tmp, registry, "lite", "compass-lite", tmp / "state", "--weights", str(lite))
        procs.append(state["worker"])
        yield state
    finally:
        for proc in reversed(procs):
            proc.stop()


@pytest.fixture(scope="module")
def dataset(mesh: dict[str, Any]) -> dict[str, Any]:
    """The test archive uploaded to the module's worker, once validated."""
    worker = mesh["worker"]
    files = {"file": ("casf8.zip", dataset_archive(), "application/zip")}
    record = data(api(worker, "POST", "/data/datasets", files=files, data={"name": "casf8"}), 202)
    assert record["status"] == "validating" and record["n_files"] == 3 * len(IDS) + 1
    return wait_until(
        lambda: (d := data(api(worker, "GET", f"/data/datasets/{record['id']}")))["status"] != "validating" and d,
        timeout=60,
        what="dataset validation",
    )


def predict(worker: Proc, pdb_id: str = "1a30") -> dict[str, Any]:
    protein, ligand = complex_files(pdb_id)
    return data(
        requests.post(worker.base_url + "/predict", json={"protein_pdb": protein, "ligand_sdf": ligand}, timeout=30)
    )


def wait_status(
    worker: Proc, job_id: str, timeout: float, done: tuple[str, ...] = ("completed", "failed", "cancelled")
) -> dict[str, Any]:
    return wait_until(
        lambda: (job := data(api(worker, "GET", f"/training/tasks/{job_id}")))["status"] in done and job,
        timeout=timeout,
        interval=0.2,
        what=f"task {job_id} to end",
    )


# -- datasets ---------------------------------------------------------------------------------


def test_uploaded_archive_becomes_a_ready_dataset_with_every_complex(
    mesh: dict[str, Any], dataset: dict[str, Any]
) -> None:
    assert dataset["status"] == "ready", dataset
    assert dataset["n_complexes"] == len(IDS) and dataset["n_failed"] == 0 and dataset["layout"] == "complexes"
    listed = data(api(mesh["worker"], "GET", "/data/datasets", params={"status": "ready"}))
    assert dataset["id"] in [d["id"] for d in listed["items"]]
    assert requests.post(mesh["worker"].base_url + "/api/v1/data/datasets", timeout=5).status_code == 401


def _zip(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for info, content in entries:
            zf.writestr(info, content)
    return buf.getvalue()


def test_archives_with_traversal_or_links_are_refused_and_write_nothing(mesh: dict[str, Any]) -> None:
    worker, state = mesh["worker"], mesh["state"]
    link = zipfile.ZipInfo("casf8/link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w:gz") as tf:
        sym = tarfile.TarInfo("data/index.csv")
        sym.type, sym.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(sym)
    before = sorted(p.name for p in (state / "datasets").iterdir())
    archives = {
        "evil.zip": _zip([("casf8/index.csv", b"pdb_id,pK\n"), ("../evil", b"owned")]),
        "link.zip": _zip([("casf8/index.csv", b"pdb_id,pK\n"), (link, b"/etc/passwd")]),
        "link.tar.gz": tar_buf.getvalue(),
    }
    for name, blob in archives.items():
        resp = api(worker, "POST", "/data/datasets", files={"file": (name, blob)}, data={"name": "evil"})
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "INVALID_REQUEST", (name, resp.text)
        assert "archive refused" in resp.json()["error"]["details"]
    assert sorted(p.name for p in (state / "datasets").iterdir()) == before
    assert not list((state / "uploads").iterdir())
    assert not any(p.name == "evil" for p in mesh["tmp"].rglob("evil"))


# -- inference ----------------------------------------------------------------------------------


def test_unreadable_ligand_is_invalid_structure(mesh: dict[str, Any]) -> None:
    worker = mesh["worker"]
    protein, ligand = complex_files("1a30")
    corrupt = ligand[: len(ligand) // 3] + "\nnot an SDF line\n"
    resp = requests.post(
        worker.base_url + "/predict",
        files={"protein": ("p.pdb", protein), "ligand": ("l.sdf", corrupt)},
        timeout=30,
    )
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "INVALID_STRUCTURE", resp.text
    batch = {"items": [{"protein_pdb": protein, "ligand_sdf": ligand}, {"protein_pdb": protein, "ligand_sdf": corrupt}]}
    answer = data(requests.post(worker.base_url + "/predict/batch", json=batch, timeout=30))
    assert [r["success"] for r in answer["results"]] == [True, False]
    assert answer["results"][1]["error"]["code"] == "INVALID_STRUCTURE"
    ok = predict(worker)
    assert ok["model"] == "compass-lite" and ok["model_version"] and set(ok["timings_ms"]) >= {"preprocess", "model"}


def _batch_histogram(worker: Proc) -> tuple[float, float]:
    text = requests.get(worker.base_url + "/metrics", timeout=5).text
    values = {
        line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line.startswith("compass_batch_size_")
    }
    return values.get("compass_batch_size_count", 0.0), values.get("compass_batch_size_sum", 0.0)


def test_concurrent_predictions_share_forward_passes(mesh: dict[str, Any]) -> None:
    worker = mesh["worker"]
    bodies = [dict(zip(("protein_pdb", "ligand_sdf"), complex_files(i), strict=True)) for i in IDS[:4]]
    count0, sum0 = _batch_histogram(worker)
    answers: list[dict[str, Any]] = []
    barrier = threading.Barrier(20)

    def call(k: int) -> None:
        barrier.wait()
        resp = requests.post(worker.base_url + "/predict", json=bodies[k % 4], timeout=60)
        answers.append(data(resp))

    threads = [threading.Thread(target=call, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    count1, sum1 = _batch_histogram(worker)
    assert len(answers) == 20 and sum1 - sum0 == 20
    assert count1 - count0 < 20, "every request ran its own forward pass"
    assert max(a["batch_size"] for a in answers) > 1
    sizes = sorted(a["batch_size"] for a in answers)
    print(f"20 concurrent /predict → {int(count1 - count0)} forward passes, sizes {sizes}")


# -- training jobs and models -------------------------------------------------------------------


def test_training_job_registers_a_model_that_activation_serves(mesh: dict[str, Any], dataset: dict[str, Any]) -> None:
    worker, registry = mesh["worker"], mesh["registry"]
    before = predict(worker)
    job = data(
        api(
            worker, "POST", "/training/tasks", json={"plan": LITE_PLAN, "dataset_id": dataset["id"], "name": "lite-job"}
        ),
        201,
    )
    assert job["status"] == "running" and job["plan"]["data"]["roots"][0].endswith("casf8")
    done = wait_status(worker, job["id"], timeout=90)
    assert done["status"] == "completed", done
    assert done["progress"]["step"] == done["progress"]["total_steps"] and done["exit_code"] == 0
    logs = data(api(worker, "GET", f"/training/tasks/{job['id']}/logs", params={"offset": 0, "limit": 200}))
    assert logs["offset"] == 0 and logs["next_offset"] == 200 and not logs["eof"]
    rest = data(api(worker, "GET", f"/training/tasks/{job['id']}/logs", params={"offset": 200}))
    assert "completed" in logs["text"] + rest["text"]
    assert data(api(worker, "GET", f"/training/tasks/{job['id']}/metrics"))["eval"]["n_train"] == len(IDS)

    model = data(api(worker, "GET", f"/models/{done['model_id']}"))
    assert model["job_id"] == job["id"] and model["dataset_id"] == dataset["id"] and model["kind"] == "compass-lite"
    assert "# lite-job" in model["model_card"] and model["active_for"] == []
    download = api(worker, "GET", f"/models/{model['id']}/download")
    assert download.ok and len(download.content) == model["size_bytes"]

    switched = data(api(worker, "POST", f"/models/{model['id']}/activate", json={"confirm": True, "override": True}))
    assert switched["active"]["id"] == model["id"] and switched["previous"]["id"] == before["model_id"]
    after = predict(worker)
    assert after["model_id"] == model["id"] and after["pK"] != before["pK"]
    assert api(worker, "DELETE", f"/models/{model['id']}").status_code == 409  # active: not deletable

    def advertised() -> bool:
        resp = requests.get(registry.base_url + "/api/v1/services", params={"name": "compass-lite"}, timeout=5)
        return any(
            (i["metadata"].get("active_model") or {}).get("id") == model["id"] for i in resp.json()["data"]["instances"]
        )

    wait_until(advertised, timeout=10, what="the registry to show the new active model")
    data(api(worker, "POST", f"/models/{before['model_id']}/activate", json={"confirm": True, "override": True}))


def _group_members(pgid: int) -> list[int]:
    members = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid:
                members.append(proc.pid)
        except (ProcessLookupError, PermissionError):
            continue
    return members


def test_stopping_a_running_job_cancels_it_within_the_grace_period(
    mesh: dict[str, Any], dataset: dict[str, Any]
) -> None:
    worker = mesh["worker"]
    job = data(api(worker, "POST", "/training/tasks", json={"plan": VISNET_PLAN, "dataset_id": dataset["id"]}), 201)
    steps: set[int] = set()

    def advanced() -> bool:
        progress = data(api(worker, "GET", f"/training/tasks/{job['id']}"))["progress"] or {}
        if progress.get("step"):
            steps.add(progress["step"])
        return len(steps) >= 2

    wait_until(advanced, timeout=90, interval=0.2, what="training progress to advance")
    usage = data(api(worker, "GET", f"/training/tasks/{job['id']}/resources"))
    assert usage["alive"] and usage["usage"]["rss_mb"] > 0
    stopping = data(api(worker, "POST", f"/training/tasks/{job['id']}/stop"), 202)
    assert stopping["status"] == "running" and stopping["stop"]["signal"] == "SIGTERM"  # status follows the process
    done = wait_status(worker, job["id"], timeout=GRACE_S + 5)
    assert done["status"] == "cancelled" and done["stop"]["signal"] in ("SIGTERM", "SIGKILL")
    assert not psutil.pid_exists(job["pid"]) and not _group_members(job["pid"])
    assert data(api(worker, "GET", "/training/tasks", params={"status": "cancelled"}))["total"] >= 1
    assert api(worker, "POST", f"/training/tasks/{job['id']}/stop").status_code == 409


def test_worker_killed_during_a_job_marks_it_failed_after_restart(
    mesh: dict[str, Any], dataset: dict[str, Any]
) -> None:
    """SIGKILL the module's worker mid-job, restart it on the same state folder (it then serves later tests)."""
    tmp, registry, worker = mesh["tmp"], mesh["registry"], mesh["worker"]
    models_before = data(api(worker, "GET", "/models"))["items"]
    job = data(api(worker, "POST", "/training/tasks", json={"plan": VISNET_PLAN, "dataset_id": dataset["id"]}), 201)
    worker.kill9()
    wait_until(lambda: not psutil.pid_exists(job["pid"]), timeout=30, what="the orphaned training process to end")
    restarted = start_compass(tmp, registry, "lite-restarted", "compass-lite", mesh["state"])
    mesh["worker"] = restarted
    mesh["procs"].append(restarted)
    failed = data(api(restarted, "GET", f"/training/tasks/{job['id']}"))  # at once: no sweep to wait for
    assert failed["status"] == "failed" and "worker" in failed["error"], failed
    assert data(api(restarted, "GET", f"/data/datasets/{dataset['id']}"))["status"] == "ready"
    # Every model is still there, unchanged (a restart may add the shipped checkpoint beside them).
    after = {m["id"]: m for m in data(api(restarted, "GET", "/models"))["items"]}
    assert all(after.get(m["id"]) == m for m in models_before), (models_before, after)
    active = next(m["id"] for m in models_before if "compass-lite" in m["active_for"])
    assert predict(restarted)["model_id"] == active  # the active model survives the restart


def test_router_falls_back_to_compass_lite_when_compass_is_down(mesh: dict[str, Any]) -> None:
    tmp, registry = mesh["tmp"], mesh["registry"]
    gnn = start_compass(tmp, registry, "gnn", "compass", tmp / "gnn-state", "--weights", str(mesh["visnet"]))
    mesh["procs"].append(gnn)
    protein, ligand = complex_files("1bcu")
    body = {"protein_pdb": protein, "ligand_sdf": ligand}
    with Router(registry.base_url, fallbacks={"compass": ["compass-lite"]}) as router:
        wait_until(
            lambda: router.call("compass", "POST", "/predict", json=body, fallbacks=[]).service == "compass", timeout=20
        )
        first = router.call("compass", "POST", "/predict", json=body, deadline=20)
        assert first.service == "compass" and first.data["model"] == "compass" and not first.fallback_used
        gnn.kill9()
        second = router.call("compass", "POST", "/predict", json=body, deadline=20)
    assert second.service == "compass-lite" and second.fallback_used and second.data["model"] == "compass-lite"
    assert second.data["pK"] > 0


@pytest.mark.parametrize("kind", ["compass-lite", "compass"])
def test_shipped_descriptor_models_say_how_far_to_trust_each_answer(mesh: dict[str, Any], kind: str) -> None:
    """The shipped descriptor models: pK with a conformal interval and the applicability-domain read-out."""
    tmp, registry = mesh["tmp"], mesh["registry"]
    shipped = start_compass(tmp, registry, f"shipped-{kind}", kind, tmp / f"shipped-{kind}-state")
    mesh["procs"].append(shipped)
    protein, ligand = complex_files("1bcu")
    body = {"items": [{"protein_pdb": protein, "ligand_sdf": ligand}, {"protein_pdb": protein, "ligand_sdf": ligand}]}
    answers = [
        r["data"] for r in data(requests.post(shipped.base_url + "/predict/batch", json=body, timeout=30))["results"]
    ]
    single = predict(shipped, "1bcu")
    for ok in [*answers, single]:
        interval = ok["interval"]
        assert interval["level"] == 0.8 and interval["low"] < ok["pK"] < interval["high"], ok
        domain = ok["domain"]
        assert 0.0 <= domain["nearest_ligand_similarity"] <= 1.0 and domain["nearest_ligand_id"], domain
        assert not domain["nearest_ligand_id"].endswith("1bcu")  # CASF-2016 ids are never training ligands
        assert domain["protein_seen"] in ("yes", "no", "unknown")
    assert answers[0]["pK"] == single["pK"] and answers[0]["domain"] == single["domain"]
    assert single["model"] == kind
    shipped.stop()
