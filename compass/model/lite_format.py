"""The compass-lite file format (``.skops``): what a file holds, and loading it without running code.

compass-lite is the fallback the router uses when no ``compass`` (GNN) instance is up, so its files
must load on any machine — and a file may come from elsewhere. Files are written with ``skops.io``
(no pickle) and loaded only after every type in the file has been checked against an explicit
allow-list, so a model file can never run code. Kept apart from training (:mod:`compass.model.lite`)
so this safety boundary is small enough to review on its own; callers may keep importing these names
from :mod:`compass.model.lite`.
"""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from compass.data.graph import FeatureSettings
from compass.model.descriptors import DescriptorSpec, descriptor_names
from compass.model.lite_predictor import KIND, LitePredictor, WithinSeries, serial
from compass.model.pairs import PAIRS_FORMAT, PairPredictor
from compass.model.pairs_format import PairsFormatError, from_payload, to_payload
from compass.model.skops_import import skops_io
from compass.version import code_version
from services.common.files import atomic_path

sio = skops_io()
FORMAT = "compass-lite/1"

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
    _dump(payload, path)
    predictor.meta = full_meta
    return path


def save_pairs(predictor: PairPredictor, path: str | Path) -> Path:
    """Write a descriptor model (compass-lite or the stack) as a ``compass-pairs/1`` skops file."""
    path = Path(path)
    meta = {**predictor.meta, "kind": predictor.kind, "format": PAIRS_FORMAT}
    payload = to_payload(predictor, json.dumps(meta, sort_keys=True, default=_json_default))
    _dump(payload, path)
    predictor.meta = meta
    return path


def _dump(payload: dict[str, Any], path: Path) -> None:
    """Write a skops payload atomically (a reader never sees half a model)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        sio.dump(payload, tmp, compression=zipfile.ZIP_DEFLATED, compresslevel=6)


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


def load_lite(path: str | Path) -> LitePredictor | PairPredictor:
    """Load a compass-lite file, refusing it (UntrustedModelError) if any type is outside TRUSTED_TYPES."""
    path = Path(path)
    untrusted = sorted(file_types(path) - TRUSTED_TYPES)
    if untrusted:
        raise UntrustedModelError(f"{path}: refusing to load untrusted types {untrusted}")
    # Belt and braces: skops itself must also accept exactly this list.
    payload = sio.load(path, trusted=sorted(TRUSTED_TYPES))
    if isinstance(payload, dict) and payload.get("format") == PAIRS_FORMAT:
        try:
            return from_payload(payload)
        except PairsFormatError as exc:
            raise UntrustedModelError(f"{path}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UntrustedModelError(f"{path}: not a {FORMAT} file")
    meta = json.loads(payload["meta_json"])
    spec = DescriptorSpec.from_dict(json.loads(payload["descriptors_json"]))
    settings = FeatureSettings.from_dict(json.loads(payload["feature_settings_json"]))
    estimator = serial(payload["estimator"])
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
        # LitePredictor packs the forest and checks its node and feature indices (ValueError on a forged tree).
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
