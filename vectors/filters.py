"""Filters: structured conditions turned into a Milvus boolean expression, never text from a client.

A filter is a list of conditions that must all hold::

    [{"key": "series", "op": "==", "value": "A"}, {"key": "mw", "op": "<", "value": 500}]

``key`` is a metadata key (``[A-Za-z_][A-Za-z0-9_]{0,63}``) or ``id``; ``op`` one of
:data:`OPS`; ``value`` a string, number or boolean (a non-empty list of them for ``in`` and
``not_in``). The expression is built here from those parts: keys are checked against the
pattern and values are written as JSON literals, so nothing a client sends reaches Milvus's
parser as expression text.
"""

from __future__ import annotations

import math
import re
from typing import Any

from services.common.envelope import ApiError, ErrorCode

KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
OPS = ("==", "!=", "<", "<=", ">", ">=", "in", "not_in")
MAX_CONDITIONS = 16
MAX_LIST_VALUES = 256
MAX_STRING = 1024
_ORDERED = frozenset({"<", "<=", ">", ">="})


def _bad(details: str) -> ApiError:
    return ApiError(ErrorCode.INVALID_REQUEST, f"filter: {details}")


def _literal(value: Any, where: str) -> str:
    """A scalar as a Milvus literal: a double-quoted string, a plain number or a boolean."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _bad(f"{where}: numbers must be finite")
        return repr(value)
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise _bad(f"{where}: strings are limited to {MAX_STRING} characters")
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
            raise _bad(f"{where}: control characters are not allowed in strings")
        # Milvus string literals know \\ and \" (not JSON's \u escapes): only those two are escaped.
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise _bad(f"{where}: a value must be a string, number or boolean, not {type(value).__name__}")


def _field(key: str) -> str:
    return "id" if key == "id" else f'metadata["{key}"]'


def condition_expr(cond: Any, i: int) -> str:
    """One condition as an expression; raises INVALID_REQUEST naming what is wrong."""
    where = f"condition {i}"
    if not isinstance(cond, dict) or set(cond) - {"key", "op", "value"} or not {"key", "op"} <= set(cond):
        raise _bad(f"{where} must be an object {{key, op, value}}")
    key, op, value = cond["key"], cond["op"], cond.get("value")
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise _bad(f"{where}: key must match {KEY_RE.pattern}")
    if op not in OPS:
        raise _bad(f"{where}: op must be one of {', '.join(OPS)}")
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value or len(value) > MAX_LIST_VALUES:
            raise _bad(f"{where}: {op} needs a list of 1 to {MAX_LIST_VALUES} values")
        # Milvus Lite cannot put a JSON path left of `in`: spelled out as == / != terms instead.
        if op == "in":
            return " or ".join(f"{_field(key)} == {_literal(v, where)}" for v in value)
        return " and ".join(f"{_field(key)} != {_literal(v, where)}" for v in value)
    if op in _ORDERED and (isinstance(value, bool) or not isinstance(value, (int, float, str))):
        raise _bad(f"{where}: {op} compares numbers or strings")
    return f"{_field(key)} {op} {_literal(value, where)}"


def build_filter(conditions: Any) -> str:
    """The Milvus expression of a filter ('' for none)."""
    if conditions is None or conditions == []:
        return ""
    if isinstance(conditions, str):
        raise _bad("expression text is not accepted; send a list of {key, op, value} conditions")
    if not isinstance(conditions, list):
        raise _bad("must be a list of {key, op, value} conditions")
    if len(conditions) > MAX_CONDITIONS:
        raise _bad(f"at most {MAX_CONDITIONS} conditions")
    return " and ".join(f"({condition_expr(c, i)})" for i, c in enumerate(conditions))
