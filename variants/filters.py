"""``data.where`` filters: ``[[column, op, value], ...]`` turned into a parameterised SQL clause.

Columns and operators are looked up in fixed tables, values are always bound parameters, so a plan
can select rows but can never put SQL text into a query.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Columns of ``mutations`` (and the joined ``sources``) a filter may name; their SQL is fixed here.
COLUMNS: dict[str, str] = {
    "template_id": "m.template_id",
    "mutant": "m.mutant",
    "sequence": "m.sequence",
    "n_mutations": "m.n_mutations",
    "label_name": "m.label_name",
    "label": "m.label",
    "reads": "m.reads",
    "fraction": "m.fraction",
    "nucleotide": "m.nucleotide",
    "assay": "m.assay",
    "import_id": "m.import_id",
    "source_row": "m.source_row",
    "template_name": "s.name",
}
_BINARY = {"=": "=", "==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">=", "like": "LIKE"}
_LISTS = {"in": "IN", "not in": "NOT IN"}
_UNARY = {"is null": "IS NULL", "is not null": "IS NOT NULL"}
OPERATORS = (*_BINARY, *_LISTS, *_UNARY)
MAX_LIST = 1000


class FilterError(ValueError):
    """A filter that is not ``[column, op, value]`` over known columns and operators."""


def _scalar(value: Any, where: str) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, str)):
        return value
    raise FilterError(f"{where}: value must be a string or a number, got {type(value).__name__}")


def compile_where(filters: Sequence[Any] | None) -> tuple[str, list[Any]]:
    """``("m.label = ? AND m.reads >= ?", [1, 10])`` from ``[["label", "=", 1], ["reads", ">=", 10]]``."""
    clauses: list[str] = []
    params: list[Any] = []
    for i, item in enumerate(filters or []):
        where = f"data.where[{i}]"
        if not isinstance(item, (list, tuple)) or len(item) not in (2, 3):
            raise FilterError(f"{where}: expected [column, op, value], got {item!r}"[:200])
        column, op = item[0], str(item[1]).strip().lower()
        if column not in COLUMNS:
            raise FilterError(f"{where}: unknown column {column!r}; use one of {', '.join(COLUMNS)}"[:300])
        sql_col = COLUMNS[column]
        if op in _UNARY:
            clauses.append(f"{sql_col} {_UNARY[op]}")
        elif op in _BINARY:
            if len(item) != 3:
                raise FilterError(f"{where}: operator {op!r} needs a value")
            clauses.append(f"{sql_col} {_BINARY[op]} ?")
            params.append(_scalar(item[2], where))
        elif op in _LISTS:
            values = item[2] if len(item) == 3 else None
            if not isinstance(values, list) or not values or len(values) > MAX_LIST:
                raise FilterError(f"{where}: {op!r} needs a list of 1..{MAX_LIST} values")
            clauses.append(f"{sql_col} {_LISTS[op]} ({', '.join('?' for _ in values)})")
            params.extend(_scalar(v, where) for v in values)
        else:
            raise FilterError(f"{where}: unknown operator {item[1]!r}; use one of {', '.join(OPERATORS)}"[:300])
    return (" AND ".join(clauses) or "1"), params
