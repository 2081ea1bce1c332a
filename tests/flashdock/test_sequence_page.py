"""Sequence tools against real sequence-model workers: AntiBERTy, SpliceAI and the codon optimiser.

AntiBERTy and SpliceAI load from their wheels in about 7 s together (measured on 2 shared cores), so
this module starts them once, in the session's registry, and stops them when it ends; the codon
worker is part of the session fleet. Answers on the page are checked against the workers' own.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.flashdock.apptest import by_label, open_page, texts
from tests.flashdock.fleet import instances, spawn_worker, wait_ready
from tests.support import AUTH, Proc, stop_all, wait_until
from tests.unit.seqmodels.fixtures import HBB_EXON1_DONOR, HBB_EXON2_ACCEPTOR, HBB_REGION, VH_FRAGMENT

KINDS = ("antiberty", "splice")


@pytest.fixture(scope="module")
def seq_workers(fleet: dict[str, Any]) -> Iterator[dict[str, Proc]]:
    """AntiBERTy and SpliceAI workers (started together: their imports overlap) in the fleet's registry."""
    pytest.importorskip("antiberty", reason="the antiberty wheel is not installed (requirements_service.txt)")
    if importlib.util.find_spec("spliceai") is None:
        pytest.skip("the spliceai wheel is not installed (pip install --no-deps spliceai==1.3.1)")
    registry = fleet["registry"]
    procs = {
        kind: spawn_worker(fleet["tmp"], registry, f"{kind}-page", ["-m", f"seqmodels.{kind}", "--torch-threads", "1"])
        for kind in KINDS
    }
    try:
        for kind, proc in procs.items():
            wait_ready(proc, kind, timeout=120)
        wait_until(
            lambda: {i["service_name"] for i in instances(registry) if i["status"] == "passing"} >= set(KINDS),
            timeout=20,
            what="antiberty and splice passing in the registry",
        )
        yield procs
    finally:
        stop_all(list(procs.values()))
        # Gone from the registry before the next module: later pages must not see them.
        wait_until(lambda: not {i["service_name"] for i in instances(registry)} & set(KINDS), timeout=20)


def direct(proc: Proc, body: dict[str, Any]) -> dict[str, Any]:
    resp = requests.post(proc.base_url + "/predict", json=body, headers={"X-Client-ID": "test-direct"}, timeout=60)
    assert resp.ok, resp.text
    return resp.json()["data"]


def run_antibody(at: Any, task: str, sequence: str) -> Any:
    at.text_area(key="ab_seq").input(sequence)
    by_label(at.radio, "Task").set_value(task)
    at.button(key="ab_run").click().run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_antibody_embedding_and_likelihood(fleet: dict[str, Any], seq_workers: dict[str, Proc]) -> None:
    at = run_antibody(open_page("sequence"), "embedding", VH_FRAGMENT)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Embedding size"] == "512"
    assert "served by **antiberty**" in texts(at)
    assert at.get("vega_lite_chart"), "the mean embedding is not drawn"

    at = run_antibody(at, "pseudo_log_likelihood", VH_FRAGMENT)
    metrics = {m.label: m.value for m in at.metric}
    worker = direct(seq_workers["antiberty"], {"sequence": VH_FRAGMENT, "task_type": "pseudo_log_likelihood"})
    assert float(metrics["Pseudo log-likelihood"]) == pytest.approx(worker["pseudo_log_likelihood"], abs=0.0015)
    assert float(metrics["Pseudo perplexity"]) == pytest.approx(worker["pseudo_perplexity"], abs=0.015)
    assert worker["pseudo_log_likelihood"] < 0


def test_antibody_bad_sequence_is_the_workers_reason(fleet: dict[str, Any], seq_workers: dict[str, Proc]) -> None:
    at = run_antibody(open_page("sequence"), "embedding", "EVQLZ")
    assert "Antibody model failed. The worker refused the request (INVALID_SEQUENCE)" in texts(at)
    assert not at.metric and "Traceback" not in texts(at)


def test_splice_site_probabilities(fleet: dict[str, Any], seq_workers: dict[str, Proc]) -> None:
    at = open_page("sequence")
    at.text_area(key="dna_seq").input(HBB_REGION.lower())  # the page cleans case and whitespace
    by_label(at.radio, "Strand").set_value("+")
    at.button(key="sp_run").click().run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    assert "served by **splice**" in texts(at)
    assert at.get("vega_lite_chart"), "no probability plot"
    sites = at.dataframe[0].value
    found = {(int(row["position"]), row["type"]) for row in sites.to_dict("records")}
    # HBB's annotated exon 1 donor and exon 2 acceptor (what the unit tests check on the model itself).
    assert {(HBB_EXON1_DONOR, "donor"), (HBB_EXON2_ACCEPTOR, "acceptor")} <= found
    worker = direct(seq_workers["splice"], {"sequence": HBB_REGION, "task_type": "splice", "options": {"strand": "+"}})
    assert found == {(s["position"], s["type"]) for s in worker["sites"]}


def test_codon_optimise_and_verify(fleet: dict[str, Any]) -> None:
    at = open_page("sequence")
    by_label(at.selectbox, "Host").set_value("e_coli")
    at.button(key="codon_run").click().run(timeout=60)
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Verified"] == "yes"
    assert 0.5 < float(metrics["CAI"]) <= 1.0
    assert "served by **codon**" in texts(at)
    assert at.get("progress")[-1].value == 100
    assert by_label(at.download_button, "Download DNA (FASTA)")
    assert "Verification report" in texts(at)


def test_a_drained_antibody_worker_is_named_not_used(fleet: dict[str, Any], seq_workers: dict[str, Proc]) -> None:
    """Drained (maintenance) instances are never picked: the page says which worker to start instead."""
    registry = fleet["registry"].base_url
    iid = next(i["instance_id"] for i in instances(fleet["registry"]) if i["service_name"] == "antiberty")
    url = f"{registry}/api/v1/services/{iid}/maintenance"
    requests.put(url, json={"enabled": True, "reason": "test"}, headers=AUTH, timeout=5).raise_for_status()
    try:

        def says_no_worker() -> bool:
            at = run_antibody(open_page("sequence"), "embedding", VH_FRAGMENT)
            return "No usable worker for protein-embedding" in texts(at)

        wait_until(says_no_worker, timeout=15, interval=0.3, what="the page to see the drained worker")
        at = run_antibody(open_page("sequence"), "embedding", VH_FRAGMENT)
        assert "ask your operator to start one (kind `antiberty`" in texts(at)  # chemists get no shell commands
        assert not at.metric
    finally:
        requests.put(url, json={"enabled": False}, headers=AUTH, timeout=5).raise_for_status()
