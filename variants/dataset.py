"""From store rows to a labelled set of distinct variants: one label per sequence, conflicts resolved.

The same protein can be measured several times (different codons, different sorts) and, in the
DMS, sorted both ways. Rows are grouped by full variant sequence; a sequence labelled both ways
is dropped (``conflicts: "drop"``) or given the label with more reads (``"reads"``; a tie is
dropped). Grouping happens before any split, so one sequence can never sit in train and test.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CONFLICT_POLICIES = ("drop", "reads")


@dataclass
class VariantSet:
    """Distinct variants of one template: full sequences, the region models read, labels, reads."""

    template: str
    template_id: str
    region: tuple[int, int]  # 1-based, inclusive
    sequences: list[str]
    labels: np.ndarray
    reads: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def windows(self) -> list[str]:
        """The region's letters of each variant (what the CNN reads)."""
        a, b = self.region
        return [s[a - 1 : b] for s in self.sequences]

    def subset(self, idx: np.ndarray) -> VariantSet:
        return VariantSet(
            self.template,
            self.template_id,
            self.region,
            [self.sequences[i] for i in idx],
            self.labels[idx],
            self.reads[idx],
            {},
        )


def variable_region(template: str, sequences: list[str]) -> tuple[int, int]:
    """The 1-based span of template positions that any variant changes (the whole template if none)."""
    changed = [
        i
        for s in sequences
        if len(s) == len(template)
        for i, (a, b) in enumerate(zip(s, template, strict=False))
        if a != b
    ]
    if not changed:
        return 1, len(template)
    return min(changed) + 1, max(changed) + 1


def build_variant_set(
    rows: list[dict[str, Any]],
    *,
    conflicts: str = "drop",
    threshold: float | None = None,
    region: tuple[int, int] | None = None,
) -> VariantSet:
    """Group store rows by sequence; binary labels (``label >= threshold`` when given)."""
    if conflicts not in CONFLICT_POLICIES:
        raise ValueError(f"conflicts must be one of {CONFLICT_POLICIES}, got {conflicts!r}")
    if not rows:
        raise ValueError("the plan's data selects no rows")
    templates = {r["template_id"] for r in rows}
    if len(templates) > 1:
        raise ValueError(
            f"the rows span {len(templates)} templates ({', '.join(sorted(templates))[:200]}): "
            'add a ["template_id", "=", ...] filter'
        )
    template = rows[0]["template"]
    votes: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        if r["label"] is None:
            continue
        value = float(r["label"])
        label = int(value >= threshold) if threshold is not None else int(value)
        if threshold is None and value not in (0.0, 1.0):
            raise ValueError(f"label {value} of {r['mutant']!r} is not 0/1: set data.threshold to binarise it")
        votes[r["sequence"]][label] += int(r["reads"] or 1)
    seqs, labels, reads = [], [], []
    n_conflict = n_resolved = 0
    for seq, by_label in votes.items():
        if len(by_label) > 1:
            n_conflict += 1
            if conflicts == "drop" or by_label[0] == by_label[1]:
                continue
            n_resolved += 1
        label = max(by_label, key=lambda k: by_label[k])
        seqs.append(seq)
        labels.append(label)
        reads.append(sum(by_label.values()))
    span = region or variable_region(template, seqs)
    lengths = {len(s) for s in seqs}
    if lengths != {len(template)}:
        raise ValueError("variants of different lengths than their template are not supported by the built-in models")
    stats = {
        "rows": len(rows),
        "distinct_sequences": len(votes),
        "conflicting_sequences": n_conflict,
        "conflicts_policy": conflicts,
        "conflicts_resolved_by_reads": n_resolved,
        "kept": len(seqs),
        "positives": int(sum(labels)),
    }
    return VariantSet(
        template,
        rows[0]["template_id"],
        span,
        seqs,
        np.array(labels, dtype=np.int64),
        np.array(reads, dtype=np.int64),
        stats,
    )
