"""Evaluation artefacts under ``--out DIR``: predictions.csv, metrics.json and scatter.png.

One function, :func:`write_report`, so ``compass.evaluate`` (CASF, fep-lpo, any root) and the
worker's training jobs write the same files with the same keys (DESIGN.md, section COMPASS).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compass.data.graph import ComplexGraph, ComplexRecord
from compass.train.metrics import (
    KCAL_PER_PK,
    fep_plus_anchor,
    heavy_atom_anchor,
    merge_duplicates,
    molecule_ids,
    score_anchors,
    score_records,
)

PREDICTION_COLUMNS = ("key", "molecule", "series", "group", "label", "prediction", "heavy_atoms", "fep_plus")


def write_report(
    out_dir: str | Path,
    records: Sequence[ComplexRecord],
    predictions: Sequence[float] | np.ndarray,
    graphs: Sequence[ComplexGraph] | None = None,
    *,
    survival: Any = None,
    n_failed: int | None = None,
    model: dict[str, Any] | None = None,
    kcal: bool | None = None,
    heavy_atom_line: tuple[float, float] | None = None,
    title: str = "",
    seed: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score ``predictions`` (aligned with ``records``/``graphs``) and write the three artefacts.

    ``survival`` is a SurvivalReport (or its dict); ``n_failed`` defaults to its failed count.
    ``kcal`` adds kcal/mol errors; by default on when any record carries an FEP+ value (FEP roots).
    ``heavy_atom_line`` (fitted on the training data) turns the heavy-atom anchor into pK so its
    errors mean something; without it that anchor reports correlations only.
    Returns the metrics dict written to metrics.json.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pred = np.asarray(predictions, dtype=float)
    if len(pred) != len(records) or (graphs is not None and len(graphs) != len(records)):
        raise ValueError("records, predictions and graphs must be aligned")
    heavy = heavy_atom_anchor(graphs) if graphs is not None else np.full(len(records), np.nan)
    fep = fep_plus_anchor(records)
    if kcal is None:
        kcal = bool(np.isfinite(fep).any())
    survival_dict = _survival_dict(survival)
    if n_failed is None:
        n_failed = int(survival_dict.get("n_failed", len(survival_dict.get("failed", [])))) if survival_dict else 0

    _write_predictions(out / "predictions.csv", records, pred, heavy, fep)
    model_scores = score_records(records, pred, kcal=kcal, seed=seed)
    if graphs is not None:
        anchors = score_anchors(records, graphs, heavy_atom_line, kcal=kcal, seed=seed)
    else:  # no graphs, no heavy-atom anchor: the block keeps its keys, with nothing scored
        anchors = {
            name: score_records(records, v, kcal=kcal, seed=seed)
            for name, v in (("fep_plus", fep), ("heavy_atoms", heavy))
        }
    metrics: dict[str, Any] = {
        "n_molecules": model_scores["n_molecules"],
        "n_failed": n_failed,
        "n_records": len(records),
        "n_series": model_scores["n_series"],
        "pooled": model_scores["pooled"],
        "per_series_mean": model_scores["per_series_mean"],
        "pooled_pearson_ci95": model_scores["pooled_pearson_ci95"],
        "anchors": {name: _anchor_block(block) for name, block in anchors.items()},
        "survival": {k: v for k, v in survival_dict.items() if k not in ("skipped", "failed", "notes")},
        "model": model or {},
        "conventions": {
            "duplicates": "records sharing (series, molecule) merged by the mean",
            "min_series_size": 5,
            "units": "pK" + (f"; kcal_mol = pK x {KCAL_PER_PK} (298.15 K)" if kcal else ""),
        },
        "per_series": model_scores["per_series"],
    }
    if kcal:
        metrics["kcal_mol"] = model_scores["kcal_mol"]
    if extra:
        metrics.update(extra)
    clean = _finite_or_none(metrics)
    (out / "metrics.json").write_text(json.dumps(clean, indent=2, sort_keys=False) + "\n")
    _scatter(out / "scatter.png", records, pred, metrics, title)
    return clean


def _anchor_block(block: dict[str, Any]) -> dict[str, Any]:
    keys = ("n_molecules", "n_series", "pooled", "per_series_mean", "pooled_pearson_ci95", "kcal_mol", "calibration")
    return {k: block[k] for k in keys if k in block}


def _survival_dict(survival: Any) -> dict[str, Any]:
    if survival is None:
        return {}
    if isinstance(survival, dict):
        return dict(survival)
    return dict(survival.to_dict())


def _finite_or_none(obj: Any) -> Any:
    """JSON has no NaN: undefined figures are written as null."""
    if isinstance(obj, dict):
        return {str(k): _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _fmt(x: float) -> str:
    return "" if not math.isfinite(x) else f"{x:.4f}"


def _write_predictions(
    path: Path, records: Sequence[ComplexRecord], pred: np.ndarray, heavy: np.ndarray, fep: np.ndarray
) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(PREDICTION_COLUMNS)
        for r, p, h, f in zip(records, pred, heavy, fep, strict=True):
            label = math.nan if r.pK is None else float(r.pK)
            heavy_atoms = "" if not math.isfinite(h) else str(int(h))
            writer.writerow([r.key, r.molecule, r.series, r.group, _fmt(label), _fmt(p), heavy_atoms, _fmt(f)])


def _scatter(
    path: Path, records: Sequence[ComplexRecord], pred: np.ndarray, metrics: dict[str, Any], title: str
) -> None:
    """Predicted vs experimental per molecule, one colour per series, R and ρ in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series, molecule = molecule_ids(records)
    labels = [math.nan if r.pK is None else float(r.pK) for r in records]
    mols = merge_duplicates(series, molecule, pred, labels)
    ok = np.isfinite(mols.pred) & np.isfinite(mols.label)
    names = sorted({str(s) for s in mols.series[ok]})
    colour_of = {name: i for i, name in enumerate(names)}
    cmap = plt.get_cmap("tab20")
    colours = [cmap(colour_of[str(s)] % 20) for s in mols.series[ok]]

    fig, ax = plt.subplots(figsize=(5.5, 5.0), dpi=110)
    ax.scatter(mols.label[ok], mols.pred[ok], c=colours, s=14, alpha=0.8, linewidths=0)
    if ok.any():
        lo = float(min(mols.label[ok].min(), mols.pred[ok].min())) - 0.5
        hi = float(max(mols.label[ok].max(), mols.pred[ok].max())) + 0.5
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, ls="--")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
    r = metrics["pooled"]["pearson"]
    rho = metrics["per_series_mean"]["spearman"]
    r_txt = "n/a" if r is None or not math.isfinite(r) else f"{r:.3f}"
    rho_txt = "n/a" if rho is None or not math.isfinite(rho) else f"{rho:.3f}"
    head = f"{title}\n" if title else ""
    ax.set_title(f"{head}R = {r_txt}, mean series ρ = {rho_txt}, n = {int(ok.sum())}", fontsize=9)
    ax.set_xlabel("experimental pK")
    ax.set_ylabel("predicted pK")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
