"""Choose the descriptor models' members by protein-grouped cross-validation on the training table.

    python bench/compass_pairs_select.py [--seeds 0 1 2] [--only NAME ...] [--plans PLAN.json ...]

Prints, per candidate: grouped 5-fold CV Pearson R and RMSE on all 10,791 rows, R on the PDBbind
rows, mean per-series Spearman on the FEP rows and mean within-protein Spearman on the PDBbind rows
(proteins with at least 5 complexes; the train-side analogue of CASF ranking), all out of fold.
CASF-2016 is never read here: selection sees training rows only.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr, spearmanr

from compass.data.pairs_table import load_set
from compass.train.pairs import MemberPlan, PairPlan, out_of_fold

SHELLS = [4.0, 6.0, 8.0, 10.0]
CANDIDATES: dict[str, list[MemberPlan]] = {
    "rf-6A": [MemberPlan("rf", "rf", {"n_estimators": 100, "max_features": 0.33, "min_samples_leaf": 5}, [6.0])],
    "rf-10A": [MemberPlan("rf", "rf", {"n_estimators": 100, "max_features": 0.33, "min_samples_leaf": 5}, [10.0])],
    "rf-shells": [MemberPlan("rf", "rf", {"n_estimators": 100, "max_features": 0.33, "min_samples_leaf": 5}, SHELLS)],
    "et-shells": [MemberPlan("et", "et", {"n_estimators": 100, "max_features": 0.5, "min_samples_leaf": 5}, SHELLS)],
    "hgb-shells+props": [
        MemberPlan(
            "hgb",
            "hgb",
            {
                "max_iter": 800,
                "learning_rate": 0.03,
                "max_leaf_nodes": 31,
                "min_samples_leaf": 20,
                "l2_regularization": 1.0,
            },
            SHELLS,
            True,
        )
    ],
    "et-shells+props": [
        MemberPlan("et", "et", {"n_estimators": 100, "max_features": 0.5, "min_samples_leaf": 5}, SHELLS, True)
    ],
}
CANDIDATES["et+hgb"] = CANDIDATES["et-shells"] + CANDIDATES["hgb-shells+props"]
CANDIDATES["et+et-props"] = CANDIDATES["et-shells"] + CANDIDATES["et-shells+props"]
CANDIDATES["et+et-props+hgb"] = CANDIDATES["et+et-props"] + CANDIDATES["hgb-shells+props"]
CANDIDATES["et+rf+hgb"] = CANDIDATES["et-shells"] + CANDIDATES["rf-shells"] + CANDIDATES["hgb-shells+props"]


def series_spearman(pred: np.ndarray, y: np.ndarray, series: np.ndarray, min_size: int = 4) -> float:
    rhos = []
    for s in np.unique(series):
        m = series == s
        if m.sum() >= min_size and np.ptp(y[m]) > 0:
            rhos.append(spearmanr(pred[m], y[m])[0])
    return float(np.nanmean(rhos))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--plans", nargs="*", type=Path, default=[], help="whole plans (members + within term)")
    args = parser.parse_args()
    data = load_set("train")
    y, src = data.pK, data.sources
    series = np.array([r.series for r in data.records])
    fep, pdb = src == "fep", src == "pdbbind"
    heavy = data.props[:, 0]
    has = np.isfinite(heavy)
    print(
        f"rows {len(data)}; heavy-atom count on the {has.sum()} rows with a ligand: "
        f"R {pearsonr(heavy[has], y[has])[0]:.3f}"
    )
    groups = np.array([r.group for r in data.records])
    head = f"{'candidate':22s} {'seed':>4s} {'cv R':>6s} {'RMSE':>6s} {'PDBbind R':>9s} {'FEP series rho':>14s}"
    print(head + f" {'protein rho':>11s} {'s':>5s}")
    plans = {name: PairPlan("compass", members) for name, members in CANDIDATES.items()}
    plans = {k: v for k, v in plans.items() if args.only is None or k in args.only}
    plans.update({path.stem: PairPlan.from_dict(json.loads(path.read_text())) for path in args.plans})
    for name, plan in plans.items():
        for seed in args.seeds:
            t0 = time.perf_counter()
            oof = out_of_fold(plan.with_members(plan.members, seed=seed), data, n_jobs=args.jobs, progress=False)
            print(
                f"{name:22s} {seed:4d} {pearsonr(oof, y)[0]:6.3f} {np.sqrt(np.mean((oof - y) ** 2)):6.3f} "
                f"{pearsonr(oof[pdb], y[pdb])[0]:9.3f} {series_spearman(oof[fep], y[fep], series[fep]):14.3f} "
                f"{series_spearman(oof[pdb], y[pdb], groups[pdb], 5):11.3f} {time.perf_counter() - t0:5.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
