"""The data of a training run: load the plan's roots, filter, split by protein group, hash.

Kept apart from the loop so evaluation (cross-validation folds) can hand the trainer in-memory
graphs instead, and so the filtering rules (excluded ids, affinity types, unlabelled complexes)
live in one place and are logged with counts.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from compass.data.graph import ComplexGraph, ComplexRecord, FeatureSettings
from compass.train.plan import ExperimentPlan, PlanError

log = logging.getLogger("compass.train")


@dataclass
class TrainingData:
    """Train/validation graphs with their records, and what identifies them."""

    train_graphs: list[ComplexGraph]
    train_records: list[ComplexRecord]
    val_graphs: list[ComplexGraph]
    val_records: list[ComplexRecord]
    feature_settings: FeatureSettings
    data_hash: str = ""
    survival: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.data_hash:
            self.data_hash = data_hash(self.train_graphs, self.val_graphs, self.feature_settings)


def records_for(graphs: list[ComplexGraph]) -> list[ComplexRecord]:
    """Minimal records for bare graphs (each its own group): for callers that only have graphs."""
    return [ComplexRecord(key=g.key, protein_path="", ligand_paths=[], pK=g.y, group=g.key) for g in graphs]


def data_hash(train: list[ComplexGraph], val: list[ComplexGraph], settings: FeatureSettings) -> str:
    """sha256 over the settings and every graph's key, label, atom types and coordinates (16 hex)."""
    h = hashlib.sha256(settings.digest().encode())
    for tag, graphs in (("train", train), ("val", val)):
        h.update(f"|{tag}:{len(graphs)}|".encode())
        for g in graphs:
            h.update(f"{g.key}|{g.y!r}|".encode())
            h.update(g.atom_type.tobytes())  # int64 and float32: the same bytes as the tensors once held
            h.update(g.pos.tobytes())
    return h.hexdigest()[:16]


def load_graphs(plan: ExperimentPlan, progress: bool = True) -> tuple[list[ComplexGraph], list[ComplexRecord], list]:
    """Every featurised complex of the plan's roots (folders or ``.pt`` caches), aligned with records."""
    from compass.data import load_root

    graphs: list[ComplexGraph] = []
    records: list[ComplexRecord] = []
    survival = []
    cache_dir = plan.resolve_path(plan.data.cache_dir) if plan.data.cache_dir else None
    for root in plan.resolved_roots():
        loaded = load_root(root, settings=plan.data.feature, cache_dir=cache_dir, progress=progress)
        if loaded.settings.digest() != plan.data.feature.digest():
            raise PlanError(
                f"{root} was featurised with {loaded.settings.to_dict()}, the plan asks for "
                f"{plan.data.feature.to_dict()}: re-featurise it or change data.feature"
            )
        log.info("data root %s: %d complexes featurised", root, len(loaded.graphs))
        graphs.extend(loaded.graphs)
        records.extend(loaded.records)
        survival.append(loaded.survival.to_dict())
    keys = [r.key for r in records]
    if len(set(keys)) != len(keys):
        raise PlanError("two data roots share complex keys: give each root distinct keys")
    return graphs, records, survival


def filter_records(
    plan: ExperimentPlan, graphs: list[ComplexGraph], records: list[ComplexRecord]
) -> tuple[list[ComplexGraph], list[ComplexRecord]]:
    """Drop excluded ids, other affinity types and unlabelled complexes (each logged with a count)."""
    keep = list(range(len(records)))
    if plan.data.exclude_ids_file:
        from compass.data.splits import exclude_ids, read_id_file

        ids = read_id_file(plan.resolve_path(plan.data.exclude_ids_file))
        kept, excluded = exclude_ids(records, ids)
        log.info("excluded %d complexes listed in %s", len(excluded), plan.data.exclude_ids_file)
        keep = kept
    if plan.data.affinity_types is not None:
        wanted = set(plan.data.affinity_types)
        before = len(keep)
        keep = [i for i in keep if records[i].extra.get("affinity_type") in wanted]
        log.info("kept %d of %d complexes with affinity type in %s", len(keep), before, sorted(wanted))
    before = len(keep)
    keep = [i for i in keep if math.isfinite(graphs[i].y)]
    if len(keep) < before:
        log.info("dropped %d unlabelled complexes", before - len(keep))
    return [graphs[i] for i in keep], [records[i] for i in keep]


def split(
    plan: ExperimentPlan, graphs: list[ComplexGraph], records: list[ComplexRecord]
) -> tuple[list[int], list[int]]:
    """``(train, val)`` indices by the plan's split (protein groups never straddle it)."""
    if plan.split.kind == "none":
        return list(range(len(graphs))), []
    from compass.data.splits import holdout_groups

    return holdout_groups(records, fraction=plan.split.val_fraction, seed=plan.split.seed)


def prepare(
    plan: ExperimentPlan,
    graphs: list[ComplexGraph],
    records: list[ComplexRecord],
    settings: FeatureSettings,
    val_graphs: list[ComplexGraph] | None = None,
    val_records: list[ComplexRecord] | None = None,
    survival: list | None = None,
) -> TrainingData:
    """Filter, then split unless a validation set is given (cross-validation passes its own)."""
    graphs, records = filter_records(plan, graphs, records)
    if val_graphs is None:
        train_idx, val_idx = split(plan, graphs, records)
        val_graphs = [graphs[i] for i in val_idx]
        val_records = [records[i] for i in val_idx]
        graphs, records = [graphs[i] for i in train_idx], [records[i] for i in train_idx]
    elif val_records is None:
        val_records = records_for(val_graphs)
    val_keep = [i for i, g in enumerate(val_graphs) if math.isfinite(g.y)]
    val_graphs, val_records = [val_graphs[i] for i in val_keep], [val_records[i] for i in val_keep]
    if not graphs:
        raise PlanError("no labelled training complexes left after filtering")
    log.info("training on %d complexes, validating on %d", len(graphs), len(val_graphs))
    return TrainingData(graphs, records, val_graphs, val_records, settings, survival=survival or [])


def from_plan(plan: ExperimentPlan, progress: bool = True) -> TrainingData:
    graphs, records, survival = load_graphs(plan, progress=progress)
    return prepare(plan, graphs, records, plan.data.feature, survival=survival)
