"""The COMPASS worker's own API (jobs, datasets, models) as FlashDock uses it, all through the Router.

Thin wrappers: each returns the envelope's ``data`` and lets ``services.client`` errors through, so
pages show them with :func:`flashdock.ui.explain`. Every read a page makes while it renders has the
deadline ``Settings.read_deadline_s`` (1 s, retries included): a hanging worker costs a page at most
that, once, after which the Router's latency estimate steers reads to the other instances.
"""

from __future__ import annotations

from typing import Any

from flashdock.mesh import COMPASS_SERVICES, Mesh
from services.client.call import CallResult

# Model sizes offered by the Training form: the ViSNet config per size (compass-lite ignores it).
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"hidden_channels": 16, "num_layers": 1, "num_heads": 2, "num_rbf": 8},
    "small": {"hidden_channels": 32, "num_layers": 2, "num_heads": 4, "num_rbf": 16},
    "base": {"hidden_channels": 64, "num_layers": 3, "num_heads": 4, "num_rbf": 32},
}
LITE_CONFIG = {"max_iter": 100, "min_samples_leaf": 2}


def services_up(mesh: Mesh) -> list[str]:
    """The COMPASS services with at least one registered instance (the ones a page can talk to)."""
    names = {i.service_name for i in mesh.fleet().instances}
    return [s for s in COMPASS_SERVICES if s in names]


def build_plan(kind: str, size: str, epochs: int, lr: float, seed: int, val_fraction: float = 0.2) -> dict[str, Any]:
    """An experiment plan from the form; the worker fills in data roots, run folder and device.

    ``val_fraction`` of the proteins (never of the complexes: a series must not straddle the split) is held
    out for validation; 0 trains on everything and leaves the model without a validation figure.
    """
    if kind == "compass-lite":
        model: dict[str, Any] = {"kind": "compass-lite", "config": dict(LITE_CONFIG)}
    else:
        model = {"kind": "compass", "config": dict(SIZES[size])}
    optim: dict[str, Any] = {"epochs": epochs, "lr": lr, "batch_size": 2}
    if kind != "compass-lite":  # as the shipped plan: many ligands of one protein do not outvote the rest
        optim["group_weighting"] = "inverse_sqrt"
    split: dict[str, Any] = {"kind": "none"}
    if val_fraction > 0:
        split = {"kind": "group-holdout", "val_fraction": val_fraction, "seed": seed}
    return {"seed": seed, "split": split, "model": model, "optim": optim}


def _read(mesh: Mesh, service: str, path: str, **kwargs: Any) -> CallResult:
    """A GET a page makes while rendering: bounded by the read deadline, never by the worker."""
    return mesh.compass_api(service, "GET", path, deadline=mesh.settings.read_deadline_s, **kwargs)


def list_jobs(mesh: Mesh, service: str) -> list[dict[str, Any]]:
    return _read(mesh, service, "/training/tasks", params={"limit": 200}).data["items"]


def create_job(mesh: Mesh, service: str, plan: dict[str, Any], dataset_id: str, name: str) -> dict[str, Any]:
    body = {"plan": plan, "dataset_id": dataset_id, "name": name}
    # The worker starts the trainer process before it answers: allow for a busy host.
    return mesh.compass_api(service, "POST", "/training/tasks", json=body, deadline=45).data


def job(mesh: Mesh, service: str, job_id: str) -> dict[str, Any]:
    return _read(mesh, service, f"/training/tasks/{job_id}").data


def stop_job(mesh: Mesh, service: str, job_id: str) -> dict[str, Any]:
    """Returns at once (202): the worker signals the trainer; the status flips when it has exited."""
    return mesh.compass_api(service, "POST", f"/training/tasks/{job_id}/stop", deadline=5).data


def job_metrics(mesh: Mesh, service: str, job_id: str) -> dict[str, Any]:
    return _read(mesh, service, f"/training/tasks/{job_id}/metrics").data


def log_tail(mesh: Mesh, service: str, job_id: str, n_bytes: int = 4000) -> str:
    """The last ``n_bytes`` of the job's train.log (two small reads: its size, then its end)."""
    path = f"/training/tasks/{job_id}/logs"
    head = _read(mesh, service, path, params={"stream": "train", "limit": 1}).data
    start = max(0, int(head.get("size", 0)) - n_bytes)
    params = {"stream": "train", "offset": start, "limit": n_bytes}
    text = _read(mesh, service, path, params=params).data.get("text", "")
    return text if start == 0 else text.split("\n", 1)[-1]


def list_datasets(mesh: Mesh, service: str) -> list[dict[str, Any]]:
    return _read(mesh, service, "/data/datasets", params={"limit": 200}).data["items"]


def upload_dataset(mesh: Mesh, service: str, name: str, filename: str, content: bytes) -> dict[str, Any]:
    files = {"file": (filename, content)}
    return mesh.compass_api(service, "POST", "/data/datasets", files=files, data={"name": name}, deadline=120).data


def dataset(mesh: Mesh, service: str, dataset_id: str) -> dict[str, Any]:
    return _read(mesh, service, f"/data/datasets/{dataset_id}").data


def delete_dataset(mesh: Mesh, service: str, dataset_id: str) -> None:
    mesh.compass_api(service, "DELETE", f"/data/datasets/{dataset_id}", deadline=5)


def list_models(mesh: Mesh, service: str) -> dict[str, Any]:
    return _read(mesh, service, "/models", params={"limit": 200}).data


def model(mesh: Mesh, service: str, model_id: str) -> dict[str, Any]:
    return _read(mesh, service, f"/models/{model_id}").data


def activate_model(mesh: Mesh, service: str, model_id: str, override: bool = False) -> dict[str, Any]:
    """Activate after the user confirmed; ``override`` serves a model that has no validation figure."""
    body = {"confirm": True, "override": override}
    return mesh.compass_api(service, "POST", f"/models/{model_id}/activate", json=body, deadline=30).data


def download_model(mesh: Mesh, service: str, model_id: str) -> tuple[bytes, str]:
    """The checkpoint bytes, from an instance the Router picks (its address comes from the registry)."""
    found = _read(mesh, service, f"/models/{model_id}")
    return mesh.download(found.base_url, f"/models/{model_id}/download"), found.instance


def validations(mesh: Mesh) -> dict[str, dict[str, Any] | None]:
    """Each COMPASS service's advertised ``validation`` of its active model (from the registry, no worker call)."""
    out: dict[str, dict[str, Any] | None] = {}
    for inst in mesh.fleet().instances:
        if inst.service_name in COMPASS_SERVICES and inst.status in ("passing", "warning"):
            found = inst.metadata.get("validation")
            if out.get(inst.service_name) is None:
                out[inst.service_name] = found if isinstance(found, dict) else None
    return out


def activation_preview(mesh: Mesh, service: str, model_id: str) -> dict[str, Any]:
    """The candidate's and the active model's validation figures, as the worker reports them (changes nothing)."""
    return _read(mesh, service, f"/models/{model_id}/activation").data
