"""The "best model" rule over registry instances: capability, specialisation, validated figure, load."""

from __future__ import annotations

from typing import Any

from gateway.catalog import models_of, rank, read_validation
from gateway.tasks import TASKS
from services.common.instance import Instance

EMBEDDING = TASKS["embedding"]
AFFINITY = TASKS["affinity"]


def inst(
    service: str,
    caps: list[str],
    *,
    port: int = 9000,
    status: str = "passing",
    maintenance: bool = False,
    inflight: int = 0,
    **metadata: Any,
) -> Instance:
    return Instance.from_dict(
        {
            "instance_id": f"{service}-{port}",
            "service_name": service,
            "host": "127.0.0.1",
            "port": port,
            "base_url": f"http://127.0.0.1:{port}",
            "status": status,
            "maintenance": maintenance,
            "metadata": {"capabilities": caps, "models": [f"{service}-1"], **metadata},
            "load": {"inflight": inflight, "max_inflight": 32},
        }
    )


def best(instances: list[Instance], task=EMBEDDING, seq_type: str = "protein"):
    return rank(models_of(instances).values(), task, seq_type)


def test_only_services_with_the_capability_and_a_usable_instance_compete() -> None:
    ranked = best(
        [
            inst("codon", ["codon-optimization"]),
            inst("hf", ["protein-embedding"], port=1),
            inst("antiberty", ["protein-embedding"], port=2, maintenance=True),
            inst("esm", ["protein-embedding"], port=3, status="critical"),
        ]
    )
    assert [m.name for m in ranked.candidates] == ["hf"]
    assert set(ranked.unusable) == {"antiberty", "esm"} and "not usable now" in ranked.reason


def test_a_service_specialised_for_the_sequence_type_comes_first() -> None:
    fleet = [inst("hf", ["protein-embedding"], port=1), inst("antiberty", ["protein-embedding", "antibody-likelihood"])]
    assert best(fleet, seq_type="antibody").best.name == "antiberty"
    assert "specialised for antibody" in best(fleet, seq_type="antibody").reason
    # For a plain protein neither is specialised: load, then the number of instances, then the name decide.
    assert best(fleet, seq_type="protein").best.name == "antiberty"
    busy = [inst("hf", ["protein-embedding"], port=1), inst("antiberty", ["protein-embedding"], inflight=5)]
    assert best(busy).best.name == "hf"


def test_the_validated_figure_decides_before_load() -> None:
    good = {"metric": "pearson", "split": "5-fold cross-validation grouped by protein", "value": 0.81}
    weak = {**good, "value": 0.70}
    fleet = [
        inst("compass", ["affinity"], port=1, inflight=9, validation=good),
        inst("compass-lite", ["affinity"], port=2, validation=weak),
        inst("other", ["affinity"], port=3),
    ]
    ranked = best(fleet, AFFINITY, "small_molecule")
    assert [m.name for m in ranked.candidates] == ["compass", "compass-lite", "other"]
    assert "validated pearson=0.81" in ranked.reason and "other (no validated figure)" in ranked.reason


def test_error_metrics_rank_lower_first_and_a_test_split_never_chooses() -> None:
    fleet = [
        inst("a", ["affinity"], port=1, validation={"metric": "rmse", "split": "validation", "value": 1.4}),
        inst("b", ["affinity"], port=2, validation={"metric": "rmse", "split": "validation", "value": 1.1}),
    ]
    assert best(fleet, AFFINITY, "small_molecule").best.name == "b"
    cheat = [
        inst("a", ["affinity"], port=1, validation={"metric": "pearson", "split": "CASF-2016 test", "value": 0.99}),
        inst("b", ["affinity"], port=2, validation={"metric": "pearson", "split": "validation", "value": 0.6}),
    ]
    ranked = best(cheat, AFFINITY, "small_molecule")
    assert ranked.best.name == "b" and "a (no validated figure)" in ranked.reason


def test_malformed_validation_metadata_is_ignored() -> None:
    for bad in ({"metric": "r", "split": "v", "value": "high"}, {"metric": 1, "split": "v", "value": 1}, "0.8", None):
        assert read_validation({"validation": bad}) is None
    assert read_validation({"validation": {"metric": "r", "split": "v", "value": float("nan")}}) is None
    assert read_validation({"validation": {"metric": "r", "split": "v", "value": 1}}).value == 1.0


def test_no_candidate_says_which_capability_is_missing() -> None:
    ranked = best([inst("codon", ["codon-optimization"])], TASKS["docking"], "small_molecule")
    assert ranked.best is None and "no usable instance serves capability docking" in ranked.reason


def test_gateways_are_not_models_and_advertised_sequence_types_win() -> None:
    fleet = [inst("gateway", ["agent-gateway"], port=1), inst("hf", ["protein-embedding"], sequence_types=["dna"])]
    models = models_of(fleet)
    assert list(models) == ["hf"] and models["hf"].sequence_types == ["dna"]
    assert best(fleet, seq_type="protein").best is None
