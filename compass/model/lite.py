"""compass-lite: descriptors + a tree ensemble + a within-series linear term; trains in minutes, predicts in ms on CPU.

It is the fallback the router uses when no ``compass`` (GNN) instance is up, so it must load on
any machine: files are written with ``skops.io`` and loaded only after every type in the file has
been checked against an explicit allow-list — a model file from an upload can never run code.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio

from compass.data.graph import ComplexGraph, ComplexRecord, FeatureSettings
from compass.model.descriptors import DescriptorSpec, describe_many, descriptor_names
from compass.version import code_version

KIND = "compass-lite"
FORMAT = "compass-lite/1"
ESTIMATORS = ("hgb", "et", "rf")

# Every type a compass-lite file may contain. Anything else (a function, a custom class, another
# estimator) is refused before skops builds a single object.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.str",
        "builtins.int",
        "builtins.float",
        "builtins.bool",
        "builtins.NoneType",
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.float64",
        "numpy.int64",
        "numpy.uint64",
        "numpy.random._generator.Generator",
        "numpy.random._pcg64.PCG64",
        "sklearn._loss._loss.CyHalfSquaredError",
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.Interval",
        "sklearn._loss.loss.HalfSquaredError",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._forest.ExtraTreesRegressor",
        "sklearn.ensemble._forest.RandomForestRegressor",
        "sklearn.tree._classes.DecisionTreeRegressor",
        "sklearn.tree._classes.ExtraTreeRegressor",
        "sklearn.tree._tree.Tree",
    }
)


class UntrustedModelError(ValueError):
    """A model file holds a type outside :data:`TRUSTED_TYPES` (or is not a compass-lite file)."""


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
    descriptors: dict[str, Any] = field(default_factory=dict)  # DescriptorSpec fields
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


def sample_weights(records: list[ComplexRecord], mode: str) -> np.ndarray | None:
    """Per-record weights so a protein with 100 congeneric ligands does not outvote 100 proteins."""
    if mode == "none":
        return None
    groups = [r.group or r.key for r in records]
    counts: dict[str, int] = {}
    for g in groups:
        counts[g] = counts.get(g, 0) + 1
    w = np.array([1.0 / np.sqrt(counts[g]) for g in groups])
    return w * (len(w) / w.sum())


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
    _serial(estimator)
    return estimator, within


def _serial(estimator: Any) -> Any:
    """Predict on one thread: forests sum trees in thread-arrival order, so n_jobs > 1 is not bit-reproducible."""
    if "n_jobs" in estimator.get_params():
        estimator.set_params(n_jobs=1)
    return estimator


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


def save_lite(predictor: LitePredictor, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write a ``.skops`` file holding the estimator and, as JSON text, meta/descriptor spec/feature settings.

    ``meta`` (plan, data hash, metrics, ...) is merged over the predictor's own meta and must be JSON-serialisable.
    """
    path = Path(path)
    full_meta = {**predictor.meta, **(meta or {}), "kind": KIND}
    full_meta.setdefault("created", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    full_meta.setdefault("code_version", code_version())
    payload = {
        "format": FORMAT,
        "meta_json": json.dumps(full_meta, sort_keys=True, default=_json_default),
        "descriptors_json": json.dumps(predictor.spec.to_dict(), sort_keys=True),
        "feature_settings_json": json.dumps(predictor.feature_settings.to_dict(), sort_keys=True),
        "estimator": predictor.estimator,
    }
    if predictor.within is not None:
        w = predictor.within
        payload["within"] = {"mean": w.mean, "scale": w.scale, "coef": w.coef, "weight": np.array([w.weight])}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    sio.dump(payload, tmp, compression=zipfile.ZIP_DEFLATED, compresslevel=6)
    tmp.replace(path)
    predictor.meta = full_meta
    return path


def file_types(path: str | Path) -> set[str]:
    """Every ``module.Class`` named in a skops file's schema (read as JSON; nothing is instantiated)."""
    try:
        with zipfile.ZipFile(path) as zf:
            schema = json.loads(zf.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise UntrustedModelError(f"{path}: not a skops file ({exc})") from exc
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("__class__"), str) and isinstance(node.get("__module__"), str):
                found.add(f"{node['__module__']}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def load_lite(path: str | Path) -> LitePredictor:
    """Load a compass-lite file, refusing it (UntrustedModelError) if any type is outside TRUSTED_TYPES."""
    path = Path(path)
    untrusted = sorted(file_types(path) - TRUSTED_TYPES)
    if untrusted:
        raise UntrustedModelError(f"{path}: refusing to load untrusted types {untrusted}")
    # Belt and braces: skops itself must also accept exactly this list.
    payload = sio.load(path, trusted=sorted(TRUSTED_TYPES))
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UntrustedModelError(f"{path}: not a {FORMAT} file")
    meta = json.loads(payload["meta_json"])
    spec = DescriptorSpec.from_dict(json.loads(payload["descriptors_json"]))
    settings = FeatureSettings.from_dict(json.loads(payload["feature_settings_json"]))
    estimator = _serial(payload["estimator"])
    expected = len(descriptor_names(spec))
    n_in = getattr(estimator, "n_features_in_", expected)
    if n_in != expected:
        raise UntrustedModelError(f"{path}: estimator expects {n_in} descriptors, spec gives {expected}")
    within = None
    if "within" in payload:
        w = payload["within"]
        if not all(isinstance(w.get(k), np.ndarray) and w[k].shape == (expected,) for k in ("mean", "scale", "coef")):
            raise UntrustedModelError(f"{path}: malformed within-series term")
        within = WithinSeries(w["mean"], w["scale"], w["coef"], float(w["weight"][0]))
    try:
        return LitePredictor(estimator, spec, settings, meta, within)
    except ValueError as exc:
        raise UntrustedModelError(f"{path}: {exc}") from exc


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"meta value of type {type(obj).__name__} is not JSON-serialisable")
