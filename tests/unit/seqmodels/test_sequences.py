"""Request validation: the codes a client gets for bad sequences and options."""

from __future__ import annotations

import pytest

from seqmodels.sequences import (
    DNA,
    PROTEIN,
    clean_sequence,
    opt_bool,
    opt_choice,
    opt_float,
    opt_int,
    opt_str_list,
    request_options,
    resolve_task_type,
)
from services.common.envelope import ApiError


def code_of(fn, *args) -> str:
    with pytest.raises(ApiError) as info:
        fn(*args)
    return info.value.code.value


def test_sequences_are_normalised_to_upper_case_without_whitespace() -> None:
    assert clean_sequence(" evql\nves \t", PROTEIN, 100) == "EVQLVES"
    assert clean_sequence("acgtn", DNA, 10) == "ACGTN"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("", "INVALID_SEQUENCE"),
        ("   \n", "INVALID_SEQUENCE"),
        (None, "INVALID_SEQUENCE"),
        (["EVQL"], "INVALID_SEQUENCE"),
        ("EVQLB", "INVALID_SEQUENCE"),
        ("EVQL1", "INVALID_SEQUENCE"),
        ("A" * 11, "SEQUENCE_TOO_LONG"),
        ("X" * 100, "SEQUENCE_TOO_LONG"),  # too long wins over a bad alphabet: it is checked first
    ],
)
def test_bad_sequences_get_their_codes(value, code) -> None:
    assert code_of(clean_sequence, value, PROTEIN, 10) == code


def test_an_alphabet_error_names_the_letters_and_the_first_position() -> None:
    with pytest.raises(ApiError) as info:
        clean_sequence("ACGTUX", DNA, 100)
    assert "'UX'" in info.value.details and "position 5" in info.value.details


def test_task_types_resolve_aliases_and_default() -> None:
    aliases = {"protein-embedding": "embedding"}
    assert resolve_task_type({}, aliases, "embedding") == "embedding"
    assert resolve_task_type({"task_type": "protein-embedding"}, aliases, "x") == "embedding"
    assert resolve_task_type({"task_type": "pseudo_log_likelihood"}, aliases, "x") == "pseudo_log_likelihood"
    assert code_of(resolve_task_type, {"task_type": 3}, aliases, "x") == "INVALID_REQUEST"


def test_options_must_be_an_object_and_each_reader_checks_its_type_and_range() -> None:
    assert request_options({}) == {} and request_options({"options": None}) == {}
    assert code_of(request_options, {"options": [1]}) == "INVALID_REQUEST"
    assert opt_int({"n": 3}, "n", 0, 0, 5) == 3 and opt_int({}, "n", 2, 0, 5) == 2
    assert code_of(opt_int, {"n": True}, "n", 0, 0, 5) == "INVALID_REQUEST"
    assert code_of(opt_int, {"n": 6}, "n", 0, 0, 5) == "INVALID_REQUEST"
    assert opt_float({"x": 1}, "x", 0.0, 0.0, 1.0) == 1.0
    assert code_of(opt_float, {"x": float("nan")}, "x", 0.0, 0.0, 1.0) == "INVALID_REQUEST"
    assert code_of(opt_bool, {"b": "yes"}, "b", False) == "INVALID_REQUEST"
    assert opt_choice({"s": "-"}, "s", "+", ("+", "-")) == "-"
    assert code_of(opt_choice, {"s": "?"}, "s", "+", ("+", "-")) == "INVALID_REQUEST"
    assert opt_str_list({"e": "EcoRI"}, "e") == ["EcoRI"]
    assert code_of(opt_str_list, {"e": [1]}, "e") == "INVALID_REQUEST"


@pytest.mark.parametrize("value", ["ßEVQ", "EVQ\ufb00", "ıEVQ", "EVQ\u0131", "ＡＣＤ", "EV\u017fQ"])
def test_non_ascii_letters_that_upper_case_into_amino_acids_are_refused(value: str) -> None:
    with pytest.raises(ApiError) as err:
        clean_sequence(value, PROTEIN, 100)
    assert err.value.code.value == "INVALID_SEQUENCE" and "ASCII" in err.value.details
