"""One request shape for every sequence worker, and its validation: alphabets, lengths, options.

Every body is ``{"sequence": str, "task_type": str, "options": {...}}``. Bad input is refused
here, before it costs a forward pass, with the code a client can act on: INVALID_SEQUENCE
(empty, not a string, letters outside the model's alphabet), SEQUENCE_TOO_LONG, or
INVALID_REQUEST for a malformed option.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.common.envelope import ApiError, ErrorCode

# A body whose raw string is this many times the limit is refused before it is even cleaned.
_RAW_SLACK = 2


@dataclass(frozen=True)
class Alphabet:
    """The letters a model accepts (upper case); lower case and whitespace are normalised away."""

    name: str
    letters: str
    description: str

    def info(self) -> dict[str, str]:
        return {"name": self.name, "letters": self.letters, "description": self.description}


PROTEIN = Alphabet("protein", "ACDEFGHIKLMNPQRSTVWY", "the 20 standard amino acids (one-letter codes)")
PROTEIN_WITH_STOP = Alphabet(
    "protein", "ACDEFGHIKLMNPQRSTVWY*", "the 20 standard amino acids, optionally ending in '*' (stop)"
)
DNA = Alphabet("dna", "ACGTN", "DNA nucleotides A, C, G, T; N for unknown")
CODING_DNA = Alphabet("dna", "ACGT", "DNA nucleotides A, C, G, T (a coding sequence)")
ALPHABETS: dict[str, Alphabet] = {"protein": PROTEIN, "dna": DNA}


@dataclass(frozen=True)
class SeqRequest:
    """One validated request: the cleaned sequence, its canonical task type and its options."""

    sequence: str
    task_type: str
    options: Mapping[str, Any] = field(default_factory=dict)
    # A piece of a request that is computed in parts: residues [start, stop) (see SequenceModel.pieces).
    span: tuple[int, int] | None = None


def clean_sequence(value: Any, alphabet: Alphabet, max_length: int, what: str = "sequence") -> str:
    """``value`` upper-cased without whitespace, or the error a client should see."""
    if not isinstance(value, str):
        raise ApiError(ErrorCode.INVALID_SEQUENCE, f"'{what}' must be a string of {alphabet.name} letters")
    if len(value) > _RAW_SLACK * max_length:
        raise ApiError(ErrorCode.SEQUENCE_TOO_LONG, f"{what} of {len(value)} characters; the limit is {max_length}")
    raw = "".join(value.split())
    if not raw.isascii():
        # Checked before upper-casing: "ß".upper() is "SS" and "ı".upper() is "I", letters nobody sent.
        first = next(i for i, c in enumerate(raw) if not c.isascii())
        raise ApiError(
            ErrorCode.INVALID_SEQUENCE,
            f"{what} has a non-ASCII character {raw[first]!r} at position {first + 1}: "
            f"use the ASCII letters {alphabet.letters}",
        )
    seq = raw.upper()
    if not seq:
        raise ApiError(ErrorCode.INVALID_SEQUENCE, f"'{what}' is empty")
    if len(seq) > max_length:
        raise ApiError(ErrorCode.SEQUENCE_TOO_LONG, f"{what} of {len(seq)} letters; the limit is {max_length}")
    bad = set(seq).difference(alphabet.letters)
    if bad:
        first = next(i for i, c in enumerate(seq) if c in bad)
        shown = "".join(sorted(bad))[:20]
        raise ApiError(
            ErrorCode.INVALID_SEQUENCE,
            f"{what} has letters outside the {alphabet.name} alphabet ({alphabet.letters}): {shown!r}, "
            f"first at position {first + 1}",
        )
    return seq


def resolve_task_type(payload: Mapping[str, Any], aliases: Mapping[str, str], default: str) -> str:
    """The canonical task type: the body's (a capability name is an alias), else ``default``."""
    task = payload.get("task_type")
    if task is None:
        return default
    if not isinstance(task, str):
        raise ApiError(ErrorCode.INVALID_REQUEST, "'task_type' must be a string")
    return aliases.get(task, task)


def request_options(payload: Mapping[str, Any]) -> dict[str, Any]:
    options = payload.get("options", {})
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ApiError(ErrorCode.INVALID_REQUEST, "'options' must be an object")
    return options


# -- option readers: one place that turns a malformed option into INVALID_REQUEST ---------------


def opt_bool(options: Mapping[str, Any], name: str, default: bool) -> bool:
    value = options.get(name, default)
    if not isinstance(value, bool):
        raise ApiError(ErrorCode.INVALID_REQUEST, f"option '{name}' must be true or false")
    return value


def opt_int(options: Mapping[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"option '{name}' must be an integer from {lo} to {hi}")
    return value


def opt_float(options: Mapping[str, Any], name: str, default: float, lo: float, hi: float) -> float:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ApiError(ErrorCode.INVALID_REQUEST, f"option '{name}' must be a number from {lo:g} to {hi:g}")
    if not lo <= value <= hi:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"option '{name}' must be a number from {lo:g} to {hi:g}")
    return float(value)


def opt_choice(options: Mapping[str, Any], name: str, default: str, choices: Sequence[str]) -> str:
    value = options.get(name, default)
    if value not in choices:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"option '{name}' must be one of {', '.join(choices)}")
    return value


def opt_str_list(options: Mapping[str, Any], name: str, max_items: int = 64) -> list[str]:
    value = options.get(name, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or len(value) > max_items or not all(isinstance(v, str) and v for v in value):
        raise ApiError(ErrorCode.INVALID_REQUEST, f"option '{name}' must be a list of at most {max_items} names")
    return value
