"""The run folder: ``runs/<run_id>/`` with ``exp_plan.json``, ``training/``, the model file,
``model_info.json`` (what loading it needs), ``labels.npz``, ``metrics.json`` and ``visualization/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from services.common.files import atomic_path


def write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2, sort_keys=True, default=str))


def write_labels(path: Path, parts: dict[str, dict[str, Any]]) -> None:
    """Per split part: sequences, true labels, scores (arrays only, no pickles)."""
    arrays: dict[str, np.ndarray] = {}
    for part, data in parts.items():
        arrays[f"{part}_sequences"] = np.array(data["sequences"], dtype=str)
        arrays[f"{part}_labels"] = np.asarray(data["labels"], dtype=np.int64)
        arrays[f"{part}_scores"] = np.asarray(data["scores"], dtype=np.float32)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def plot_curves(folder: Path, y: np.ndarray, score: np.ndarray, title: str, confusion: dict[str, int]) -> list[str]:
    """``roc_pr.png`` (ROC and precision-recall side by side) and ``confusion_matrix.png``; the file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    folder.mkdir(parents=True, exist_ok=True)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.5))
    fpr, tpr, _ = roc_curve(y, score)
    ax1.plot(fpr, tpr, label=f"AUC {roc_auc_score(y, score):.3f}")
    ax1.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax1.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax1.legend(loc="lower right")
    prec, rec, _ = precision_recall_curve(y, score)
    ax2.plot(rec, prec, label=f"AP {average_precision_score(y, score):.3f}")
    ax2.axhline(float(np.mean(y)), color="k", ls="--", lw=0.8, label=f"base rate {np.mean(y):.2f}")
    ax2.set(xlabel="recall", ylabel="precision", title="precision-recall")
    ax2.legend(loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(folder / "roc_pr.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(4, 4))
    grid = np.array([[confusion["tn"], confusion["fp"]], [confusion["fn"], confusion["tp"]]])
    ax.imshow(grid, cmap="Blues")
    for (i, j), v in np.ndenumerate(grid):
        ax.text(j, i, str(v), ha="center", va="center")
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=["non-binder", "binder"],
        yticklabels=["non-binder", "binder"],
        xlabel="predicted",
        ylabel="measured",
        title="confusion matrix (test)",
    )
    fig.tight_layout()
    fig.savefig(folder / "confusion_matrix.png", dpi=100)
    plt.close(fig)
    return ["roc_pr.png", "confusion_matrix.png"]
