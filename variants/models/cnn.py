"""The one-hot CNN of Mason et al. 2021 (their tuned ``CONV 400x5, DROP 0.2, POOL 2/1, DENSE 300``) in torch.

Input: the variable region one-hot ``[N, L, |vocab|]``; output: P(binder). Epochs are selected
on the validation ROC-AUC with early stopping; every epoch is checkpointed in ``training/`` so
``--resume`` continues an interrupted run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from variants.dataset import VariantSet
from variants.models.base import ModelContext, Progress, TrainConfig, VariantModel

log = logging.getLogger(__name__)
DEFAULTS = {"filters": 400, "kernel": 5, "dropout": 0.2, "pool": 2, "dense": 300}
SCORE_BATCH = 4096


class OneHotCNN(nn.Module):
    """Conv1d over positions → dropout → max-pool (stride 1) → dense → one logit."""

    def __init__(self, length: int, letters: int, filters: int, kernel: int, dropout: float, pool: int, dense: int):
        super().__init__()
        self.conv = nn.Conv1d(letters, filters, kernel, padding="same")
        self.drop = nn.Dropout(dropout)
        self.pool = nn.MaxPool1d(pool, stride=1)
        self.dense = nn.Linear(filters * (length - pool + 1), dense)
        self.out = nn.Linear(dense, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, L, letters]
        h = self.pool(self.drop(torch.relu(self.conv(x.transpose(1, 2)))))
        return self.out(torch.relu(self.dense(h.flatten(1)))).squeeze(1)


class CNNModel(VariantModel):
    name = "cnn"
    file_name = "model.pt"

    def __init__(self, options: dict[str, Any], context: ModelContext) -> None:
        super().__init__(options, context)
        unknown = set(self.options) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"plan.model.{sorted(unknown)[0]}: unknown option of model 'cnn' ({', '.join(DEFAULTS)})")
        self.hparams = {**DEFAULTS, **self.options}
        length = context.region[1] - context.region[0] + 1
        self.net = OneHotCNN(length, len(context.vocab.letters), **self.hparams)

    def _x(self, sequences: list[str]) -> torch.Tensor:
        return torch.from_numpy(self.context.vocab.one_hot(self.context.windows(sequences)))

    @torch.inference_mode()
    def score(self, sequences: list[str]) -> np.ndarray:
        self.net.eval()
        out = np.empty(len(sequences), dtype=np.float32)
        for start in range(0, len(sequences), SCORE_BATCH):
            x = self._x(sequences[start : start + SCORE_BATCH])
            out[start : start + len(x)] = torch.sigmoid(self.net(x)).numpy()
        return out

    def fit(self, train: VariantSet, val: VariantSet, config: TrainConfig, progress: Progress) -> dict[str, Any]:
        torch.manual_seed(config.seed)
        x, y = self._x(train.sequences), torch.from_numpy(train.labels.astype(np.float32))
        opt = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        state = {"epoch": 0, "best_auc": -1.0, "best_epoch": 0, "best_state": None, "history": []}
        ckpt = config.checkpoint_dir / "checkpoint.pt" if config.checkpoint_dir else None
        if config.resume and ckpt is not None and ckpt.is_file():
            saved = torch.load(ckpt, weights_only=True)
            self.net.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            state = saved["state"]
            log.info("resuming the CNN after epoch %d", state["epoch"])
        gen = torch.Generator().manual_seed(config.seed + state["epoch"])
        loss_fn = nn.BCEWithLogitsLoss()
        while state["epoch"] < config.max_epochs:
            self.net.train()
            order = torch.randperm(len(x), generator=gen)
            total = 0.0
            for start in range(0, len(x), config.batch_size):
                idx = order[start : start + config.batch_size]
                opt.zero_grad()
                loss = loss_fn(self.net(x[idx]), y[idx])
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            state["epoch"] += 1
            val_auc = float(roc_auc_score(val.labels, self.score(val.sequences))) if len(set(val.labels)) > 1 else 0.0
            row = {"epoch": state["epoch"], "train_loss": total / max(1, len(x)), "val_roc_auc": val_auc}
            state["history"].append(row)
            if val_auc > state["best_auc"]:
                state.update(
                    best_auc=val_auc,
                    best_epoch=state["epoch"],
                    best_state={k: v.clone() for k, v in self.net.state_dict().items()},
                )
            progress({**row, "max_epochs": config.max_epochs, "best_epoch": state["best_epoch"]})
            if ckpt is not None:
                tmp = ckpt.with_suffix(".tmp")
                torch.save({"model": self.net.state_dict(), "optimizer": opt.state_dict(), "state": state}, tmp)
                tmp.replace(ckpt)
            if state["epoch"] - state["best_epoch"] >= config.patience:
                break
        if state["best_state"] is not None:
            self.net.load_state_dict(state["best_state"])
        return {"history": state["history"], "best_epoch": state["best_epoch"], "best_val_roc_auc": state["best_auc"]}

    def save(self, path: Path) -> None:
        torch.save({"hparams": self.hparams, "state": self.net.state_dict()}, path)

    @classmethod
    def load(cls, path: Path, context: ModelContext) -> CNNModel:
        saved = torch.load(path, weights_only=True)
        model = cls(saved["hparams"], context)
        model.net.load_state_dict(saved["state"])
        model.net.eval()
        return model
