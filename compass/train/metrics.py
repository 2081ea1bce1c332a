"""Affinity metrics exactly as DESIGN.md reports them: per molecule, pooled and per series, with anchors.

Conventions (say them wherever figures are quoted):

* Records sharing ``(series, molecule)`` (protomers, tautomers, flipped poses) are merged by the
  **mean** of their predictions and labels before anything is scored.
* Per-series figures use series with at least ``MIN_SERIES_SIZE`` (5) molecules. A series whose
  labels are constant is left out (nothing to rank); a model whose predictions are constant within
  a series scores correlation 0 there (it ranks nothing) and is counted in ``n_series_constant``.
* Correlations of fewer than two points or of constant input are NaN, never an exception.
* Errors are in pK units; ``kcal_mol`` gives them ×1.3643 (RT ln 10 at 298.15 K), for FEP.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from compass.data.graph import ComplexGraph, ComplexRecord

MIN_SERIES_SIZE = 5
KCAL_PER_PK = 1.3643  # RT ln(10) in kcal/mol at 298.15 K: ΔG = -1.3643 · pK


def _arrays(pred: Sequence[float] | np.ndarray, label: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, y = np.asarray(pred, dtype=float), np.asarray(label, dtype=float)
    if p.shape != y.shape:
        raise ValueError(f"prediction and label shapes differ: {p.shape} vs {y.shape}")
    return p, y


def _constant(x: np.ndarray) -> bool:
    return bool(len(x) == 0 or np.all(x == x[0]))


def pearson(pred: Sequence[float] | np.ndarray, label: Sequence[float] | np.ndarray) -> float:
    """Pearson R; NaN for < 2 points or constant input (scipy would warn)."""
    p, y = _arrays(pred, label)
    if len(p) < 2 or _constant(p) or _constant(y):
        return math.nan
    return float(stats.pearsonr(p, y).statistic)


def spearman(pred: Sequence[float] | np.ndarray, label: Sequence[float] | np.ndarray) -> float:
    """Spearman ρ (ties get average ranks); NaN for < 2 points or constant input."""
    p, y = _arrays(pred, label)
    if len(p) < 2 or _constant(p) or _constant(y):
        return math.nan
    return float(stats.spearmanr(p, y).statistic)


def rmse(pred: Sequence[float] | np.ndarray, label: Sequence[float] | np.ndarray) -> float:
    p, y = _arrays(pred, label)
    return float(np.sqrt(np.mean((p - y) ** 2))) if len(p) else math.nan


def mae(pred: Sequence[float] | np.ndarray, label: Sequence[float] | np.ndarray) -> float:
    p, y = _arrays(pred, label)
    return float(np.mean(np.abs(p - y))) if len(p) else math.nan


def centred_rmse(
    pred: Sequence[float] | np.ndarray, label: Sequence[float] | np.ndarray, series: Sequence[str] | None = None
) -> float:
    """RMSE after removing each series' mean error: judges relative (FEP-style) predictions fairly."""
    p, y = _arrays(pred, label)
    if not len(p):
        return math.nan
    err = p - y
    groups = np.asarray(series if series is not None else ["" for _ in err], dtype=object)
    centred = err.copy()
    for name in set(groups.tolist()):
        mask = groups == name
        centred[mask] -= err[mask].mean()
    return float(np.sqrt(np.mean(centred**2)))


@dataclass
class Molecules:
    """Per-molecule arrays after merging duplicate records (all aligned)."""

    series: np.ndarray  # object [M]
    molecule: np.ndarray  # object [M]
    pred: np.ndarray  # float [M]
    label: np.ndarray  # float [M]
    n_records: np.ndarray  # int [M]

    def __len__(self) -> int:
        return len(self.pred)


def molecule_ids(records: Sequence[ComplexRecord]) -> tuple[list[str], list[str]]:
    """(series, molecule) per record; a record without a molecule name is its own molecule (its key)."""
    return [r.series for r in records], [r.molecule or r.key for r in records]


def merge_duplicates(
    series: Sequence[str],
    molecule: Sequence[str],
    pred: Sequence[float] | np.ndarray,
    label: Sequence[float] | np.ndarray,
) -> Molecules:
    """Mean of pred and label over records sharing (series, molecule); NaN preds/labels are ignored in the mean.

    Order follows the first occurrence of each molecule. A molecule whose every label (or prediction)
    is NaN keeps NaN and is dropped by :func:`score`.
    """
    p, y = _arrays(pred, label)
    if not (len(series) == len(molecule) == len(p)):
        raise ValueError("series, molecule, pred and label must be aligned")
    index: dict[tuple[str, str], int] = {}
    for s, m in zip(series, molecule, strict=True):
        index.setdefault((str(s), str(m)), len(index))
    slot = np.array([index[(str(s), str(m))] for s, m in zip(series, molecule, strict=True)], dtype=np.int64)
    n = len(index)
    keys = list(index)
    return Molecules(
        series=np.array([k[0] for k in keys], dtype=object),
        molecule=np.array([k[1] for k in keys], dtype=object),
        pred=_group_nanmean(slot, p, n),
        label=_group_nanmean(slot, y, n),
        n_records=np.bincount(slot, minlength=n),
    )


def _group_nanmean(slot: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    ok = np.isfinite(values)
    total = np.bincount(slot[ok], weights=values[ok], minlength=n)
    count = np.bincount(slot[ok], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def per_series(
    pred: Sequence[float] | np.ndarray,
    label: Sequence[float] | np.ndarray,
    series: Sequence[str],
    min_size: int = MIN_SERIES_SIZE,
) -> dict[str, Any]:
    """Spearman, Pearson and centred RMSE per series (≥ ``min_size`` molecules), and their means."""
    p, y = _arrays(pred, label)
    groups = np.asarray(series, dtype=object)
    table: dict[str, dict[str, float]] = {}
    n_constant = 0
    for name in sorted(set(groups.tolist()), key=str):
        mask = groups == name
        if mask.sum() < min_size or _constant(y[mask]):
            continue
        flat = _constant(p[mask])
        n_constant += int(flat)
        table[str(name)] = {
            "n": int(mask.sum()),
            "spearman": 0.0 if flat else spearman(p[mask], y[mask]),
            "pearson": 0.0 if flat else pearson(p[mask], y[mask]),
            "centred_rmse": centred_rmse(p[mask], y[mask]),
        }

    def mean_of(key: str) -> float:
        return float(np.mean([row[key] for row in table.values()])) if table else math.nan

    return {
        "n_series": len(table),
        "n_series_constant": n_constant,
        "spearman": mean_of("spearman"),
        "pearson": mean_of("pearson"),
        "centred_rmse": mean_of("centred_rmse"),
        "series": table,
    }


def bootstrap_pearson_ci(
    pred: Sequence[float] | np.ndarray, label: Sequence[float] | np.ndarray, n_boot: int = 1000, seed: int = 0
) -> list[float]:
    """Percentile 95 % CI of pooled Pearson R, resampling molecules with replacement (seeded)."""
    p, y = _arrays(pred, label)
    if n_boot <= 0 or len(p) < 3 or _constant(p) or _constant(y):
        return [math.nan, math.nan]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(p), size=(n_boot, len(p)))
    ps, ys = p[idx], y[idx]
    ps = ps - ps.mean(1, keepdims=True)
    ys = ys - ys.mean(1, keepdims=True)
    denom = np.sqrt((ps**2).sum(1) * (ys**2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (ps * ys).sum(1) / denom
    r = r[np.isfinite(r)]
    return [float(np.percentile(r, 2.5)), float(np.percentile(r, 97.5))] if len(r) else [math.nan, math.nan]


def score(
    pred: Sequence[float] | np.ndarray,
    label: Sequence[float] | np.ndarray,
    series: Sequence[str],
    molecule: Sequence[str] | None = None,
    *,
    kcal: bool = False,
    min_series_size: int = MIN_SERIES_SIZE,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """DESIGN's metrics block for one predictor. With ``molecule`` given, duplicates are merged first.

    Molecules with a NaN label or prediction are not scored (``n_molecules`` counts the scored ones).
    """
    p, y = _arrays(pred, label)
    if molecule is not None:
        mols = merge_duplicates(series, molecule, p, y)
        p, y, groups = mols.pred, mols.label, mols.series
    else:
        groups = np.asarray(series, dtype=object)
    ok = np.isfinite(p) & np.isfinite(y)
    p, y, groups = p[ok], y[ok], groups[ok]
    ps = per_series(p, y, groups, min_series_size)
    out: dict[str, Any] = {
        "n_molecules": len(p),
        "n_series": ps["n_series"],
        "pooled": {"pearson": pearson(p, y), "spearman": spearman(p, y), "rmse": rmse(p, y), "mae": mae(p, y)},
        "per_series_mean": {k: ps[k] for k in ("spearman", "pearson", "centred_rmse")},
        "pooled_pearson_ci95": bootstrap_pearson_ci(p, y, n_boot=n_boot, seed=seed),
        "n_series_constant": ps["n_series_constant"],
        "units": "pK",
    }
    if kcal:
        out["kcal_mol"] = {
            "rmse": out["pooled"]["rmse"] * KCAL_PER_PK,
            "mae": out["pooled"]["mae"] * KCAL_PER_PK,
            "centred_rmse": out["per_series_mean"]["centred_rmse"] * KCAL_PER_PK,
            "kcal_per_pK": KCAL_PER_PK,
        }
    out["per_series"] = ps["series"]
    return out


def heavy_atom_anchor(graphs: Sequence[ComplexGraph], line: tuple[float, float] | None = None) -> np.ndarray:
    """The baseline every model must beat: ligand heavy-atom count as the prediction.

    Raw counts rank as well as any monotone map of them, but their errors mean nothing; with
    ``line = (slope, intercept)`` (from :func:`fit_heavy_atom_line` on *training* data) they are pK.
    """
    counts = np.array([float(g.num_ligand_atoms) for g in graphs])
    return counts if line is None else line[0] * counts + line[1]


def fit_heavy_atom_line(graphs: Sequence[ComplexGraph], labels: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Least-squares pK = slope · heavy atoms + intercept (fit it on training data only)."""
    x, y = heavy_atom_anchor(graphs), np.asarray(labels, dtype=float)
    ok = np.isfinite(y)
    if ok.sum() < 2 or _constant(x[ok]):
        return 0.0, float(np.mean(y[ok])) if ok.any() else 0.0
    slope, intercept = np.polyfit(x[ok], y[ok], 1)
    return float(slope), float(intercept)


def fep_plus_anchor(records: Sequence[ComplexRecord]) -> np.ndarray:
    """FEP+ 21-4 predicted pK per record, NaN where the index has none (those molecules are not scored)."""
    return np.array([math.nan if r.fep_plus_pK is None else float(r.fep_plus_pK) for r in records])


def score_records(
    records: Sequence[ComplexRecord], pred: Sequence[float] | np.ndarray, **kwargs: Any
) -> dict[str, Any]:
    """:func:`score` keyed by the records' labels, series and molecules (duplicates merged by mean)."""
    series, molecule = molecule_ids(records)
    label = [math.nan if r.pK is None else float(r.pK) for r in records]
    return score(pred, label, series, molecule, **kwargs)


def score_anchors(
    records: Sequence[ComplexRecord],
    graphs: Sequence[ComplexGraph],
    heavy_atom_line: tuple[float, float] | None = None,
    **kwargs: Any,
) -> dict[str, dict[str, Any]]:
    """Heavy-atom and FEP+ anchors on the same records, with the same keys.

    FEP+ scores only molecules with a value (``n_molecules`` 0 and NaN figures when the root has
    none). Without ``heavy_atom_line`` the heavy-atom errors are NaN: raw counts are not pK.
    """
    heavy = score_records(records, heavy_atom_anchor(graphs, heavy_atom_line), **kwargs)
    if heavy_atom_line is None:
        heavy["pooled"] |= {"rmse": math.nan, "mae": math.nan}
        heavy["per_series_mean"]["centred_rmse"] = math.nan
        for row in heavy["per_series"].values():
            row["centred_rmse"] = math.nan
        if "kcal_mol" in heavy:
            heavy["kcal_mol"] |= {"rmse": math.nan, "mae": math.nan, "centred_rmse": math.nan}
    heavy["calibration"] = "raw counts: correlations only" if heavy_atom_line is None else list(heavy_atom_line)
    fep = score_records(records, fep_plus_anchor(records), **kwargs)
    fep["calibration"] = "FEP+ 21-4, shifted per series to the experimental mean by its authors"
    return {"fep_plus": fep, "heavy_atoms": heavy}
