"""A structured filter (:mod:`vectors.filters`) evaluated on rows in memory, with Milvus Lite's semantics.

The in-process index (:mod:`vectors.front`) answers filtered searches itself, so the same
conditions that :func:`vectors.filters.build_filter` turns into a Milvus expression are
evaluated here on each row's ``id`` and ``metadata``. Semantics follow Milvus Lite's evaluator
(three-valued logic collapsed to false at the top): a missing key or a JSON null makes a
condition false (``!=`` and ``not_in`` included); comparisons are Python's, so 1 == 1.0, and a
comparison between types that cannot be ordered ("a" < 1) is false. A unit test checks every op
against a real Lite file on mixed-type metadata.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from vectors.filters import build_filter

_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _holds(value: Any, op: str, target: Any) -> bool:
    if value is None:
        return False
    try:
        if op == "in":
            return any(value == t for t in target)
        if op == "not_in":
            return all(value != t for t in target)
        return bool(_CMP[op](value, target))
    except TypeError:
        return False


def mask(conditions: Any, ids: Sequence[str], metadata: Sequence[dict[str, Any] | None]) -> np.ndarray | None:
    """Rows where every condition holds (None for no filter); checks the filter as build_filter does."""
    if not build_filter(conditions):  # raises INVALID_REQUEST exactly like the Milvus path
        return None
    out = np.ones(len(ids), dtype=bool)
    for cond in conditions:
        key, op, target = cond["key"], cond["op"], cond.get("value")
        if key == "id":
            values: Sequence[Any] = ids
        else:
            values = [m.get(key) if isinstance(m, dict) else None for m in metadata]
        out &= np.fromiter((_holds(v, op, target) for v in values), dtype=bool, count=len(ids))
    return out
