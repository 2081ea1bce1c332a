"""The ViSNet training engine behind :func:`compass.train.loop.train`, and the metric helpers it shares.

One :class:`Trainer` runs one run: build (or resume) the model, step through seeded epochs,
validate, keep the best weights, save ``last`` every epoch and on SIGTERM, score the best
weights at the end. Every rank runs it; only rank 0 writes (see :mod:`compass.train.artifacts`).
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch.utils.data.distributed import DistributedSampler

from compass.data.splits import sample_weights
from compass.model.visnet import CompassViSNet, ViSNetConfig
from compass.model.visnet_checkpoint import load_compass_model, save_checkpoint
from compass.train import artifacts as art
from compass.train import state as run_state
from compass.train.distributed import DistContext, unwrap, wrap_model
from compass.train.inputs import TrainingData
from compass.train.plan import ExperimentPlan
from compass.train.schedule import build_optimizer

log = logging.getLogger("compass.train")
MIN_IMPROVEMENT = 1e-4  # pK: a smaller drop in validation RMSE does not reset early-stopping patience


@dataclass
class RunResult:
    """Where a run's artifacts are, its final validation metrics, and how it ended."""

    run_dir: Path
    best_checkpoint: Path
    metrics: dict[str, Any]
    status: str = "completed"  # or "cancelled"


def regression_sums(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sufficient statistics of RMSE/MAE/Pearson, so ranks can all-reduce them: 8 float64 sums."""
    p, t = pred.detach().double().cpu().reshape(-1), y.detach().double().cpu().reshape(-1)
    e = p - t
    n = torch.tensor(float(p.numel()), dtype=torch.float64)
    return torch.stack([n, t.sum(), p.sum(), (t * t).sum(), (p * p).sum(), (t * p).sum(), (e * e).sum(), e.abs().sum()])


def metrics_from_sums(s: torch.Tensor) -> dict[str, Any]:
    n, sy, sp, syy, spp, syp, sse, sae = (float(v) for v in s)
    if n == 0:
        return {"n": 0, "rmse": math.nan, "mae": math.nan, "pearson": math.nan}
    var_y, var_p = syy / n - (sy / n) ** 2, spp / n - (sp / n) ** 2
    cov = syp / n - (sy / n) * (sp / n)
    pearson = cov / math.sqrt(var_y * var_p) if var_y > 1e-12 and var_p > 1e-12 else math.nan
    return {"n": int(n), "rmse": math.sqrt(max(sse, 0.0) / n), "mae": sae / n, "pearson": pearson}


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: list, ctx: DistContext, device: torch.device, batch_size: int) -> dict:
    """Validation metrics in float32 (what the saved checkpoint will predict), sharded over ranks."""
    from torch_geometric.data import Batch

    net = unwrap(model)
    was_training = net.training
    net.eval()
    sums = torch.zeros(8, dtype=torch.float64)
    shard = data[ctx.rank :: ctx.world_size]
    for start in range(0, len(shard), batch_size):
        batch = Batch.from_data_list(shard[start : start + batch_size]).to(device)
        sums += regression_sums(net(batch), batch.y)
    net.train(was_training)
    return metrics_from_sums(ctx.all_reduce_sum(sums))


def amp_settings(mode: str, device: torch.device) -> tuple[bool, torch.dtype | None, bool]:
    """(autocast on, its dtype, GradScaler on): bf16 where the GPU has it, else fp16 with a scaler."""
    if device.type != "cuda" or mode == "off":
        if mode == "on" and device.type != "cuda":
            log.warning("optim.amp 'on' ignored: AMP is used on CUDA only")
        return False, None, False
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return True, dtype, dtype == torch.float16


def eval_record(plan: ExperimentPlan, data: TrainingData, status: str, val: dict, **run: Any) -> dict[str, Any]:
    """The content of ``eval.json`` (and :attr:`RunResult.metrics`)."""
    return {
        "run_id": plan.run_id,
        "status": status,
        "model_kind": plan.model.kind,
        "n_train": len(data.train_graphs),
        "n_val": val["n"],
        "val_rmse": val["rmse"],
        "val_pearson": val["pearson"],
        "val_mae": val["mae"],
        "data_hash": data.data_hash,
        **run,
    }


def progress_record(plan: ExperimentPlan, status: str, **fields: Any) -> dict[str, Any]:
    """The content of ``progress.json``: epoch, total_epochs, step, total_steps, loss, eta_s, status."""
    return {
        "run_id": plan.run_id,
        "status": status,
        **fields,
        "updated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


class Trainer:
    """One ViSNet run on one rank. ``run()`` returns the :class:`RunResult`."""

    def __init__(
        self,
        plan: ExperimentPlan,
        data: TrainingData,
        files: art.RunFiles,
        ctx: DistContext,
        device: torch.device,
        stop: threading.Event,
    ) -> None:
        self.plan, self.data, self.files, self.ctx, self.device, self.stop = plan, data, files, ctx, device, stop
        self.optim = plan.optim
        self.train_data = [g.to_data() for g in data.train_graphs]
        self.val_data = [g.to_data() for g in data.val_graphs]
        weights = sample_weights(data.train_records, self.optim.group_weighting)
        self.train_weight = None if weights is None else torch.tensor(weights, dtype=torch.float32, device=device)
        self.split_keys = {
            "train_keys": [g.key for g in data.train_graphs],
            "val_keys": [g.key for g in data.val_graphs],
        }
        per_rank = math.ceil(len(self.train_data) / ctx.world_size)
        self.steps_per_epoch = math.ceil(per_rank / self.optim.batch_size)
        self.total_steps = self.steps_per_epoch * self.optim.epochs
        self.amp, self.amp_dtype, use_scaler = amp_settings(self.optim.amp, device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        # counters, all saved in the state file
        self.epochs_done, self.batch_in_epoch, self.step = 0, 0, 0
        self.best_rmse, self.best_epoch, self.bad_epochs = math.inf, 0, 0
        self.loss_sum, self.loss_n, self.epoch_train_s = 0.0, 0.0, 0.0
        self.finished = False

    # -- setup -------------------------------------------------------------------------------
    def _config(self) -> ViSNetConfig:
        ys = torch.tensor([g.y for g in self.data.train_graphs], dtype=torch.float64)
        std = float(ys.std()) if ys.numel() > 1 else 1.0
        return ViSNetConfig.from_dict(
            {**self.plan.model.config, "y_mean": float(ys.mean()), "y_std": std if std > 1e-6 else 1.0}
        )

    def _build(self, resume: bool) -> None:
        last, state_path = self.files.path(art.LAST), self.files.path(art.STATE)
        state = None
        if resume and last.is_file() and state_path.is_file():
            model, _ = load_compass_model(last)
            state = run_state.load_state(state_path)
            log.info("resuming %s from epoch %d, step %d", self.plan.run_id, state["epochs_done"], state["step"])
        else:
            if resume:
                log.info("nothing to resume in %s: starting afresh", self.files.dir)
            run_state.seed_everything(self.plan.seed)  # same initial weights on every rank
            model = CompassViSNet(self._config())
        self.model = model.to(self.device)
        self.net = wrap_model(self.model, self.ctx, self.device)
        self.optimizer, self.scheduler = build_optimizer(self.model, self.optim, self.total_steps)
        self.best_state = copy.deepcopy(self.model.state_dict())
        if state is None:
            run_state.seed_everything(self.plan.seed + 7919 * self.ctx.rank)  # dropout differs between ranks
            return
        if state["total_steps"] != self.total_steps:
            raise ValueError(
                f"cannot resume: the saved run has {state['total_steps']} steps, this plan/data {self.total_steps}"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        for name in ("epochs_done", "batch_in_epoch", "step", "best_rmse", "best_epoch", "bad_epochs", "finished"):
            setattr(self, name, state[name])
        self.loss_sum, self.loss_n, self.epoch_train_s = state["loss_sum"], state["loss_n"], state["epoch_train_s"]
        if self.ctx.is_main:
            run_state.set_rng_state(state["rng"])
            self.files.truncate_metrics(self.epochs_done)  # lines written after the state was saved
        else:
            run_state.seed_everything(self.plan.seed + 7919 * self.ctx.rank + self.step)
        best = self.files.path(art.BEST)
        if best.is_file():
            self.best_state = copy.deepcopy(load_compass_model(best)[0].state_dict())

    # -- state -------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epochs_done": self.epochs_done,
            "batch_in_epoch": self.batch_in_epoch,
            "step": self.step,
            "total_steps": self.total_steps,
            "best_rmse": self.best_rmse,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "finished": self.finished,
            "loss_sum": self.loss_sum,
            "loss_n": self.loss_n,
            "epoch_train_s": self.epoch_train_s,
            "rng": run_state.rng_state(),
        }

    def _save(self, name: str, metrics: dict[str, Any]) -> None:
        if not self.files.is_main:
            return
        save_checkpoint(
            self.model,
            self.files.path(name),
            feature_settings=self.data.feature_settings,
            plan=self.plan.to_dict(),
            data_hash=self.data.data_hash,
            metrics=metrics,
            extra=self.split_keys,  # so evaluation can refuse to score a model on its own training data
        )

    def _save_last(self) -> None:
        self._save(art.LAST, {"epoch": self.epochs_done, "step": self.step})
        if self.files.is_main:
            run_state.save_state(self.files.path(art.STATE), self._state())

    # -- training ----------------------------------------------------------------------------
    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        sampler = DistributedSampler(
            range(len(self.train_data)), self.ctx.world_size, self.ctx.rank, shuffle=True, seed=self.plan.seed
        )
        sampler.set_epoch(epoch)  # the order depends on (seed, epoch) only: resumable mid-epoch
        order = list(sampler)
        bs = self.optim.batch_size
        return [order[i : i + bs] for i in range(0, len(order), bs)]

    def _train_step(self, idx: list[int]) -> float:
        from torch_geometric.data import Batch

        batch = Batch.from_data_list([self.train_data[i] for i in idx]).to(self.device)
        if self.optim.position_noise > 0:
            batch.pos = batch.pos + self.optim.position_noise * torch.randn_like(batch.pos)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            pred = self.net(batch)
        err = pred.float() - batch.y.float()
        sq = err * err
        mse = sq.mean()  # reported unweighted, so runs with and without weighting compare
        if self.train_weight is not None:  # weights have mean 1 over the training set
            sq = sq * self.train_weight[idx]
        loss = sq.mean() / (self.model.y_std.float() ** 2)  # optimise in normalised units
        if not torch.isfinite(loss) and not self.scaler.is_enabled():
            raise FloatingPointError(f"non-finite loss at step {self.step}: lower optim.lr or raise grad clipping")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return float(mse.detach())

    def run(self, resume: bool, progress: bool, progress_every: int, on_step: Callable | None) -> RunResult:
        from tqdm import tqdm

        self._build(resume)
        epochs, t_session, session_steps = self.optim.epochs, time.time(), 0
        status = "completed"
        while not self.finished and self.epochs_done < epochs:
            epoch = self.epochs_done
            batches = self._epoch_batches(epoch)
            t_epoch = time.time()
            bar = tqdm(
                total=len(batches),
                initial=self.batch_in_epoch,
                desc=f"epoch {epoch + 1}/{epochs}",
                unit="step",
                disable=not (progress and self.ctx.is_main),
                leave=False,
            )
            self.net.train()
            while self.batch_in_epoch < len(batches):
                t0 = time.time()
                idx = batches[self.batch_in_epoch]
                mse = self._train_step(idx)
                self.epoch_train_s += time.time() - t0
                self.loss_sum, self.loss_n = self.loss_sum + mse * len(idx), self.loss_n + len(idx)
                self.batch_in_epoch += 1
                self.step += 1
                session_steps += 1
                bar.update(1)
                bar.set_postfix(loss=f"{mse:.3f}")
                eta = (time.time() - t_session) / session_steps * (self.total_steps - self.step)
                record = self._report("running", epoch + 1, mse, round(eta, 1))
                if on_step is not None:
                    on_step(record)
                if self.step % progress_every == 0:
                    self.files.progress(record)
                if self.ctx.any(self.stop.is_set()):
                    bar.close()
                    return self._cancel(epoch, epochs)
            bar.close()
            self._end_epoch(epoch, time.time() - t_epoch)
            if self.ctx.any(self.stop.is_set()) and not self.finished and self.epochs_done < epochs:
                return self._cancel(self.epochs_done, epochs)
        return self._finish(status)

    def _end_epoch(self, epoch: int, seconds: float) -> None:
        totals = self.ctx.all_reduce_sum(torch.tensor([self.loss_sum, self.loss_n, self.epoch_train_s]))
        train_loss = float(totals[0] / max(totals[1], 1.0))
        rate = float(totals[1]) / max(float(totals[2]) / self.ctx.world_size, 1e-9)
        val = self._validate()
        self.epochs_done, self.batch_in_epoch = epoch + 1, 0
        self.loss_sum, self.loss_n, self.epoch_train_s = 0.0, 0.0, 0.0
        improved = val is None or (math.isfinite(val["rmse"]) and val["rmse"] < self.best_rmse - MIN_IMPROVEMENT)
        if improved:
            self.best_rmse = val["rmse"] if val is not None else math.nan
            self.best_epoch, self.bad_epochs = self.epochs_done, 0
            self.best_state = copy.deepcopy(self.model.state_dict())
            self._save(art.BEST, {"epoch": self.epochs_done, "step": self.step, **self._val_metrics(val)})
        else:
            self.bad_epochs += 1
        patience = self.optim.patience
        if val is not None and patience and self.bad_epochs >= patience:
            log.info("early stop after epoch %d: no better validation RMSE for %d epochs", self.epochs_done, patience)
            self.finished = True
        row = {"epoch": self.epochs_done, "step": self.step, "train_loss": train_loss, **self._val_metrics(val)}
        row |= {"lr": self.scheduler.get_last_lr()[0], "seconds": round(seconds, 3), "complexes_per_s": rate}
        self.files.append_metrics(row)
        log.info("epoch %d/%d %s", self.epochs_done, self.optim.epochs, row)
        self._save_last()
        self.files.progress(self._report("running", self.epochs_done, train_loss, None))

    def _validate(self) -> dict[str, Any] | None:
        if not self.val_data:
            return None
        return evaluate(self.net, self.val_data, self.ctx, self.device, self.optim.batch_size)

    def _report(self, status: str, epoch: int, loss: float | None, eta_s: float | None) -> dict[str, Any]:
        return progress_record(
            self.plan,
            status,
            epoch=epoch,
            total_epochs=self.optim.epochs,
            step=self.step,
            total_steps=self.total_steps,
            loss=loss,
            eta_s=eta_s,
            best_val_rmse=self.best_rmse,
        )

    @staticmethod
    def _val_metrics(val: dict | None) -> dict[str, Any]:
        if val is None:
            return {"val_rmse": None, "val_pearson": None}
        return {"val_rmse": val["rmse"], "val_pearson": val["pearson"]}

    def _cancel(self, epoch: int, epochs: int) -> RunResult:
        log.warning("run %s cancelled at step %d: saving last checkpoint", self.plan.run_id, self.step)
        self._save_last()
        self.files.progress(self._report("cancelled", epoch + 1, None, None))
        self.ctx.barrier()
        metrics = {"status": "cancelled", "step": self.step, "epochs_run": self.epochs_done}
        return RunResult(self.files.dir, self.files.path(art.BEST), metrics, "cancelled")

    def _finish(self, status: str) -> RunResult:
        stopped_early = self.finished and self.epochs_done < self.optim.epochs
        self.finished = True
        self.model.load_state_dict(self.best_state)
        val = self._validate() or metrics_from_sums(torch.zeros(8, dtype=torch.float64))
        record = eval_record(
            self.plan,
            self.data,
            status,
            val,
            best_epoch=self.best_epoch,
            epochs_run=self.epochs_done,
            stopped_early=stopped_early,
            best_checkpoint=art.BEST,
        )
        self.files.write_json(art.EVAL, record)
        if self.files.is_main:
            run_state.save_state(self.files.path(art.STATE), self._state())
        self.files.progress(self._report(status, self.epochs_done, None, 0.0))
        self.ctx.barrier()
        return RunResult(self.files.dir, self.files.path(art.BEST), record, status)
