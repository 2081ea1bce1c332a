"""The descriptor models: compass-lite and the COMPASS stack, trained on the 10,800-row pair table.

A :class:`PairPredictor` is an average of *members*, each a scikit-learn regressor on a feature
matrix built from element-pair counts in distance shells (and, for some members, RDKit ligand
properties, NaN where absent). compass-lite has one member; the COMPASS stack several.

Every prediction comes with how far to trust it (:meth:`PairPredictor.trust`):

The stack may add a *within-series term*: a ridge on the geometry descriptors of the earlier
compass-lite (:data:`compass.data.pairs_table.GEOMETRY_SPEC`, read off the served point cloud) fitted
to differences within FEP congeneric series only (fixed effects), so it moves analogues of one series
against each other without moving proteins; centred on the local training structures.

* a split-conformal interval: half-widths are quantiles of the absolute out-of-fold residuals of
  protein-grouped cross-validation on the training table (finite-sample corrected);
* an applicability-domain read-out: the nearest training ligand (Tanimoto on Morgan bits, index
  shipped in the model file), whether the protein was seen in training (by sequence against the
  local training structures, else by the DBREF UniProt entry, else ``unknown``), and how many
  training complexes that protein had.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from compass.data.contacts import N_PAIRS
from compass.data.graph import ComplexGraph, FeatureSettings
from compass.data.ligand_props import FEATURE_NAMES, tanimoto_max
from compass.data.similarity import shared_fraction, words
from compass.model.descriptors import DescriptorSpec, describe_many
from compass.model.lite_predictor import PackedForest, WithinSeries

PAIRS_FORMAT = "compass-pairs/1"
SEQUENCE_SEEN = 0.5  # share of 5-residue words: the same protein as a training structure
DEFAULT_LEVEL = 0.8


@dataclass(frozen=True)
class PairFeatures:
    """A member's inputs: counts in shells ``(0, s0], (s0, s1], …`` and optionally ligand properties."""

    shells: tuple[float, ...] = (4.0, 6.0, 8.0, 10.0)
    ligand_props: bool = False

    def __post_init__(self) -> None:
        edges = tuple(float(s) for s in self.shells)
        if not edges or any(b <= a for a, b in pairwise(edges)) or edges[0] <= 0:
            raise ValueError(f"shells must be increasing positive cutoffs, got {self.shells}")
        object.__setattr__(self, "shells", edges)

    def to_dict(self) -> dict[str, Any]:
        return {"shells": list(self.shells), "ligand_props": self.ligand_props}

    def width(self) -> int:
        return len(self.shells) * N_PAIRS + (len(FEATURE_NAMES) if self.ligand_props else 0)

    def matrix(self, counts: np.ndarray, cutoffs: tuple[float, ...], props: np.ndarray) -> np.ndarray:
        """Rows from ``counts`` [n, len(cutoffs), 36] (cumulative) and ``props`` [n, F]."""
        cols = [_position(cutoffs, s) for s in self.shells]
        cum = counts[:, cols, :].astype(np.float64)
        shells = np.concatenate([cum[:, :1], np.diff(cum, axis=1)], axis=1).reshape(len(counts), -1)
        return np.concatenate([shells, props], axis=1) if self.ligand_props else shells


def _position(cutoffs: tuple[float, ...], value: float) -> int:
    for i, c in enumerate(cutoffs):
        if abs(c - value) < 1e-6:
            return i
    raise ValueError(f"cutoff {value} was not computed (have {cutoffs})")


@dataclass
class Member:
    """One regressor of the average and the features it reads."""

    name: str
    estimator: Any
    features: PairFeatures

    def __post_init__(self) -> None:
        # Forests predict through PackedForest (all trees at once); it also bounds-checks a loaded file's trees.
        self._packed = PackedForest(self.estimator) if hasattr(self.estimator, "estimators_") else None

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self._packed is not None and not np.isnan(x).any():
            return self._packed.predict(x)
        return np.asarray(self.estimator.predict(x), dtype=np.float64)


@dataclass
class GeometryTerm:
    """The within-series term and the descriptors it reads (see the module docstring)."""

    spec: DescriptorSpec
    within: WithinSeries
    offset: float  # mean of the raw term over the local training structures

    def __call__(self, geometry: np.ndarray) -> np.ndarray:
        """Per row; 0 where the geometry is missing (table rows have no structure)."""
        ok = np.isfinite(geometry).all(axis=1)
        out = np.zeros(len(geometry))
        if ok.any():
            out[ok] = self.within(geometry[ok]) - self.offset
        return out


@dataclass
class Conformal:
    """Half-widths of symmetric intervals at each coverage level (split conformal on grouped OOF residuals)."""

    levels: np.ndarray
    halfwidths: np.ndarray
    n: int = 0

    @classmethod
    def fit(cls, residuals: np.ndarray, levels: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)) -> Conformal:
        r = np.sort(np.abs(residuals[np.isfinite(residuals)]))
        n = len(r)
        if n < 10:
            raise ValueError(f"conformal calibration needs at least 10 residuals, got {n}")
        ranks = [min(n - 1, int(np.ceil((n + 1) * a)) - 1) for a in levels]
        return cls(np.array(levels, dtype=np.float64), r[ranks].astype(np.float64), n)

    def interval(self, pk: float, level: float = DEFAULT_LEVEL) -> dict[str, float]:
        i = int(np.argmin(np.abs(self.levels - level)))
        h = float(self.halfwidths[i])
        return {"level": float(self.levels[i]), "low": round(pk - h, 3), "high": round(pk + h, 3)}


@dataclass
class Domain:
    """What the model was trained on, for the applicability-domain read-out (no structures, just indexes)."""

    fps: np.ndarray  # uint8 [n, bits/8]: Morgan bits of every training ligand RDKit could read
    ligand_keys: list[str]
    uniprot_counts: dict[str, int]  # training complexes per UniProt entry
    sequences: list[list[str]]  # chains of each local training protein
    sequence_counts: list[int]  # training complexes in that protein's group
    _words: list[frozenset[str]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._words = [words(tuple(chains)) for chains in self.sequences]

    def read(self, pairs: dict[str, Any]) -> dict[str, Any]:
        fp = pairs.get("fingerprint")
        similarity, nearest_id = None, None
        if fp is not None and len(self.fps):
            sim, row = tanimoto_max(np.asarray(fp, dtype=np.uint8), self.fps)
            similarity, nearest_id = round(sim, 3), self.ligand_keys[row]
        seen, count, how = self._protein(pairs)
        return {  # DESIGN.md "COMPASS answers": the four contract keys, then how each was read
            "nearest_ligand_similarity": similarity,
            "nearest_ligand_id": nearest_id,
            "protein_seen": seen,
            "training_complexes_for_protein": count,
            "ligand_note": None if nearest_id else "no RDKit molecule (PDBQT or unsanitisable ligand): no similarity",
            "protein_seen_by": how,
        }

    def _protein(self, pairs: dict[str, Any]) -> tuple[str, int | None, str | None]:
        query = words(tuple(pairs.get("sequence") or ()))
        best, best_i = 0.0, -1
        for i, w in enumerate(self._words):
            f = shared_fraction(query, w)
            if f > best:
                best, best_i = f, i
        if best >= SEQUENCE_SEEN:
            return "yes", self.sequence_counts[best_i], f"sequence ({best:.0%} of 5-residue words shared)"
        entries = [u for u in pairs.get("uniprot") or [] if u]
        known = [u for u in entries if u in self.uniprot_counts]
        if known:
            return "yes", sum(self.uniprot_counts[u] for u in known), f"UniProt {', '.join(known)} (DBREF)"
        if entries:
            return "no", 0, f"UniProt {', '.join(entries)} (DBREF) has no training complex"
        return "unknown", None, None


class PairPredictor:
    """A fitted descriptor model; implements the Predictor protocol of compass.model.checkpoint."""

    def __init__(
        self,
        kind: str,
        members: list[Member],
        cutoffs: tuple[float, ...],
        conformal: Conformal | None,
        domain: Domain | None,
        meta: dict[str, Any],
        geometry: GeometryTerm | None = None,
    ) -> None:
        self.kind = kind
        self.members = members
        self.cutoffs = tuple(float(c) for c in cutoffs)
        self.conformal = conformal
        self.domain = domain
        self.meta = meta
        self.geometry = geometry
        # Default crop: the geometry term reads the point cloud exactly as its training structures were read.
        self.feature_settings = FeatureSettings(pair_cutoffs=self.cutoffs)

    def predict_arrays(self, counts: np.ndarray, props: np.ndarray, geometry: np.ndarray | None = None) -> np.ndarray:
        """pK from counts [n, len(cutoffs), 36], ligand properties [n, F] and, for the stack's within-series
        term, geometry descriptors [n, G] (the training and bench path)."""
        pred = np.mean([m.predict(m.features.matrix(counts, self.cutoffs, props)) for m in self.members], axis=0)
        if self.geometry is not None and geometry is not None:
            pred = pred + self.geometry(geometry)
        return pred

    def predict(self, graphs: list[ComplexGraph], batch_size: int = 32) -> np.ndarray:
        """pK per graph; each graph needs ``pairs`` (featurised with this model's feature settings)."""
        if not graphs:
            return np.zeros(0)
        missing = [g.key for g in graphs if g.pairs is None]
        if missing:
            raise ValueError(f"graphs without pair features (featurise with the model's settings): {missing[:3]}")
        counts = np.stack([np.asarray(g.pairs["counts"]) for g in graphs])
        props = np.stack([np.asarray(g.pairs["props"], dtype=np.float64) for g in graphs])
        geometry = describe_many(graphs, self.geometry.spec) if self.geometry is not None else None
        return self.predict_arrays(counts, props, geometry)

    def trust(self, graph: ComplexGraph, pk: float, level: float = DEFAULT_LEVEL) -> dict[str, Any]:
        """Interval and applicability domain of one prediction (what ``/predict`` and the pages show)."""
        out: dict[str, Any] = {}
        if self.conformal is not None:
            out["interval"] = self.conformal.interval(pk, level)
            out["interval"]["method"] = "split conformal, protein-grouped CV residuals"
        if self.domain is not None and graph.pairs is not None:
            out["domain"] = self.domain.read(graph.pairs)
        return out

    def config(self) -> dict[str, Any]:
        return {"members": [{"name": m.name, **m.features.to_dict()} for m in self.members], "cutoffs": self.cutoffs}


def domain_to_payload(domain: Domain) -> dict[str, Any]:
    d = asdict(domain)
    d.pop("_words")
    return d
