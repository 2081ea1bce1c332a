"""A logistic (or ridge) head on sequence embeddings (AntiBERTy by default, or an ``embed`` plugin).

Options: ``head: logistic | ridge``, ``C`` (logistic) / ``alpha`` (ridge). The regularisation is
picked on the validation set from a small grid when not given. The head is saved as plain arrays
(``model.npz``: coefficients, intercept, scaler), never a pickle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.metrics import roc_auc_score

from variants.dataset import VariantSet
from variants.models.base import ModelContext, Progress, TrainConfig, VariantModel

GRID = (0.01, 0.1, 1.0, 10.0)


class EmbeddingHead(VariantModel):
    name = "embed-logistic"
    file_name = "model.npz"

    def __init__(self, options: dict[str, Any], context: ModelContext) -> None:
        super().__init__(options, context)
        self.head = self.options.get("head", "ridge" if options.get("name") == "embed-ridge" else "logistic")
        if self.head not in ("logistic", "ridge"):
            raise ValueError("plan.model.head must be 'logistic' or 'ridge'")
        self.coef: np.ndarray | None = None
        self.intercept = 0.0
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.progress: Progress | None = None

    def _embedder(self) -> Any:
        emb = self.context.embeddings
        cls = self.context.embedders[emb.get("name", "antiberty")]
        cache = emb.get("cache") or None
        return cls(emb, Path(cache) if cache else None, self.context.threads)

    def features(self, sequences: list[str], what: str = "embedding") -> np.ndarray:
        done = [0]

        def tick(k: int) -> None:
            done[0] += k
            if self.progress:
                self.progress({"stage": what, "embedded": done[0], "total": len(sequences)})

        return self._embedder().embed(sequences, self.context.positions, tick)

    def _fit_head(self, x: np.ndarray, y: np.ndarray, strength: float) -> None:
        if self.head == "logistic":
            clf = LogisticRegression(C=strength, max_iter=2000)
        else:
            clf = RidgeClassifier(alpha=1.0 / strength)
        clf.fit((x - self.mean) / self.scale, y)
        self.coef = np.asarray(clf.coef_, dtype=np.float32).ravel()
        self.intercept = float(np.ravel(clf.intercept_)[0])

    def _decision(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept

    def fit(self, train: VariantSet, val: VariantSet, config: TrainConfig, progress: Progress) -> dict[str, Any]:
        self.progress = progress
        x, xv = self.features(train.sequences, "embedding train"), self.features(val.sequences, "embedding val")
        self.mean, self.scale = x.mean(axis=0), x.std(axis=0) + 1e-6
        key = "C" if self.head == "logistic" else "alpha"
        given = self.options.get(key)
        grid = [given if key == "C" else 1.0 / given] if given else list(GRID)
        history = []
        best = (-1.0, grid[0])
        for strength in grid:
            self._fit_head(x, train.labels, strength)
            auc = float(roc_auc_score(val.labels, self._decision(xv))) if len(set(val.labels)) > 1 else 0.0
            history.append({"strength": strength, "val_roc_auc": auc})
            progress({"stage": "head", "strength": strength, "val_roc_auc": auc})
            best = max(best, (auc, strength))
        self._fit_head(x, train.labels, best[1])
        return {"history": history, "best_strength": best[1], "best_val_roc_auc": best[0], "head": self.head}

    def score(self, sequences: list[str]) -> np.ndarray:
        if self.coef is None:
            raise RuntimeError("the embedding head is not trained")
        z = self._decision(self.features(sequences, "embedding"))
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32) if self.head == "logistic" else z.astype(np.float32)

    def save(self, path: Path) -> None:
        with path.open("wb") as fh:
            np.savez(
                fh,
                coef=self.coef,
                intercept=np.float32(self.intercept),
                mean=self.mean,
                scale=self.scale,
                head=np.array(self.head),
            )

    @classmethod
    def load(cls, path: Path, context: ModelContext) -> EmbeddingHead:
        with np.load(path, allow_pickle=False) as data:
            model = cls({"head": str(data["head"])}, context)
            model.coef, model.intercept = data["coef"], float(data["intercept"])
            model.mean, model.scale = data["mean"], data["scale"]
        return model
