"""compass-lite: descriptors + a tree ensemble + a within-series linear term; trains in minutes, predicts in ms on CPU.

This module holds the settings and the training. The fitted model and how it predicts live in
:mod:`compass.model.lite_predictor`; the ``.skops`` file format and its allow-listed loading live in
:mod:`compass.model.lite_format`, small enough to review as the one place a model file is trusted.
Their public names are re-exported here, so ``from compass.model.lite import load_lite`` keeps working.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from compass.data.graph import ComplexGraph, ComplexRecord, FeatureSettings
from compass.data.splits import sample_weights
from compass.model.descriptors import DescriptorSpec, describe_many
from compass.model.lite_format import FORMAT, TRUSTED_TYPES, UntrustedModelError, file_types, load_lite, save_lite
from compass.model.lite_predictor import KIND, LitePredictor, PackedForest, WithinSeries, serial
from compass.version import code_version

__all__ = [
    "ESTIMATORS",
    "FORMAT",
    "KIND",
    "TRUSTED_TYPES",
    "LiteConfig",
    "LitePredictor",
    "PackedForest",
    "UntrustedModelError",
    "WithinSeries",
    "file_types",
    "fit_descriptors",
    "load_lite",
    "sample_weights",
    "save_lite",
    "train_lite",
    "training_mask",
]

ESTIMATORS = ("hgb", "et", "rf")


@dataclass
class LiteConfig:
    """Estimator and hyper-parameters of compass-lite (defaults chosen by bench/compass_lite_select.py)."""

    estimator: str = "et"
    # Within-series term: a ridge on log descriptors fitted to within-series differences (fixed effects)
    within_weight: float = 0.5  # 0 disables it; the trees fit what the term leaves
    within_alpha: float = 300.0
    # HistGradientBoosting
    max_iter: int = 600
    learning_rate: float = 0.03
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 10
    l2_regularization: float = 1.0
    hgb_max_features: float = 0.3
    # ExtraTrees / RandomForest
    n_estimators: int = 300
    max_features: float = 0.33
    forest_min_samples_leaf: int = 3  # 300 trees x leaf 3: an 8 MB file, same CV figures as 500 x 2 (19 MB)
    # Data handling
    group_weighting: str = "inverse_sqrt"  # "none" | "inverse_sqrt": weight 1/sqrt(records of the same protein)
    drop_affinity_types: list[str] = field(default_factory=lambda: ["IC50"])  # record.extra["affinity_type"]
    # DescriptorSpec fields; the ligand chemistry block lifted train-side CV and fep-lpo (bench/compass_lite_select.py)
    descriptors: dict[str, Any] = field(default_factory=lambda: {"chemistry": True})
    seed: int = 0
    n_jobs: int = 1

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        if self.group_weighting not in ("none", "inverse_sqrt"):
            raise ValueError(f"group_weighting must be 'none' or 'inverse_sqrt', got {self.group_weighting!r}")
        if self.within_weight < 0 or self.within_alpha <= 0:
            raise ValueError("within_weight must be >= 0 and within_alpha > 0")
        DescriptorSpec.from_dict(self.descriptors)  # fail early on a bad spec

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LiteConfig:
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown compass-lite settings: {sorted(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def spec(self) -> DescriptorSpec:
        return DescriptorSpec.from_dict(self.descriptors)

    def build(self) -> Any:
        """A fresh, unfitted scikit-learn regressor."""
        from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor, RandomForestRegressor

        if self.estimator == "hgb":
            return HistGradientBoostingRegressor(
                max_iter=self.max_iter,
                learning_rate=self.learning_rate,
                max_leaf_nodes=self.max_leaf_nodes,
                min_samples_leaf=self.min_samples_leaf,
                l2_regularization=self.l2_regularization,
                max_features=self.hgb_max_features,
                early_stopping=False,
                random_state=self.seed,
            )
        forest = ExtraTreesRegressor if self.estimator == "et" else RandomForestRegressor
        return forest(
            n_estimators=self.n_estimators,
            max_features=self.max_features,
            min_samples_leaf=self.forest_min_samples_leaf,
            n_jobs=self.n_jobs,
            random_state=self.seed,
        )


def training_mask(records: list[ComplexRecord], labels: np.ndarray, cfg: LiteConfig) -> np.ndarray:
    """Records compass-lite trains on: labelled, and not of a dropped affinity type (IC50 by default)."""
    dropped = {str(t) for t in cfg.drop_affinity_types}
    types_ok = np.array([r.extra.get("affinity_type") not in dropped for r in records], dtype=bool)
    return np.isfinite(labels) & types_ok


def fit_descriptors(
    x: np.ndarray, y: np.ndarray, records: list[ComplexRecord], cfg: LiteConfig
) -> tuple[Any, WithinSeries | None]:
    """Fit the within-series term, then the tree ensemble on what it leaves (aligned x, y, records)."""
    within = WithinSeries.fit(x, y, [r.series or r.key for r in records], cfg.within_alpha, cfg.within_weight)
    estimator = cfg.build()
    residual = y - within(x) if within is not None else y
    estimator.fit(x, residual, sample_weight=sample_weights(records, cfg.group_weighting))
    serial(estimator)
    return estimator, within


def train_lite(
    graphs: list[ComplexGraph],
    records: list[ComplexRecord],
    config: dict[str, Any] | LiteConfig | None = None,
    seed: int | None = None,
    feature_settings: FeatureSettings | None = None,
    meta: dict[str, Any] | None = None,
) -> LitePredictor:
    """Fit compass-lite on aligned graphs/records; unlabelled records are skipped. ``seed`` overrides the config's."""
    cfg = config if isinstance(config, LiteConfig) else LiteConfig.from_dict(config)
    if seed is not None:
        cfg = LiteConfig.from_dict({**cfg.to_dict(), "seed": int(seed)})
    if len(graphs) != len(records):
        raise ValueError(f"graphs and records are not aligned ({len(graphs)} vs {len(records)})")
    labels = np.array([r.pK if r.pK is not None else g.y for g, r in zip(graphs, records, strict=True)], dtype=float)
    keep = training_mask(records, labels, cfg)
    if keep.sum() < 2:
        raise ValueError("compass-lite needs at least two labelled complexes")
    kept_records = [r for r, k in zip(records, keep, strict=True) if k]
    spec = cfg.spec
    x = describe_many([g for g, k in zip(graphs, keep, strict=True) if k], spec)
    estimator, within = fit_descriptors(x, labels[keep], kept_records, cfg)
    settings = feature_settings or FeatureSettings()
    info = {
        "kind": KIND,
        "config": cfg.to_dict(),
        "descriptors": spec.to_dict(),
        "n_descriptors": x.shape[1],
        "n_train": int(keep.sum()),
        "n_dropped": int((~keep).sum()),
        "within_series_term": within is not None,
        "feature_settings": settings.to_dict(),
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "code_version": code_version(),
    }
    return LitePredictor(estimator, spec, settings, {**info, **(meta or {})}, within)
