"""A fitted compass-lite model: tree ensemble + within-series term, and how it predicts fast and reproducibly.

Training (:mod:`compass.model.lite`) and file loading (:mod:`compass.model.lite_format`) both build a
:class:`LitePredictor`, so it lives in a module that depends on neither: the loader never imports the
training code, and the file format can change without touching how a model predicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from compass.data.graph import ComplexGraph, FeatureSettings
from compass.model.descriptors import DescriptorSpec, describe_many

KIND = "compass-lite"


@dataclass
class WithinSeries:
    """Linear ranking term learnt from differences *within* congeneric series (fixed-effects ridge).

    Trees are piecewise constant, so close analogues of one series mostly land in the same leaves
    and their ranking is noise; a linear term on log descriptors moves smoothly with small changes.
    Fitting it on series-demeaned features and labels keeps protein-level offsets out of it.
    """

    mean: np.ndarray  # of log1p descriptors
    scale: np.ndarray
    coef: np.ndarray
    weight: float

    CLIP = 6.0  # standard deviations: bounds the term on complexes unlike the training series

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = np.clip((np.log1p(np.clip(x, 0.0, None)) - self.mean) / self.scale, -self.CLIP, self.CLIP)
        return self.weight * (z @ self.coef)

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, series: list[str], alpha: float, weight: float) -> WithinSeries | None:
        """None when no series has two labelled records (nothing to learn from)."""
        names = np.array(series, dtype=object)
        uniq, inverse, counts = np.unique(names, return_inverse=True, return_counts=True)
        rows = counts[inverse] >= 2
        if weight == 0 or rows.sum() < 3:
            return None
        logx = np.log1p(np.clip(x[rows], 0.0, None))
        mean, scale = logx.mean(0), logx.std(0)
        scale = np.where(scale < 1e-6, 1.0, scale)
        z, t, groups = (logx - mean) / scale, y[rows].astype(float), inverse[rows]
        size = np.maximum(np.bincount(groups, minlength=len(uniq)), 1)
        z = z - (_group_sum(z, groups, len(uniq)) / size[:, None])[groups]
        t = t - (np.bincount(groups, weights=t, minlength=len(uniq)) / size)[groups]
        coef = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ t)
        return cls(mean=mean, scale=scale, coef=coef, weight=float(weight))


def _group_sum(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    out = np.zeros((n_groups, values.shape[1]))
    np.add.at(out, groups, values)
    return out


class PackedForest:
    """Every tree of a fitted forest in padded arrays, walked together.

    scikit-learn predicts tree by tree (about 0.15 ms of Python per tree, 80 ms for one complex
    through 500 trees); here all root-to-leaf paths advance together, one numpy step per level.
    Splits compare float32 features with float64 thresholds, as scikit-learn's trees do.
    Node and feature indices are checked when packing, so a forged file cannot index out of range.
    """

    CHUNK = 512  # samples per pass: bounds the [trees, samples] index arrays

    def __init__(self, forest: Any) -> None:
        trees = [est.tree_ for est in forest.estimators_]
        width = max(t.node_count for t in trees)
        shape = (len(trees), width)
        self.left = np.full(shape, -1, dtype=np.int32)
        self.right = np.full(shape, -1, dtype=np.int32)
        self.feature = np.zeros(shape, dtype=np.int32)
        self.threshold = np.zeros(shape, dtype=np.float64)
        self.value = np.zeros(shape, dtype=np.float64)
        for i, t in enumerate(trees):
            n = t.node_count
            kids = np.concatenate([t.children_left, t.children_right])
            if kids.min() < -1 or kids.max() >= n or t.feature.max() >= forest.n_features_in_:
                raise ValueError(f"tree {i} has node or feature indices out of range")
            self.left[i, :n], self.right[i, :n] = t.children_left, t.children_right
            self.feature[i, :n] = np.maximum(t.feature, 0)  # leaves carry -2; never read there
            self.threshold[i, :n], self.value[i, :n] = t.threshold, t.value[:, 0, 0]

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return np.concatenate([self._walk(x[i : i + self.CHUNK]) for i in range(0, len(x), self.CHUNK)])

    def _walk(self, x: np.ndarray) -> np.ndarray:
        n_trees, width = self.left.shape
        # One flat slot per (tree, sample); only paths still at an inner node are advanced each step.
        base = np.repeat(np.arange(n_trees, dtype=np.int64) * width, len(x))
        sample = np.tile(np.arange(len(x)), n_trees)
        left, right = self.left.ravel(), self.right.ravel()
        feature, threshold = self.feature.ravel(), self.threshold.ravel()
        node = base.copy()  # flat index of each path's current node
        active = np.arange(len(node))
        for _ in range(width):  # no root-to-leaf path is longer than a tree; a cyclic (forged) tree stops here
            if not active.size:
                break
            at = node[active]
            child = left[at]
            inner = child >= 0
            active, at, child = active[inner], at[inner], child[inner]
            goes_left = x[sample[active], feature[at]] <= threshold[at]
            node[active] = base[active] + np.where(goes_left, child, right[at])
        # [sample, tree], contiguous: each sample's sum runs in the same order whatever the batch size.
        return np.ascontiguousarray(self.value.ravel()[node].reshape(n_trees, len(x)).T).mean(1)


class LitePredictor:
    """A fitted compass-lite model; implements the Predictor protocol of compass.model.checkpoint."""

    kind = KIND

    def __init__(
        self,
        estimator: Any,
        spec: DescriptorSpec,
        feature_settings: FeatureSettings,
        meta: dict[str, Any],
        within: WithinSeries | None = None,
    ) -> None:
        self.estimator = estimator
        self.spec = spec
        self.feature_settings = feature_settings
        self.meta = meta
        self.within = within
        self._packed = PackedForest(estimator) if hasattr(estimator, "estimators_") else None

    def describe(self, graphs: list[ComplexGraph]) -> np.ndarray:
        return describe_many(graphs, self.spec)

    def predict_descriptors(self, x: np.ndarray) -> np.ndarray:
        """pK from a descriptor matrix (benchmarks reuse one matrix for many models)."""
        raw = self._packed.predict(x) if self._packed is not None else self.estimator.predict(x)
        pred = np.asarray(raw, dtype=np.float64)
        return pred + self.within(x) if self.within is not None else pred

    def predict(self, graphs: list[ComplexGraph], batch_size: int = 32) -> np.ndarray:
        """pK per graph; ``batch_size`` is accepted for the protocol (descriptors are per complex anyway)."""
        if not graphs:
            return np.zeros(0)
        return self.predict_descriptors(self.describe(graphs))


def serial(estimator: Any) -> Any:
    """Predict on one thread: forests sum trees in thread-arrival order, so n_jobs > 1 is not bit-reproducible."""
    if "n_jobs" in estimator.get_params():
        estimator.set_params(n_jobs=1)
    return estimator
