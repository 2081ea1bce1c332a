"""In-silico libraries of a region, for ``/design`` to rank with the active model.

* ``singles-doubles``: every single and double substitution of the region (over the vocabulary);
* ``binder-frequency``: ``library_size`` variants sampled position by position from the letter
  frequencies of the measured binders (label 1) in the worker's store, as Mason et al. sampled
  their in-silico library from the enriched binders' frequencies.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

STRATEGIES = ("singles-doubles", "binder-frequency")


def singles_doubles(template: str, region: tuple[int, int], letters: str, limit: int) -> list[str]:
    """Every single and double mutant of ``region`` (1-based, inclusive); refused past ``limit``."""
    positions = range(region[0] - 1, region[1])
    alts = {p: [c for c in letters if c != template[p]] for p in positions}
    size = sum(len(a) for a in alts.values()) + sum(len(alts[p]) * len(alts[q]) for p, q in combinations(positions, 2))
    if size > limit:
        raise ValueError(f"the region has {size} single and double mutants; the limit is {limit}")
    out = []
    for p in positions:
        for c in alts[p]:
            out.append(template[:p] + c + template[p + 1 :])
    for p, q in combinations(positions, 2):
        for a in alts[p]:
            for b in alts[q]:
                s = list(template)
                s[p], s[q] = a, b
                out.append("".join(s))
    return out


def binder_frequency(
    template: str, region: tuple[int, int], binders: list[str], size: int, seed: int, letters: str
) -> list[str]:
    """``size`` distinct variants sampled from per-position letter frequencies of ``binders`` (full sequences)."""
    if not binders:
        raise ValueError("the store has no binders (label 1) for this template to take frequencies from")
    a, b = region
    windows = np.array([list(s[a - 1 : b]) for s in binders])
    rng = np.random.default_rng(seed)
    columns = []
    for j in range(windows.shape[1]):
        counts = np.array([(windows[:, j] == c).sum() for c in letters], dtype=float)
        columns.append(rng.choice(list(letters), size=size * 2, p=counts / counts.sum()))
    seen: dict[str, None] = {}
    for row in zip(*columns, strict=True):
        seen.setdefault(template[: a - 1] + "".join(row) + template[b:], None)
        if len(seen) >= size:
            break
    return list(seen)
