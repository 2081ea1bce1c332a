"""Metrics of a run: ROC-AUC and average precision from scores, threshold metrics at a validation threshold.

A ``metrics`` plugin subclasses :class:`Metric` (``name``, ``__call__(y_true, y_score) -> float``)
and is asked for in ``plan.eval.metrics`` by name.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn import metrics as skm


class Metric:
    """A score-based metric: higher is better unless the docstring says otherwise."""

    name: ClassVar[str] = ""

    def __call__(self, y_true: np.ndarray, y_score: np.ndarray) -> float:
        raise NotImplementedError


class RocAuc(Metric):
    name = "roc_auc"

    def __call__(self, y_true: np.ndarray, y_score: np.ndarray) -> float:
        return float(skm.roc_auc_score(y_true, y_score))


class AveragePrecision(Metric):
    name = "average_precision"

    def __call__(self, y_true: np.ndarray, y_score: np.ndarray) -> float:
        return float(skm.average_precision_score(y_true, y_score))


BUILTIN_METRICS: dict[str, type[Metric]] = {m.name: m for m in (RocAuc, AveragePrecision)}


def best_threshold(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """The score threshold with the best Matthews correlation on ``y`` (chosen on validation, not test)."""
    if len(np.unique(y_true)) < 2:
        return float(np.median(y_score)) if len(y_score) else 0.5
    candidates = np.unique(np.quantile(y_score, np.linspace(0.01, 0.99, 99)))
    mccs = [skm.matthews_corrcoef(y_true, y_score >= t) for t in candidates]
    return float(candidates[int(np.argmax(mccs))])


def threshold_metrics(y_true: np.ndarray, y_score: np.ndarray, threshold: float) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, MCC and the confusion matrix at ``threshold``."""
    pred = (y_score >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y_true, pred, labels=[0, 1]).ravel()
    return {
        "threshold": float(threshold),
        "accuracy": float(skm.accuracy_score(y_true, pred)),
        "precision": float(skm.precision_score(y_true, pred, zero_division=0)),
        "recall": float(skm.recall_score(y_true, pred, zero_division=0)),
        "f1": float(skm.f1_score(y_true, pred, zero_division=0)),
        "mcc": float(skm.matthews_corrcoef(y_true, pred)),
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }


def evaluate(
    y_true: np.ndarray, y_score: np.ndarray, names: list[str], registry: dict[str, Any], threshold: float
) -> dict[str, Any]:
    """Every named metric (built-in or plugin) plus the threshold metrics."""
    out: dict[str, Any] = {"n": len(y_true), "positives": int(np.sum(y_true))}
    for name in names:
        out[name] = float(registry[name]()(y_true, y_score)) if len(np.unique(y_true)) > 1 else None
    out.update(threshold_metrics(y_true, y_score, threshold))
    return out
