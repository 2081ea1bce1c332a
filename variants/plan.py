"""Experiment plans: hierarchical flags (``data.*``, ``model.name``, ``split.strategy``, ``train.lr``...).

:func:`load_plan` fills defaults and checks every key; an error names the key
(``plan.train.lr: must be a number > 0``), an unknown key is refused with the nearest known one,
so a typo never silently trains with a default. ``model`` and ``embeddings`` keep extra keys:
they are the chosen model's own options, checked by that model.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from variants.dataset import CONFLICT_POLICIES
from variants.filters import FilterError, compile_where
from variants.splits import STRATEGIES


class PlanError(ValueError):
    """A plan key with a bad value, or an unknown key; the message starts with the key's path."""


def _num(lo: float | None = None, hi: float | None = None, integer: bool = False, optional: bool = False) -> Callable:
    def check(v: Any) -> str | None:
        if v is None and optional:
            return None
        if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)):
            return f"must be {'an integer' if integer else 'a number'}" + (" or null" if optional else "")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            return f"must be between {lo} and {hi}" if hi is not None else f"must be >= {lo}"
        return None

    return check


def _text(optional: bool = False) -> Callable:
    return lambda v: (
        None if (isinstance(v, str) and v) or (optional and v in (None, "")) else "must be a non-empty string"
    )


def _choice(options: tuple[str, ...]) -> Callable:
    return lambda v: None if v in options else f"must be one of {', '.join(options)}"


def _span(v: Any) -> str | None:
    if v is None:
        return None
    ok = isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and x >= 1 for x in v) and v[0] <= v[1]
    return None if ok else "must be [start, end] (1-based, start <= end) or null"


def _where(v: Any) -> str | None:
    if not isinstance(v, list):
        return "must be a list of [column, op, value]"
    try:
        compile_where(v)
    except FilterError as exc:
        return str(exc).removeprefix("data.where")
    return None


def _names(v: Any) -> str | None:
    return None if isinstance(v, list) and all(isinstance(x, str) for x in v) else "must be a list of names"


# section -> key -> (default, check). ``None`` as a section means "free-form options allowed".
SCHEMA: dict[str, dict[str, tuple[Any, Callable]]] = {
    "data": {
        "db": ("", _text()),
        "table": ("mutations", _choice(("mutations",))),
        "where": ([], _where),
        "label": ("", _text(optional=True)),
        "threshold": (None, _num(optional=True)),
        "conflicts": ("drop", _choice(CONFLICT_POLICIES)),
        "region": (None, _span),
    },
    "model": {"name": ("cnn", _text())},
    "embeddings": {
        "name": ("antiberty", _text()),
        "layer": (-1, _num(-9, 8, integer=True)),
        "context": (None, _span),
        "batch_size": (16, _num(1, 1024, integer=True)),
        "cache": ("", _text(optional=True)),
    },
    "split": {
        "strategy": ("random", _choice(STRATEGIES)),
        "seed": (0, _num(0, integer=True)),
        "test_fraction": (0.15, _num(0.01, 0.9)),
        "val_fraction": (0.15, _num(0.0, 0.9)),
        "min_distance": (2, _num(1, 100, integer=True)),
        "test_positive_fraction": (None, _num(0.001, 0.999, optional=True)),
    },
    "train": {
        "lr": (1e-3, _num(1e-8, 10.0)),
        "batch_size": (128, _num(1, 1 << 16, integer=True)),
        "max_epochs": (20, _num(1, 10_000, integer=True)),
        "patience": (4, _num(1, 10_000, integer=True)),
        "seed": (0, _num(0, integer=True)),
        "max_train": (None, _num(1, integer=True, optional=True)),
        "threads": (1, _num(0, 256, integer=True)),
    },
    "eval": {
        "max_test": (None, _num(1, integer=True, optional=True)),
        "max_val": (None, _num(1, integer=True, optional=True)),
        "metrics": (["roc_auc", "average_precision"], _names),
    },
}
OPEN_SECTIONS = ("model", "embeddings")
TOP_LEVEL = (*SCHEMA, "name", "run_id", "vocab")


def _unknown(path: str, key: str, known: list[str]) -> PlanError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(known)}"
    return PlanError(f"{path}.{key}: unknown key{hint}")


def validate(raw: Any) -> dict[str, Any]:
    """A complete plan (defaults filled) from ``raw``, or :class:`PlanError` naming the bad key."""
    if not isinstance(raw, dict):
        raise PlanError("plan: must be a JSON object")
    for key in raw:
        if key not in TOP_LEVEL:
            raise _unknown("plan", key, list(TOP_LEVEL))
    plan: dict[str, Any] = {
        "name": raw.get("name", ""),
        "run_id": raw.get("run_id", ""),
        "vocab": raw.get("vocab", "protein"),
    }
    for key in ("name", "run_id", "vocab"):
        if not isinstance(plan[key], str):
            raise PlanError(f"plan.{key}: must be a string")
    for section, fields in SCHEMA.items():
        given = raw.get(section, {})
        if not isinstance(given, dict):
            raise PlanError(f"plan.{section}: must be an object")
        out = {}
        for key, value in given.items():
            if key not in fields and section not in OPEN_SECTIONS:
                raise _unknown(f"plan.{section}", key, list(fields))
            out[key] = value
        for key, (default, check) in fields.items():
            value = out.get(key, copy.deepcopy(default))
            problem = check(value)
            if problem:
                raise PlanError(f"plan.{section}.{key}: {problem} (got {json.dumps(value)[:80]})")
            out[key] = value
        plan[section] = out
    return plan


def load_plan(path: str | Path) -> dict[str, Any]:
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise PlanError(f"plan: cannot read {path}: {exc}") from None
    return validate(raw)
