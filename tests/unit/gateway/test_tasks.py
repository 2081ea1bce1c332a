"""Task and sequence-type vocabulary, input checks, and how routed errors reach the caller."""

from __future__ import annotations

import pytest

from gateway.routing import api_error
from gateway.tasks import TASKS, check_sequences, guess_sequence_type, resolve_sequence_type, resolve_task
from services.client import AllAttemptsFailed, Attempt, NoInstanceAvailable, RequestFailed
from services.common.envelope import ApiError, ErrorCode


def test_tasks_resolve_by_name_capability_or_worker_task_type() -> None:
    assert resolve_task("embedding") is TASKS["embedding"]
    assert resolve_task("codon-optimization") is TASKS["codon_optimization"]
    assert resolve_task("pseudo_log_likelihood") is TASKS["likelihood"]
    assert resolve_task(" Splice ") is TASKS["splice"]
    for bad in (None, "", "telepathy", 3):
        with pytest.raises(ApiError) as err:
            resolve_task(bad)
        assert err.value.code is ErrorCode.INVALID_REQUEST and "embedding" in err.value.details


def test_sequence_types_and_their_fit_to_the_task() -> None:
    assert resolve_sequence_type("SMILES", TASKS["docking"]) == "small_molecule"
    assert resolve_sequence_type(None, TASKS["splice"]) is None
    with pytest.raises(ApiError, match="reads dna, not protein"):
        resolve_sequence_type("protein", TASKS["splice"])
    with pytest.raises(ApiError, match="unknown sequence_type"):
        resolve_sequence_type("rna")
    assert guess_sequence_type(TASKS["variant_effect"], ["ACGTTG"]) == "dna"
    assert guess_sequence_type(TASKS["variant_effect"], ["MKVL"]) == "protein"


def test_sequences_are_checked_before_any_worker_is_asked() -> None:
    assert check_sequences("mk v", "protein", 10, 100) == ["MKV"]
    cases = [
        ([], ErrorCode.INVALID_REQUEST),
        (["MK", 3], ErrorCode.INVALID_SEQUENCE),
        (["MKB"], ErrorCode.INVALID_SEQUENCE),
        (["ACGU"], ErrorCode.INVALID_SEQUENCE),
        (["A" * 101], ErrorCode.SEQUENCE_TOO_LONG),
        (["A"] * 11, ErrorCode.PAYLOAD_TOO_LARGE),
    ]
    for values, code in cases:
        with pytest.raises(ApiError) as err:
            check_sequences(values, "dna" if values == ["ACGU"] else "protein", 10, 100)
        assert err.value.code is code, values


def test_routed_errors_keep_the_workers_code_and_name_the_missing_capability() -> None:
    refused = api_error(
        RequestFailed("x", status=400, code="SEQUENCE_TOO_LONG", details="3000 > 510"), "protein-embedding"
    )
    assert (refused.code, refused.status, refused.details) == (ErrorCode.SEQUENCE_TOO_LONG, 400, "3000 > 510")
    missing = api_error(NoInstanceAvailable("none", target="docking"), "docking")
    assert missing.code is ErrorCode.MODEL_NOT_LOADED and "no instance serves capability docking" in missing.details
    assert "launch dock" in missing.details
    limited = AllAttemptsFailed("x", attempts=[Attempt("codon", "c-1", "u", "http-429", status=429, details="slow")])
    assert api_error(limited, "codon-optimization").code is ErrorCode.RATE_LIMITED
    crashed = Attempt("codon", "c-1", "u", "http-500", status=500, code="PREDICTION_FAILED", reached=True)
    assert api_error(AllAttemptsFailed("x", attempts=[crashed]), "codon").code is ErrorCode.PREDICTION_FAILED
