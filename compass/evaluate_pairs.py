"""Every read-out of a descriptor model (compass-lite, the COMPASS stack) over several seeds, baselines beside.

    python -m compass.evaluate --set pairs --plan compass/weights/plans/pairs-lite.json --out runs/eval-lite
    python -m compass.evaluate --set pairs --plan compass/weights/plans/pairs-stack.json --out runs/eval-stack

Per seed (resumable: each finished seed is a JSON file in ``--out`` and is not run again):

* **grouped CV**: protein-grouped 5-fold out-of-fold predictions on the 10,791 training rows (all, and
  the 9,299 PDBbind rows alone);
* **CASF-2016** (285, PDBbind 2021 files): trained on every training row, scored with features
  recomputed from the pocket files (the serving path) and, for reference, with the table's own CASF
  rows; scoring power (Pearson R), ranking power (mean per-cluster Spearman), coverage of the
  conformal intervals;
* **fep-lpo**: FEP proteins in 5 grouped folds; a fold's held-out proteins and every training row in
  their UniProt component (the 961 FEP-relative PDBbind rows among them) leave its training set;
  pooled R and mean per-series Spearman over molecules (records of one molecule averaged).

The ligand heavy-atom count (RDKit, where a ligand is readable) and FEP+ are scored on the same rows.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from compass.data.pairs_table import CUTOFFS, PairSet, load_set
from compass.data.splits import group_kfold
from compass.train.metrics import merge_duplicates, pearson, per_series
from compass.train.pairs import PairPlan, fit_rows, member_matrices, out_of_fold, train_pairs
from services.common.files import atomic_path

PUBLISHED = {  # CASF-2016 Pearson R of models trained on exactly these 9,299 rows (data README)
    "RF-Score counts, 10.5 Å (published)": 0.817,
    "counts + RDKit descriptors (published)": 0.818,
    "ECIF (published, richer atom types)": 0.858,
}


def _casf_block(model: Any, casf: PairSet, table: PairSet) -> dict[str, Any]:
    cols = [CUTOFFS.index(c) for c in model.cutoffs]
    pred = model.predict_arrays(casf.counts[:, cols], casf.props, casf.geometry)
    pred_table = model.predict_arrays(table.counts[:, cols], table.props, casf.geometry)
    y = casf.pK
    clusters = [r.series for r in casf.records]
    out = {
        "n": len(y),
        "pearson": pearson(pred, y),
        "ranking": per_series(pred, y, clusters, min_size=3)["spearman"],
        "rmse": float(np.sqrt(np.mean((pred - y) ** 2))),
        "table_rows_pearson": pearson(pred_table, table.pK),
        "table_rows_ranking": per_series(pred_table, table.pK, clusters, min_size=3)["spearman"],
    }
    for level, width in zip(model.conformal.levels, model.conformal.halfwidths, strict=True):
        out[f"coverage_{round(level * 100)}"] = float(np.mean(np.abs(pred - y) <= width))
    return out


def _fep_lpo(plan: PairPlan, data: PairSet, n_jobs: int) -> dict[str, Any]:
    fep = np.flatnonzero(data.sources == "fep")
    fep_records = [data.records[i] for i in fep]
    folds = group_kfold(fep_records, 5, seed=plan.seed)
    xs = member_matrices(plan, data)
    pred = np.full(len(data), np.nan)
    groups = np.array([r.group for r in data.records])
    for held in folds:
        held_rows = fep[held]
        train = np.flatnonzero(~np.isin(groups, np.unique(groups[held_rows])))
        pred[held_rows] = fit_rows(plan, data, train, xs, n_jobs).predict(data, held_rows, xs)
    series = [r.series for r in fep_records]
    molecules = [r.molecule or r.key for r in fep_records]
    mol = merge_duplicates(series, molecules, pred[fep], data.pK[fep])
    heavy = merge_duplicates(series, molecules, data.props[fep, 0], data.pK[fep])
    plus = np.array([np.nan if r.fep_plus_pK is None else r.fep_plus_pK for r in fep_records])
    fep_plus = merge_duplicates(series, molecules, plus, data.pK[fep])
    ok = np.isfinite(fep_plus.pred)
    return {
        "n_molecules": len(mol.pred),
        "pearson": pearson(mol.pred, mol.label),
        "series_spearman": per_series(mol.pred, mol.label, mol.series)["spearman"],
        "heavy_atoms_series_spearman": per_series(heavy.pred, heavy.label, heavy.series)["spearman"],
        "fep_plus_series_spearman": per_series(fep_plus.pred[ok], fep_plus.label[ok], fep_plus.series[ok])["spearman"],
    }


def run_seed(plan: PairPlan, seed: int, n_jobs: int = 1) -> dict[str, Any]:
    """All read-outs for one seed (wall times included)."""
    plan = plan.with_members(plan.members, seed=seed)
    data, casf, table = load_set("train"), load_set("casf"), load_set("casf-table")
    t0 = time.perf_counter()
    oof = out_of_fold(plan, data, n_jobs, progress=True)
    pdb = data.sources == "pdbbind"
    model = train_pairs(plan, data, n_jobs=n_jobs, progress=False, oof=oof)
    t1 = time.perf_counter()
    result = {
        "seed": seed,
        "grouped_cv": {"pearson": pearson(oof, data.pK), "pdbbind_pearson": pearson(oof[pdb], data.pK[pdb])},
        "casf2016": _casf_block(model, casf, table),
        "train_seconds": round(t1 - t0, 1),
    }
    t2 = time.perf_counter()
    result["fep_lpo"] = _fep_lpo(plan, data, n_jobs)
    result["fep_lpo_seconds"] = round(time.perf_counter() - t2, 1)
    return result


def baselines() -> dict[str, Any]:
    """The ligand heavy-atom count on the same read-outs (no fitting; RDKit count where readable)."""
    data, casf = load_set("train"), load_set("casf")
    heavy, ok = data.props[:, 0], np.isfinite(data.props[:, 0])
    fep = np.flatnonzero((data.sources == "fep") & ok)
    fep_mol = merge_duplicates(
        [data.records[i].series for i in fep], [data.records[i].molecule for i in fep], heavy[fep], data.pK[fep]
    )
    pdb = ok & (data.sources == "pdbbind")
    c_heavy, c_ok = casf.props[:, 0], np.isfinite(casf.props[:, 0])
    clusters = np.array([r.series for r in casf.records])
    return {
        "grouped_cv_pearson": pearson(heavy[ok], data.pK[ok]),
        "pdbbind_pearson": pearson(heavy[pdb], data.pK[pdb]),
        "casf_pearson": pearson(c_heavy[c_ok], casf.pK[c_ok]),
        "casf_ranking": per_series(c_heavy[c_ok], casf.pK[c_ok], clusters[c_ok], min_size=3)["spearman"],
        "casf_n": int(c_ok.sum()),
        "fep_lpo_pearson": pearson(fep_mol.pred, fep_mol.label),
    }


def evaluate(plan: PairPlan, out: Path, seeds: tuple[int, ...] = (0, 1, 2), n_jobs: int = 1) -> dict[str, Any]:
    """Run (or resume) every seed, then write ``metrics.json`` with mean ± sd and the baselines."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    runs = []
    for seed in seeds:
        path = out / f"seed-{seed}.json"
        if not path.is_file():
            with atomic_path(path) as tmp:
                Path(tmp).write_text(json.dumps(run_seed(plan, seed, n_jobs), indent=2))
        runs.append(json.loads(path.read_text()))
    summary = {
        "plan": plan.kind,
        "seeds": list(seeds),
        "runs": runs,
        "mean_sd": _mean_sd(runs),
        "heavy_atom_count": baselines(),
        "published_casf_pearson": PUBLISHED,
        "wall_seconds_this_call": round(time.perf_counter() - started, 1),
    }
    with atomic_path(out / "metrics.json") as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=2))
    return summary


def _mean_sd(runs: list[dict[str, Any]]) -> dict[str, list[float]]:
    """``block.key`` → [mean, sd] over seeds, for every number the runs share."""
    flat: dict[str, list[float]] = {}
    for run in runs:
        for block, values in run.items():
            if isinstance(values, (int, float)) and block != "seed":
                flat.setdefault(block, []).append(float(values))
            elif isinstance(values, dict):
                for key, v in values.items():
                    if isinstance(v, (int, float)):
                        flat.setdefault(f"{block}.{key}", []).append(float(v))
    return {k: [float(np.mean(v)), float(np.std(v))] for k, v in flat.items()}


def summary_lines(summary: dict[str, Any]) -> list[str]:
    m, h = summary["mean_sd"], summary["heavy_atom_count"]

    def f(key: str) -> str:
        mean, sd = m.get(key, [float("nan"), 0.0])
        return f"{mean:.3f} ± {sd:.3f}"

    return [
        f"{summary['plan']} over seeds {summary['seeds']}:",
        f"  CASF-2016 pockets: R {f('casf2016.pearson')}  ranking {f('casf2016.ranking')}  "
        f"(heavy atoms R {h['casf_pearson']:.3f}, ranking {h['casf_ranking']:.3f})",
        f"  CASF-2016 table rows: R {f('casf2016.table_rows_pearson')}  ranking {f('casf2016.table_rows_ranking')}",
        f"  80% interval coverage on CASF: {f('casf2016.coverage_80')}",
        f"  grouped CV R {f('grouped_cv.pearson')} (PDBbind rows {f('grouped_cv.pdbbind_pearson')}; "
        f"heavy atoms {h['grouped_cv_pearson']:.3f})",
        f"  fep-lpo series rho {f('fep_lpo.series_spearman')}  pooled R {f('fep_lpo.pearson')}  "
        f"(heavy atoms {f('fep_lpo.heavy_atoms_series_spearman')} / {h['fep_lpo_pearson']:.3f}, "
        f"FEP+ {f('fep_lpo.fep_plus_series_spearman')})",
        f"  training {f('train_seconds')} s per seed (CV + final fit)",
    ]
