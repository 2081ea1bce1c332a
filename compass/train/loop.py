"""The training loop: ``train(plan) -> RunResult``, for the CLI, torchrun and cross-validation alike.

Seeded (torch, numpy, random; the shuffle of epoch ``e`` depends only on ``seed`` and ``e``), AdamW
with linear warm-up and cosine decay, gradient clipping, AMP on CUDA only, early stopping on
validation RMSE (the best weights are kept and scored at the end), resumable from
``last.safetensors`` + ``last.state.pt`` even mid-epoch, SIGTERM-safe (finish the step, save,
report "cancelled"). A resumed run continues bit-for-bit where an uninterrupted one would be.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from compass.data.graph import ComplexGraph, ComplexRecord
from compass.train import artifacts as art
from compass.train import inputs
from compass.train.artifacts import CANCELLED_EXIT_CODE
from compass.train.distributed import DistContext
from compass.train.plan import ExperimentPlan, PlanError
from compass.train.trainer import RunResult, Trainer, eval_record, metrics_from_sums, progress_record, regression_sums

log = logging.getLogger("compass.train")
__all__ = ["CANCELLED_EXIT_CODE", "RunResult", "resolve_device", "train"]


def resolve_device(choice: str, ctx: DistContext) -> torch.device:
    """``auto`` → CUDA when available; under torchrun each rank takes its ``LOCAL_RANK`` GPU."""
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but CUDA is not available")
        return torch.device("cuda", ctx.local_rank if ctx.enabled else torch.cuda.current_device())
    return torch.device("cpu")


class _Stop:
    """Set by SIGTERM (main thread only) or by the caller's event; checked after every step."""

    def __init__(self, event: threading.Event | None) -> None:
        self.event = event or threading.Event()
        self._previous: Any = None

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        log.warning("SIGTERM: finishing the current step, then saving and stopping")
        self.event.set()


def train(
    plan: ExperimentPlan,
    *,
    train_graphs: list[ComplexGraph] | None = None,
    train_records: list[ComplexRecord] | None = None,
    val_graphs: list[ComplexGraph] | None = None,
    val_records: list[ComplexRecord] | None = None,
    runs_dir: str | Path | None = None,
    run_id: str | None = None,
    resume: bool = False,
    device: str | None = None,
    max_epochs: int | None = None,
    progress: bool = True,
    echo_progress: bool = False,
    progress_every: int = 10,
    stop: threading.Event | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    ctx: DistContext | None = None,
) -> RunResult:
    """Train the plan's model; artifacts go to ``<runs_dir>/<run_id>/``.

    With ``train_graphs`` the plan's data roots are not read (cross-validation folds pass their
    graphs; without ``val_graphs`` the plan's split is applied to them). ``max_epochs`` overrides
    the plan's epochs (schedule included). ``stop`` ends the run like SIGTERM does. Never pass a
    test fold as ``val_graphs``: early stopping picks the epoch on it, so its score would be flattered.
    """
    ctx = ctx or DistContext()
    if max_epochs is not None:
        plan = replace(plan, optim=replace(plan.optim, epochs=int(max_epochs)))
    plan = plan.with_run_id(ctx.broadcast_str(run_id or plan.with_run_id().run_id))
    run_dir = Path(runs_dir if runs_dir is not None else plan.runs_dir) / str(plan.run_id)
    if not resume and (run_dir / art.METRICS).exists():
        raise FileExistsError(f"{run_dir} already holds a run: pass resume=True (--resume) or another run_id")
    ctx.barrier()  # every rank checked before rank 0 creates the folder
    files = art.RunFiles(run_dir, ctx.is_main, echo_progress)
    files.attach_log(log)
    try:
        if resume:
            _check_same_plan(run_dir / art.PLAN, plan)
        if not ctx.is_main:
            ctx.barrier()  # rank 0 featurises first and fills the cache; the others then read it
        if train_graphs is not None:
            records = train_records if train_records is not None else inputs.records_for(train_graphs)
            data = inputs.prepare(plan, train_graphs, records, plan.data.feature, val_graphs, val_records)
        else:
            data = inputs.from_plan(plan, progress=progress and ctx.is_main)
        if ctx.is_main:
            ctx.barrier()
        files.write_json(art.PLAN, plan.to_dict())
        if plan.model.kind == "compass-lite":
            return _train_lite(plan, data, files, ctx)
        with _Stop(stop) as stopper:
            trainer = Trainer(plan, data, files, ctx, resolve_device(device or plan.device, ctx), stopper.event)
            return trainer.run(resume, progress, max(1, progress_every), on_step)
    except Exception as exc:
        log.exception("run %s failed: %s", plan.run_id, exc)
        files.progress({"run_id": plan.run_id, "status": "failed", "error": f"{type(exc).__name__}: {exc}"})
        raise
    finally:
        files.detach_log(log)


def _check_same_plan(path: Path, plan: ExperimentPlan) -> None:
    """Resuming under a different plan would silently mix two experiments: refuse it."""
    if not path.is_file():
        return
    saved = json.loads(path.read_text())
    current = plan.to_dict()
    ignored = {"runs_dir", "device"}  # where and on what it runs does not change the experiment
    differ = sorted(k for k in set(saved) | set(current) if k not in ignored and saved.get(k) != current.get(k))
    if differ:
        raise PlanError(f"cannot resume {plan.run_id}: the plan differs from the run's plan.json in {differ}")


def _train_lite(plan: ExperimentPlan, data: inputs.TrainingData, files: art.RunFiles, ctx: DistContext) -> RunResult:
    """compass-lite fits in one go on rank 0 (other ranks wait): one metrics line, ``best.skops``."""
    from compass.model.lite import save_lite, train_lite

    path = files.path(art.LITE_BEST)
    metrics: dict[str, Any] = {}
    if ctx.is_main:
        t0 = time.time()
        settings = data.feature_settings
        predictor = train_lite(data.train_graphs, data.train_records, plan.model.config, plan.seed, settings)
        seconds = time.time() - t0
        y_train = torch.tensor([g.y for g in data.train_graphs])
        train_m = metrics_from_sums(regression_sums(torch.from_numpy(predictor.predict(data.train_graphs)), y_train))
        val_m = metrics_from_sums(torch.zeros(8, dtype=torch.float64))
        if data.val_graphs:
            y_val = torch.tensor([g.y for g in data.val_graphs])
            val_m = metrics_from_sums(regression_sums(torch.from_numpy(predictor.predict(data.val_graphs)), y_val))
        run = {"best_epoch": 1, "epochs_run": 1, "stopped_early": False, "best_checkpoint": art.LITE_BEST}
        metrics = eval_record(plan, data, "completed", val_m, **run, train_seconds=seconds)
        split = {"train_keys": [g.key for g in data.train_graphs], "val_keys": [g.key for g in data.val_graphs]}
        meta = {"plan": plan.to_dict(), "data_hash": data.data_hash, "metrics": metrics, "extra": split}
        save_lite(predictor, path, meta=meta)
        files.append_metrics(
            {"epoch": 1, "step": 1, "train_loss": train_m["rmse"] ** 2, "val_rmse": val_m["rmse"]}
            | {"val_pearson": val_m["pearson"], "lr": None, "seconds": seconds}
            | {"complexes_per_s": len(data.train_graphs) / max(seconds, 1e-9)}
        )
        files.write_json(art.EVAL, metrics)
        done = {"epoch": 1, "total_epochs": 1, "step": 1, "total_steps": 1, "eta_s": 0.0}
        loss = train_m["rmse"] ** 2
        files.progress(progress_record(plan, "completed", **done, loss=loss, best_val_rmse=val_m["rmse"]))
    ctx.barrier()
    return RunResult(files.dir, path, metrics)
