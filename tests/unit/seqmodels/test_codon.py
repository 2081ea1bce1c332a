"""Codon optimisation and verification: the design translates back and meets every constraint it was given."""

from __future__ import annotations

import re

import pytest
from Bio.Restriction import BsaI, EcoRI, NdeI, XhoI
from Bio.Seq import Seq
from Bio.SeqUtils import gc_fraction

from seqmodels.codon import CodonModel
from seqmodels.settings import SeqSettings
from services.common.envelope import ApiError
from tests.unit.seqmodels.fixtures import GFP

OPTIONS = {
    "host": "e_coli",
    "gc_min": 0.4,
    "gc_max": 0.6,
    "gc_window": 60,
    "avoid_sites": ["EcoRI", "BsaI", "NdeI", "XhoI"],
    "max_homopolymer": 5,
    "unique_kmers": 14,
}


@pytest.fixture(scope="module")
def model() -> CodonModel:
    m = CodonModel(SeqSettings())
    m.load()
    return m


@pytest.fixture(scope="module")
def design(model) -> dict:
    return model.predict({"sequence": GFP, "task_type": "codon-optimization", "options": OPTIONS})


def test_the_optimised_sequence_translates_back_and_meets_every_constraint(design) -> None:
    dna = design["sequence"]
    assert str(Seq(dna).translate()) == GFP + "*" and design["protein"] == GFP
    # Checked here with Biopython and plain Python, independently of DNA Chisel's own evaluation.
    window = OPTIONS["gc_window"]
    windows = [gc_fraction(dna[i : i + window]) for i in range(len(dna) - window + 1)]
    assert OPTIONS["gc_min"] <= min(windows) and max(windows) <= OPTIONS["gc_max"]
    for enzyme in (EcoRI, BsaI, NdeI, XhoI):
        assert not enzyme.search(Seq(dna)), f"{enzyme} site left in"
    assert not re.search(r"A{6,}|C{6,}|G{6,}|T{6,}", dna)
    kmers = [dna[i : i + 14] for i in range(len(dna) - 13)]
    rc = str(Seq(dna).reverse_complement())
    assert len(set(kmers)) == len(kmers) and not any(k in rc for k in kmers), "no repeated 14-mer, either strand"
    assert all(c["passed"] for c in design["constraints"]) and len(design["constraints"]) == 1 + 4 + 4 + 1
    assert design["cai"] > 0.8 and design["host"] == "e_coli_316407"


def test_optimisation_is_deterministic_for_a_seed(model, design) -> None:
    again = model.predict({"sequence": GFP, "task_type": "optimize", "options": OPTIONS})
    assert again["sequence"] == design["sequence"]


def test_verification_passes_the_design_and_reports_its_metrics(model, design) -> None:
    report = model.predict(
        {"sequence": design["sequence"], "task_type": "codon-verification", "options": {**OPTIONS, "protein": GFP}}
    )
    assert report["valid"] is True and all(report["checks"].values())
    assert report["translation"] == GFP and report["ends_with_stop"] and report["starts_with_atg"]
    assert report["cai"] == pytest.approx(design["cai"]) and report["restriction_sites"] == []
    assert report["homopolymers"] == [] and report["repeats"] == {"k": 14, "unique": True, "locations": []}
    assert OPTIONS["gc_min"] <= report["gc"]["min"] <= report["gc"]["max"] <= OPTIONS["gc_max"]


def test_verification_finds_every_kind_of_fault(model) -> None:
    # ATG GAA TTC (EcoRI) AAA AAA AAA (9 A: homopolymer) TAA (internal stop) GGC TAA
    report = model.predict(
        {
            "sequence": "ATGGAATTCAAAAAAAAATAAGGCTAA",
            "task_type": "verify",
            "options": {"avoid_sites": ["EcoRI"], "max_homopolymer": 5, "protein": "MEFKKKG"},
        }
    )
    assert report["valid"] is False
    assert report["checks"] == {"in_frame": True, "no_internal_stop": False, "translation_matches": False}
    assert report["restriction_sites"] == [{"enzyme": "EcoRI", "site": "GAATTC", "positions": [5]}]
    assert report["homopolymers"] == [{"base": "A", "start": 10, "length": 9}]
    failed = {c["constraint"].split(",")[0] for c in report["constraints"] if not c["passed"]}
    assert {"No EcoRI", "No 6xA"} <= failed
    out_of_frame = model.predict({"sequence": "ATGAAAG", "task_type": "verify"})
    assert out_of_frame["checks"]["in_frame"] is False and out_of_frame["valid"] is False


def test_unsatisfiable_or_malformed_requests_get_their_codes(model) -> None:
    cases = [
        ({"sequence": "MK*K", "task_type": "optimize"}, "INVALID_SEQUENCE"),
        ({"sequence": "ATGAAA"}, "INVALID_REQUEST"),  # no task type: optimise or verify?
        ({"sequence": "MKB", "task_type": "optimize"}, "INVALID_SEQUENCE"),
        ({"sequence": "ATGNNN", "task_type": "verify"}, "INVALID_SEQUENCE"),
        ({"sequence": "MK", "task_type": "optimize", "options": {"host": "9606"}}, "INVALID_REQUEST"),
        ({"sequence": "MK", "task_type": "optimize", "options": {"avoid_sites": ["NoSuchI"]}}, "INVALID_REQUEST"),
        ({"sequence": "MK", "task_type": "optimize", "options": {"gc_min": 0.8, "gc_max": 0.2}}, "INVALID_REQUEST"),
        # Lysine codons are AAA and AAG: no poly-K coding sequence reaches 60 % GC.
        (
            {"sequence": "K" * 30, "task_type": "optimize", "options": {"gc_min": 0.6, "add_stop": False}},
            "INVALID_REQUEST",
        ),
        ({"sequence": "M" * 1707, "task_type": "optimize"}, "SEQUENCE_TOO_LONG"),
    ]
    for body, code in cases:
        with pytest.raises(ApiError) as info:
            model.predict(body)
        assert info.value.code.value == code, body


def test_info_lists_hosts_and_inline_execution(model) -> None:
    info = model.info()
    assert "e_coli" in info["hosts"] and "h_sapiens" in info["hosts"]
    assert info["dynamic_batching"]["enabled"] is False
    assert info["input_alphabet"]["optimize"]["letters"].endswith("*")
    assert info["limits"]["max_sequence_length"] == {"optimize": 1705, "verify": 5120}
