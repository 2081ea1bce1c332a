"""Train a descriptor model (compass-lite or the COMPASS stack) on the pair table, on a CPU in minutes.

    python -m compass.train.pairs --plan compass/weights/plans/pairs-lite.json \
        --out compass/weights/compass-lite.skops
    python -m compass.train.pairs --plan compass/weights/plans/pairs-stack.json \
        --out compass/weights/compass-stack.skops
    python -m compass.train.pairs --plan ... --out /tmp/m.skops --quick      # a small configuration for tests

Steps: protein-grouped K-fold out-of-fold predictions on the training table (never a CASF-2016 id:
the table has none and the loader drops them elsewhere) calibrate the conformal intervals; then each
member is fitted on every row; the ligand fingerprint and protein indexes for the domain read-out
are taken from the same rows. Nothing here looks at CASF-2016 or at the fep-lpo folds.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import numpy as np
from tqdm import tqdm

from compass.data.pairs_table import CUTOFFS, GEOMETRY_SPEC, PairSet, load_set
from compass.data.splits import group_kfold, sample_weights
from compass.model.lite_predictor import WithinSeries
from compass.model.pairs import Conformal, Domain, GeometryTerm, Member, PairFeatures, PairPredictor
from compass.model.pairs_format import KINDS
from compass.version import code_version
from services.common.cli import command, parse

ESTIMATORS = ("rf", "et", "hgb")


@dataclass
class MemberPlan:
    """One member: estimator kind, its scikit-learn parameters, and its features."""

    name: str
    estimator: str = "rf"
    params: dict[str, Any] = field(default_factory=dict)
    shells: tuple[float, ...] = (4.0, 6.0, 8.0, 10.0)
    ligand_props: bool = False

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"member {self.name}: estimator must be one of {ESTIMATORS}")
        bad = [s for s in self.shells if not any(abs(s - c) < 1e-6 for c in CUTOFFS)]
        if bad:
            raise ValueError(f"member {self.name}: shells {bad} are not table cutoffs {CUTOFFS}")

    @property
    def features(self) -> PairFeatures:
        return PairFeatures(tuple(self.shells), self.ligand_props)

    def build(self, seed: int, n_jobs: int) -> Any:
        from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor, RandomForestRegressor

        if self.estimator == "hgb":
            return HistGradientBoostingRegressor(**{"early_stopping": False, **self.params}, random_state=seed)
        forest = RandomForestRegressor if self.estimator == "rf" else ExtraTreesRegressor
        return forest(**self.params, n_jobs=n_jobs, random_state=seed)


@dataclass
class PairPlan:
    """A whole training plan (the JSON files in ``compass/weights/plans/pairs-*.json``)."""

    kind: str
    members: list[MemberPlan]
    folds: int = 5
    seed: int = 0
    group_weighting: str = "none"
    levels: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)
    # Within-series term on geometry descriptors, fitted on FEP series: {"alpha": ..., "weight": ...} or None.
    within: dict[str, float] | None = None
    quick: dict[str, Any] = field(default_factory=lambda: {"rows": 1500, "trees": 20, "max_iter": 50})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PairPlan:
        data = dict(data)
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown plan keys: {sorted(unknown)}")
        if data.get("kind") not in KINDS:
            raise ValueError(f"plan kind must be one of {KINDS}")
        members = [MemberPlan(**m) for m in data.pop("members")]
        if not members:
            raise ValueError("a plan needs at least one member")
        return cls(members=members, **data)

    def quickened(self) -> PairPlan:
        """The same plan with small estimators (tests; CI)."""
        q = self.quick
        small = []
        for m in self.members:
            key, value = ("max_iter", q["max_iter"]) if m.estimator == "hgb" else ("n_estimators", q["trees"])
            small.append(MemberPlan(m.name, m.estimator, {**m.params, key: value}, m.shells, m.ligand_props))
        return self.with_members(small)

    def with_members(self, members: list[MemberPlan], seed: int | None = None) -> PairPlan:
        return PairPlan(
            self.kind,
            members,
            self.folds,
            self.seed if seed is None else seed,
            self.group_weighting,
            self.levels,
            self.within,
            self.quick,
        )


def cutoffs_of(plan: PairPlan) -> tuple[float, ...]:
    return tuple(sorted({float(s) for m in plan.members for s in m.shells}))


def member_matrices(plan: PairPlan, data: PairSet) -> list[np.ndarray]:
    """Each member's feature matrix over every row (built once, sliced per fold)."""
    return [m.features.matrix(data.counts, CUTOFFS, data.props) for m in plan.members]


@dataclass
class Fitted:
    """Members (and the geometry term) fitted on some rows; predicts any rows of the same set."""

    plan: PairPlan
    estimators: list[Any]
    geometry: GeometryTerm | None

    def predict(self, data: PairSet, rows: np.ndarray, xs: list[np.ndarray]) -> np.ndarray:
        pred = np.mean([est.predict(x[rows]) for est, x in zip(self.estimators, xs, strict=True)], axis=0)
        return pred + self.geometry(data.geometry[rows]) if self.geometry is not None else pred


def fit_rows(plan: PairPlan, data: PairSet, rows: np.ndarray, xs: list[np.ndarray], n_jobs: int = 1) -> Fitted:
    """Fit every member (and the within-series term, on the FEP series among ``rows``)."""
    y = data.pK[rows]
    weights = sample_weights([data.records[i] for i in rows], plan.group_weighting)
    estimators = []
    for member, x in zip(plan.members, xs, strict=True):
        est = member.build(plan.seed, n_jobs)
        est.fit(x[rows], y, sample_weight=weights)
        if "n_jobs" in est.get_params():
            est.set_params(n_jobs=1)  # serving predicts on one thread, bit-reproducibly
        estimators.append(est)
    return Fitted(plan, estimators, _geometry_term(plan, data, rows))


def _geometry_term(plan: PairPlan, data: PairSet, rows: np.ndarray) -> GeometryTerm | None:
    if not plan.within:
        return None
    local = rows[np.isfinite(data.geometry[rows]).all(axis=1)]
    series = [data.records[i].series for i in local]
    in_series = local[np.array([bool(s) for s in series], dtype=bool)] if len(local) else local
    within = WithinSeries.fit(
        data.geometry[in_series],
        data.pK[in_series],
        [data.records[i].series for i in in_series],
        float(plan.within["alpha"]),
        float(plan.within["weight"]),
    )
    if within is None:
        return None
    return GeometryTerm(GEOMETRY_SPEC, within, float(np.mean(within(data.geometry[local]))))


def out_of_fold(plan: PairPlan, data: PairSet, n_jobs: int = 1, progress: bool = True) -> np.ndarray:
    """Protein-grouped K-fold predictions of the model (members' average + geometry term) for every row."""
    xs = member_matrices(plan, data)
    folds = group_kfold(data.records, plan.folds, seed=plan.seed)
    oof = np.full(len(data), np.nan)
    for held in tqdm(folds, desc="grouped CV folds", unit="fold", disable=not progress):
        held = np.asarray(held)
        train = np.setdiff1d(np.arange(len(data)), held)
        oof[held] = fit_rows(plan, data, train, xs, n_jobs).predict(data, held, xs)
    return oof


def build_domain(data: PairSet) -> Domain:
    """Indexes of what the model saw: ligand fingerprints, UniProt entries, local protein sequences."""
    from compass.data.similarity import protein_sequence

    uniprot: dict[str, int] = {}
    group_size: dict[str, int] = {}
    for rec in data.records:
        group_size[rec.group] = group_size.get(rec.group, 0) + 1
        for u in rec.extra.get("uniprot") or []:
            uniprot[u] = uniprot.get(u, 0) + 1
    sequences: dict[str, tuple[list[str], int]] = {}
    for rec in data.records:
        if rec.protein_path and rec.protein_path not in sequences:
            sequences[rec.protein_path] = (list(protein_sequence(rec.protein_path)), group_size[rec.group])
    keys = [r.key for r, has in zip(data.records, data.has_fp, strict=True) if has]
    return Domain(
        fps=data.fps[data.has_fp],
        ligand_keys=keys,
        uniprot_counts=uniprot,
        sequences=[s for s, _ in sequences.values()],
        sequence_counts=[n for _, n in sequences.values()],
    )


def train_pairs(
    plan: PairPlan, data: PairSet, n_jobs: int = 1, progress: bool = True, oof: np.ndarray | None = None
) -> PairPredictor:
    """Calibrate on grouped out-of-fold residuals (``oof`` when already computed), then fit on all rows."""
    t0 = time.perf_counter()
    if oof is None:
        oof = out_of_fold(plan, data, n_jobs, progress)
    conformal = Conformal.fit(data.pK - oof, plan.levels)
    t1 = time.perf_counter()
    fitted = fit_rows(plan, data, np.arange(len(data)), member_matrices(plan, data), n_jobs)
    members = [Member(m.name, est, m.features) for m, est in zip(plan.members, fitted.estimators, strict=True)]
    from scipy.stats import pearsonr

    meta = {
        "kind": plan.kind,
        "plan": _plan_dict(plan),
        "n_train": len(data),
        "sources": {s: int((data.sources == s).sum()) for s in np.unique(data.sources)},
        "grouped_cv": {
            "folds": plan.folds,
            "pearson_r": float(pearsonr(oof, data.pK)[0]),
            "rmse": float(np.sqrt(np.mean((oof - data.pK) ** 2))),
        },
        "train_seconds": {"cv": round(t1 - t0, 1), "final": round(time.perf_counter() - t1, 1)},
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "code_version": code_version(),
    }
    return PairPredictor(plan.kind, members, cutoffs_of(plan), conformal, build_domain(data), meta, fitted.geometry)


def _plan_dict(plan: PairPlan) -> dict[str, Any]:
    return {
        "kind": plan.kind,
        "members": [
            {
                "name": m.name,
                "estimator": m.estimator,
                "params": m.params,
                "shells": list(m.shells),
                "ligand_props": m.ligand_props,
            }
            for m in plan.members
        ],
        "folds": plan.folds,
        "seed": plan.seed,
        "group_weighting": plan.group_weighting,
        "levels": list(plan.levels),
        "within": plan.within,
    }


def quick_rows(data: PairSet, rows: int, seed: int) -> PairSet:
    """A reproducible subsample that keeps every source (FEP series stay whole enough to group)."""
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(len(data), size=min(rows, len(data)), replace=False))
    return data.subset(take)


def main(argv: list[str] | None = None) -> int:
    path = click.Path(path_type=Path)
    params = [
        click.Option(["--plan"], required=True, type=path, help="pairs plan JSON (compass/weights/plans/pairs-*.json)"),
        click.Option(["--out"], required=True, type=path, help="where to write the .skops model"),
        click.Option(["--seed"], type=click.IntRange(min=0), help="overrides the plan's seed"),
        click.Option(["--quick"], is_flag=True, help="small estimators on a row subsample (tests)"),
        click.Option(["--data-dir"], type=path, help="the shared data folder (default COMPASS_DATA_DIR)"),
        click.Option(
            ["--jobs"], type=click.IntRange(min=1), default=1, show_default=True, help="threads for forest fitting"
        ),
    ]
    cmd = command("python -m compass.train.pairs", params, __doc__.split("\n\n")[0])
    args = SimpleNamespace(**parse(cmd, argv).params)
    from compass.model.lite_format import save_pairs

    try:
        plan = PairPlan.from_dict(json.loads(args.plan.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        print(f"error: bad plan {args.plan}: {exc}", file=sys.stderr)
        return 2
    if args.seed is not None:
        plan.seed = args.seed
    data = load_set("train", args.data_dir)
    if args.quick:
        plan, data = plan.quickened(), quick_rows(data, plan.quick["rows"], plan.seed)
    t0 = time.perf_counter()
    predictor = train_pairs(plan, data, n_jobs=args.jobs)
    save_pairs(predictor, args.out)
    cv = predictor.meta["grouped_cv"]
    print(
        f"{plan.kind}: {len(data)} rows, grouped CV R {cv['pearson_r']:.3f} RMSE {cv['rmse']:.3f}, "
        f"80% interval ±{predictor.conformal.interval(0.0)['high']:.2f}, "
        f"trained in {time.perf_counter() - t0:.0f} s → {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
