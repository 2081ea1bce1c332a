"""Filters are built from structured conditions; nothing a client sends becomes expression text."""

from __future__ import annotations

import pytest

from services.common.envelope import ApiError
from vectors.filters import MAX_CONDITIONS, build_filter


def test_conditions_become_a_conjunction_of_json_paths() -> None:
    expr = build_filter(
        [
            {"key": "series", "op": "==", "value": "A"},
            {"key": "mw", "op": "<", "value": 500},
            {"key": "id", "op": "!=", "value": "x"},
        ]
    )
    assert expr == '(metadata["series"] == "A") and (metadata["mw"] < 500) and (id != "x")'


def test_in_and_not_in_are_spelled_out() -> None:
    assert build_filter([{"key": "g", "op": "in", "value": ["a", 2]}]) == '(metadata["g"] == "a" or metadata["g"] == 2)'
    assert build_filter([{"key": "g", "op": "not_in", "value": [True]}]) == '(metadata["g"] != true)'


def test_quotes_and_backslashes_in_values_stay_inside_the_literal() -> None:
    expr = build_filter([{"key": "name", "op": "==", "value": 'a" or id != "'}])
    assert expr == '(metadata["name"] == "a\\" or id != \\"")'
    assert build_filter([{"key": "p", "op": "==", "value": "C:\\"}]) == '(metadata["p"] == "C:\\\\")'


@pytest.mark.parametrize(
    "conditions",
    [
        'id == "a" or true',  # expression text
        {"key": "a", "op": "==", "value": 1},  # not a list
        [{"key": 'a"] == 1 or metadata["b', "op": "==", "value": 1}],  # a key that would break out
        [{"key": "a", "op": "LIKE", "value": "x%"}],
        [{"key": "a", "op": "==", "value": {"nested": 1}}],
        [{"key": "a", "op": "<", "value": True}],
        [{"key": "a", "op": "in", "value": []}],
        [{"key": "a", "op": "==", "value": float("nan")}],
        [{"key": "a", "op": "==", "value": "line\nbreak"}],
        [{"key": "a", "op": "==", "value": 1, "extra": 2}],
        [{"key": "a", "op": "==", "value": 1}] * (MAX_CONDITIONS + 1),
    ],
)
def test_malformed_filters_are_400(conditions) -> None:
    with pytest.raises(ApiError) as err:
        build_filter(conditions)
    assert err.value.status == 400 and err.value.details.startswith("filter:")


def test_no_filter_is_empty() -> None:
    assert build_filter(None) == "" and build_filter([]) == ""
