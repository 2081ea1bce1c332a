"""Seeded train / validation / test splits of a :class:`~variants.dataset.VariantSet`.

* ``random``: stratified by label; ``test_positive_fraction`` then drops binders from the test set
  until they make up that fraction (Mason et al. 2021 tested on 10 % binders, 90 % non-binders;
  the dropped binders are used nowhere).
* ``hamming``: a random test set, then every other variant closer than ``min_distance``
  substitutions to any test variant is left out, so each test variant is at least
  ``min_distance`` mutations from every training (and validation) variant.

The validation set is carved from what is left for training; models select epochs on it, never
on the test set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STRATEGIES = ("random", "hamming")


@dataclass
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    excluded: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {k: len(getattr(self, k)) for k in ("train", "val", "test", "excluded")}


def _codes(windows: list[str]) -> np.ndarray:
    return np.frombuffer("".join(windows).encode("ascii"), dtype=np.uint8).reshape(len(windows), -1)


def _within_one(windows: list[str], probe: list[str]) -> np.ndarray:
    """Whether each window equals a probe or differs from one at a single position (hashing, O(N·L))."""
    keys = set(probe)
    for w in probe:
        keys.update(w[:i] + "\0" + w[i + 1 :] for i in range(len(w)))
    return np.array(
        [w in keys or any(w[:i] + "\0" + w[i + 1 :] in keys for i in range(len(w))) for w in windows], dtype=bool
    )


def near_any(codes: np.ndarray, probe: np.ndarray, min_distance: int, chunk: int = 512) -> np.ndarray:
    """Whether each row of ``codes`` is within ``min_distance - 1`` substitutions of any row of ``probe``."""
    if min_distance == 2:
        return _within_one([r.tobytes().decode() for r in codes], [r.tobytes().decode() for r in probe])
    near = np.zeros(len(codes), dtype=bool)
    for start in range(0, len(probe), chunk):
        part = probe[start : start + chunk]
        dist = (codes[:, None, :] != part[None, :, :]).sum(axis=2, dtype=np.int16)
        near |= (dist < min_distance).any(axis=1)
    return near


def _stratified(idx: np.ndarray, labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A stratified random ``fraction`` of ``idx``."""
    picked = []
    for value in np.unique(labels[idx]):
        members = idx[labels[idx] == value]
        picked.append(rng.choice(members, size=round(len(members) * fraction), replace=False))
    return np.sort(np.concatenate(picked)) if picked else np.array([], dtype=np.int64)


def make_split(
    windows: list[str],
    labels: np.ndarray,
    *,
    strategy: str = "random",
    seed: int = 0,
    test_fraction: float = 0.15,
    val_fraction: float = 0.15,
    min_distance: int = 2,
    test_positive_fraction: float | None = None,
) -> Split:
    """Split variants (by their region letters) into train / val / test (see the module docstring)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"split.strategy must be one of {STRATEGIES}, got {strategy!r}")
    rng = np.random.default_rng(seed)
    n = len(windows)
    everyone = np.arange(n)
    test = _stratified(everyone, labels, test_fraction, rng)
    excluded = np.array([], dtype=np.int64)
    rest = np.setdiff1d(everyone, test)
    if strategy == "hamming":
        codes = _codes(windows)
        near = near_any(codes[rest], codes[test], min_distance)
        excluded = rest[near]
        rest = rest[~near]
    if test_positive_fraction is not None:
        pos, neg = test[labels[test] == 1], test[labels[test] == 0]
        keep = round(len(neg) * test_positive_fraction / (1.0 - test_positive_fraction))
        if keep < len(pos):
            dropped = rng.choice(pos, size=len(pos) - keep, replace=False)
            test = np.setdiff1d(test, dropped)
            excluded = np.union1d(excluded, dropped)
    val = _stratified(rest, labels, val_fraction / max(1e-9, 1.0 - test_fraction), rng)
    train = np.setdiff1d(rest, val)
    return Split(train, val, test, np.sort(excluded))
