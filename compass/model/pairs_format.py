"""The descriptor models' file layout inside a ``.skops`` file (format ``compass-pairs/1``).

The same allow-listed loading as compass-lite (:func:`compass.model.lite_format.load_lite` reads the
file and hands a ``compass-pairs/1`` payload here): estimators, arrays and JSON text only, so a
model file can never run code. Every shape is checked before the predictor is built.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from compass.data.ligand_props import FP_BITS
from compass.model.descriptors import DescriptorSpec, descriptor_names
from compass.model.lite_predictor import WithinSeries
from compass.model.pairs import (
    PAIRS_FORMAT,
    Conformal,
    Domain,
    GeometryTerm,
    Member,
    PairFeatures,
    PairPredictor,
    domain_to_payload,
)

KINDS = ("compass", "compass-lite")  # what a descriptor model may be served as


class PairsFormatError(ValueError):
    """A ``compass-pairs/1`` payload that does not hold what the format says."""


def to_payload(predictor: PairPredictor, meta_json: str) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "format": PAIRS_FORMAT,
        "kind": predictor.kind,
        "meta_json": meta_json,
        "cutoffs": np.asarray(predictor.cutoffs, dtype=np.float64),
        "members": [
            {"name": m.name, "features_json": json.dumps(m.features.to_dict()), "estimator": m.estimator}
            for m in predictor.members
        ],
    }
    if predictor.conformal is not None:
        c = predictor.conformal
        payload["conformal"] = {"levels": c.levels, "halfwidths": c.halfwidths, "n": np.array([c.n])}
    if predictor.domain is not None:
        d = domain_to_payload(predictor.domain)
        payload["domain"] = {"fps": np.asarray(d.pop("fps"), dtype=np.uint8), "json": json.dumps(d)}
    if predictor.geometry is not None:
        g, w = predictor.geometry, predictor.geometry.within
        payload["geometry"] = {
            "spec_json": json.dumps(g.spec.to_dict()),
            "mean": w.mean,
            "scale": w.scale,
            "coef": w.coef,
            "weight_offset": np.array([w.weight, g.offset]),
        }
    return payload


def _geometry(block: dict[str, Any]) -> GeometryTerm:
    spec = DescriptorSpec.from_dict(json.loads(block["spec_json"]))
    width = len(descriptor_names(spec))
    arrays = [np.asarray(block[k], dtype=np.float64) for k in ("mean", "scale", "coef")]
    if any(a.shape != (width,) or not np.all(np.isfinite(a)) for a in arrays):
        raise PairsFormatError("malformed within-series term")
    weight, offset = (float(v) for v in np.asarray(block["weight_offset"], dtype=np.float64))
    return GeometryTerm(spec, WithinSeries(*arrays, weight), offset)


def from_payload(payload: dict[str, Any]) -> PairPredictor:
    """Rebuild a predictor, refusing anything malformed (PairsFormatError)."""
    try:
        kind = str(payload["kind"])
        if kind not in KINDS:
            raise PairsFormatError(f"kind {kind!r} is not one of {KINDS}")
        meta = json.loads(payload["meta_json"])
        cutoffs = tuple(float(c) for c in np.asarray(payload["cutoffs"], dtype=np.float64))
        members = []
        for m in payload["members"]:
            features = PairFeatures(**json.loads(m["features_json"]))
            est = m["estimator"]
            if getattr(est, "n_features_in_", None) != features.width():
                raise PairsFormatError(f"member {m['name']}: estimator expects {est.n_features_in_} features")
            members.append(Member(str(m["name"]), est, features))
        conformal = None
        if "conformal" in payload:
            c = payload["conformal"]
            levels, widths = np.asarray(c["levels"], dtype=np.float64), np.asarray(c["halfwidths"], dtype=np.float64)
            if levels.shape != widths.shape or not np.all(np.isfinite(widths)) or np.any(widths < 0):
                raise PairsFormatError("malformed conformal calibration")
            conformal = Conformal(levels, widths, int(np.asarray(c["n"])[0]))
        domain = None
        if "domain" in payload:
            fps = np.asarray(payload["domain"]["fps"], dtype=np.uint8)
            d = json.loads(payload["domain"]["json"])
            if fps.ndim != 2 or fps.shape[1] != FP_BITS // 8 or len(d["ligand_keys"]) != len(fps):
                raise PairsFormatError("malformed ligand index")
            domain = Domain(fps=fps, **d)
        geometry = _geometry(payload["geometry"]) if "geometry" in payload else None
        return PairPredictor(kind, members, cutoffs, conformal, domain, meta, geometry)
    except PairsFormatError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise PairsFormatError(f"malformed {PAIRS_FORMAT} payload: {exc}") from exc
