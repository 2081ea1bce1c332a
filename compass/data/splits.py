"""Splits that do not leak: grouped by protein, and never containing an excluded id.

Congeneric series share a protein, so a random split puts near-identical molecules on both sides
and flatters the model. Every split here keeps a group (``ComplexRecord.group``, the protein)
on one side. :func:`read_id_file` and :func:`exclude_ids` keep the CASF-2016 core out of
training and validation.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import numpy as np

from compass.data.graph import ComplexRecord


def _groups(records: list[ComplexRecord]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        groups[record.group or record.key].append(i)
    return dict(groups)


def sample_weights(records: list[ComplexRecord], mode: str) -> np.ndarray | None:
    """Per-record weights so a protein with 100 congeneric ligands does not outvote 100 proteins.

    ``"inverse_sqrt"``: 1/sqrt(records of the same protein), scaled to mean 1; ``"none"``: None.
    """
    if mode == "none":
        return None
    if mode != "inverse_sqrt":
        raise ValueError(f"group weighting must be 'none' or 'inverse_sqrt', got {mode!r}")
    groups = [r.group or r.key for r in records]
    counts: dict[str, int] = {}
    for g in groups:
        counts[g] = counts.get(g, 0) + 1
    w = np.array([1.0 / np.sqrt(counts[g]) for g in groups])
    return w * (len(w) / w.sum())


def group_kfold(records: list[ComplexRecord], n_folds: int = 5, seed: int = 0) -> list[list[int]]:
    """Record indices of ``n_folds`` folds; each group in exactly one fold, folds balanced by size.

    Groups are shuffled with ``seed`` then placed largest first into the smallest fold, so the
    assignment is reproducible and no fold is dominated by one big protein when avoidable.
    """
    groups = _groups(records)
    if len(groups) < n_folds:
        raise ValueError(f"{len(groups)} groups cannot fill {n_folds} folds")
    names = sorted(groups)
    random.Random(seed).shuffle(names)
    names.sort(key=lambda g: len(groups[g]), reverse=True)  # stable: ties keep the shuffled order
    folds: list[list[int]] = [[] for _ in range(n_folds)]
    for name in names:
        smallest = min(range(n_folds), key=lambda f: len(folds[f]))
        folds[smallest].extend(groups[name])
    return [sorted(f) for f in folds]


def holdout_groups(records: list[ComplexRecord], fraction: float = 0.1, seed: int = 0) -> tuple[list[int], list[int]]:
    """``(train, validation)`` indices with about ``fraction`` of the records in validation, by group."""
    if not 0.0 < fraction < 1.0:
        raise ValueError("fraction must be between 0 and 1")
    groups = _groups(records)
    if len(groups) < 2:
        raise ValueError("a grouped hold-out needs at least two groups")
    names = sorted(groups)
    random.Random(seed).shuffle(names)
    target = fraction * len(records)
    val: list[int] = []
    for name in names:
        if len(val) >= target:
            break
        if len(val) + len(groups[name]) > 2 * target and val:
            continue  # a huge group would overshoot: try the next one
        val.extend(groups[name])
    if len(val) == len(records):
        raise ValueError("validation would take every record")
    val_set = set(val)
    return [i for i in range(len(records)) if i not in val_set], sorted(val)


def read_id_file(path: str | Path) -> set[str]:
    """Ids of a one-per-line file (``#`` comments and blanks ignored), lower-cased."""
    ids = set()
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ids.add(line.lower())
    return ids


def record_id(record: ComplexRecord) -> str:
    """The PDB id of a record when it has one (per-complex and PDBbind layouts), else its key."""
    return record.key.rsplit("/", 1)[-1].lower()


def exclude_ids(records: list[ComplexRecord], ids: set[str]) -> tuple[list[int], list[int]]:
    """``(kept, excluded)`` indices: a record is excluded when its PDB id is in ``ids``."""
    kept, excluded = [], []
    for i, record in enumerate(records):
        (excluded if record_id(record) in ids else kept).append(i)
    return kept, excluded
