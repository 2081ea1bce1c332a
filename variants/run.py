"""One experiment, start to end: plan → store rows → variant set → split → model → artifacts.

Used by the ``train`` CLI and, through it, by the worker's training jobs. Stages report progress
through a callback (tqdm in the CLI, the job's progress file on a worker). ``resume`` reuses the
run folder: a finished run is left as it is, an interrupted CNN continues from its last epoch.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from variants.artifacts import plot_curves, write_json, write_labels
from variants.dataset import VariantSet, build_variant_set
from variants.db import VariantStore
from variants.metrics import BUILTIN_METRICS, best_threshold, evaluate
from variants.models.base import ModelContext, TrainConfig, VariantModel
from variants.plan import PlanError
from variants.plugins import Registry, vocab
from variants.settings import cache_dir
from variants.splits import make_split

log = logging.getLogger(__name__)
Progress = Callable[[dict[str, Any]], None]


def new_run_id(model: str) -> str:
    return f"{model}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def load_variant_set(plan: dict[str, Any]) -> VariantSet:
    data = plan["data"]
    where = list(data["where"])
    if data["label"]:
        where.append(["label_name", "=", data["label"]])
    if not Path(data["db"]).is_file():
        raise PlanError(f"plan.data.db: no store at {data['db']}")
    with VariantStore(data["db"]) as store:
        rows = store.select(where)
    region = tuple(data["region"]) if data["region"] else None
    return build_variant_set(rows, conflicts=data["conflicts"], threshold=data["threshold"], region=region)  # type: ignore[arg-type]


def _subsample(vs: VariantSet, idx: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    """At most ``cap`` of ``idx``, stratified by label, seeded (for models too costly for the whole set)."""
    if cap is None or len(idx) <= cap:
        return idx
    rng = np.random.default_rng(seed)
    keep = []
    for value in (0, 1):
        members = idx[vs.labels[idx] == value]
        keep.append(rng.choice(members, size=round(cap * len(members) / len(idx)), replace=False))
    return np.sort(np.concatenate(keep))


def model_context(
    plan: dict[str, Any], vs: VariantSet | dict[str, Any], registry: Registry, workdir: Path | None
) -> ModelContext:
    """What a model needs to know about its data (from a variant set, or a saved ``model_info.json``)."""
    emb = dict(plan.get("embeddings") or {})
    emb["cache"] = emb.get("cache") or str(cache_dir(workdir) / "embeddings.sqlite")
    template = vs.template if isinstance(vs, VariantSet) else vs["template"]
    region = vs.region if isinstance(vs, VariantSet) else tuple(vs["region"])
    return ModelContext(
        template,
        region,
        vocab(registry, plan.get("vocab", "protein")),
        emb,  # type: ignore[arg-type]
        registry.classes["embed"],
        int(plan["train"].get("threads", 1)),
    )


def run_experiment(
    plan: dict[str, Any],
    runs_dir: Path,
    registry: Registry,
    *,
    workdir: Path | None = None,
    resume: bool = False,
    progress: Progress = lambda _p: None,
) -> Path:
    """Run ``plan`` (validated) into ``runs_dir/<run_id>``; the run folder."""
    import torch

    t_start = time.perf_counter()
    model_name = plan["model"]["name"]
    model_cls: type[VariantModel] = registry.get("model", model_name)
    for name in plan["eval"]["metrics"]:
        if name not in BUILTIN_METRICS:
            registry.get("metrics", name)
    metric_classes = {**BUILTIN_METRICS, **registry.classes["metrics"]}
    run_id = plan["run_id"] or new_run_id(model_name)
    run = runs_dir / run_id
    if run.exists() and not resume:
        raise PlanError(f"plan.run_id: run {run_id} exists in {runs_dir}; pass --resume or another run id")
    if resume and (run / "metrics.json").is_file():
        progress({"status": "completed", "stage": "done", "run_id": run_id, "resumed": True})
        return run
    (run / "training").mkdir(parents=True, exist_ok=True)
    if plan["train"]["threads"]:
        torch.set_num_threads(plan["train"]["threads"])
    plan = {**plan, "run_id": run_id}
    write_json(run / "exp_plan.json", plan)
    progress({"status": "running", "stage": "data", "run_id": run_id})
    vs = load_variant_set(plan)
    sp = plan["split"]
    split = make_split(
        vs.windows,
        vs.labels,
        strategy=sp["strategy"],
        seed=sp["seed"],
        test_fraction=sp["test_fraction"],
        val_fraction=sp["val_fraction"],
        min_distance=sp["min_distance"],
        test_positive_fraction=sp["test_positive_fraction"],
    )
    seed = plan["train"]["seed"]
    train_idx = _subsample(vs, split.train, plan["train"]["max_train"], seed)
    cap = plan["eval"]["max_test"]
    val_cap = plan["eval"]["max_val"] or cap
    val_idx, test_idx = _subsample(vs, split.val, val_cap, seed + 1), _subsample(vs, split.test, cap, seed + 2)
    context = model_context(plan, vs, registry, workdir)
    model = model_cls(plan["model"], context)
    t_fit = time.perf_counter()
    history: dict[str, Any] = {}
    if model.needs_training:
        config = TrainConfig(
            plan["train"]["lr"],
            plan["train"]["batch_size"],
            plan["train"]["max_epochs"],
            plan["train"]["patience"],
            seed,
            run / "training",
            resume,
        )
        history = model.fit(
            vs.subset(train_idx),
            vs.subset(val_idx),
            config,
            lambda p: progress({"status": "running", "stage": "train", **p}),
        )
    fit_s = time.perf_counter() - t_fit
    write_json(run / "training" / "history.json", history)
    model_path = run / model_cls.file_name
    model.save(model_path)
    info = {
        "model": model_name,
        "file": model_cls.file_name,
        **context.describe(),
        "template_id": vs.template_id,
        "plugin": registry.origins.get(("model", model_name)),
    }
    write_json(run / "model_info.json", info)
    progress({"status": "running", "stage": "evaluate", "run_id": run_id})
    parts: dict[str, dict[str, Any]] = {}
    t_eval = time.perf_counter()
    for part, idx in (("val", val_idx), ("test", test_idx)):
        sub = vs.subset(idx)
        parts[part] = {"sequences": sub.sequences, "labels": sub.labels, "scores": model.score(sub.sequences)}
    eval_s = time.perf_counter() - t_eval
    threshold = best_threshold(parts["val"]["labels"], parts["val"]["scores"])
    names = plan["eval"]["metrics"]
    metrics = {part: evaluate(p["labels"], p["scores"], names, metric_classes, threshold) for part, p in parts.items()}
    result = {
        "run_id": run_id,
        "model": model_name,
        "split": {
            **split.sizes(),
            "strategy": sp["strategy"],
            "train_used": len(train_idx),
            "val_used": len(val_idx),
            "test_used": len(test_idx),
        },
        "data": vs.stats,
        "region": list(vs.region),
        "threshold_from": "validation (best MCC)",
        "training": {k: v for k, v in history.items() if k != "history"},
        "timing_s": {
            "fit": round(fit_s, 3),
            "score_val_test": round(eval_s, 3),
            "total": round(time.perf_counter() - t_start, 3),
        },
        **metrics,
    }
    write_labels(run / "labels.npz", parts)
    test = parts["test"]
    if len(np.unique(test["labels"])) > 1:
        plot_curves(
            run / "visualization",
            test["labels"],
            test["scores"],
            f"{model_name} · {run_id} · test",
            metrics["test"]["confusion_matrix"],
        )
    write_json(run / "metrics.json", result)  # last: its presence means the run finished
    progress(
        {
            "status": "completed",
            "stage": "done",
            "run_id": run_id,
            "test_roc_auc": metrics["test"].get("roc_auc"),
            "test_average_precision": metrics["test"].get("average_precision"),
        }
    )
    return run


def load_run_model(run: Path, registry: Registry, workdir: Path | None = None) -> tuple[VariantModel, dict[str, Any]]:
    """A finished run's model, ready to score (the worker's active model)."""
    import json

    info = json.loads((run / "model_info.json").read_text())
    plan = json.loads((run / "exp_plan.json").read_text())
    cls = registry.get("model", info["model"])
    context = model_context(plan, info, registry, workdir)
    return cls.load(run / info["file"], context), info
