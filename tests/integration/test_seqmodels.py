"""Sequence-model workers as real processes, registered in a real registry, reached through the Router by capability.

One fleet per module (the models load once): codon, antiberty, splice and an hf worker serving a
tiny model the test saves. The last test stops the hf worker to watch the preference fall back.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from services.client import RegistryClient, Router
from services.client.batch import run_batch
from services.client.pipeline import DEFAULT_PREFERENCES
from services.common.client_tokens import token_hash
from tests.support import (
    REGISTRY_FLAGS,
    REPO,
    TOKEN,
    Proc,
    python_env,
    read_json_line,
    spawn,
    start_registry,
    stop_all,
    wait_until,
)
from tests.unit.seqmodels.fixtures import GFP, HBB_EXON2_ACCEPTOR, HBB_REGION, TRASTUZUMAB_VH, VH_FRAGMENT
from tests.unit.seqmodels.tiny_hf import build_tiny_esm

pytest.importorskip("antiberty")

KINDS = ("codon", "antiberty", "splice", "hf")
# An issued client token (services.common.client_tokens): the burst test counts as its own client.
BURST_TOKEN = "burst-client-token-0123456789"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Iterator[dict[str, Proc]]:
    tmp = tmp_path_factory.mktemp("seqmodels")
    registry = start_registry(tmp, *REGISTRY_FLAGS)
    tokens = tmp / "client-tokens.txt"
    tokens.write_text(f"burst:{token_hash(BURST_TOKEN)}\n")
    common = ("--registry", registry.base_url, "--token", TOKEN, "--torch-threads", "1")
    common += ("--client-tokens-file", str(tokens))
    model_dir = build_tiny_esm(tmp / "tiny-esm")
    procs: dict[str, Proc] = {"registry": registry}
    try:
        for kind in KINDS:  # all at once: their imports and loads overlap
            extra = ("--model-dir", str(model_dir), "--capability", "protein-embedding") if kind == "hf" else ()
            args = ["-m", f"seqmodels.{kind}", "--port", "0", *common, *extra]
            procs[kind] = spawn(args, tmp / f"{kind}.log", base_url="")
        for kind in KINDS:
            procs[kind].base_url = read_json_line(procs[kind], "event", timeout=120)["base_url"]
        with RegistryClient(registry.base_url, watch=False, max_age_s=0) as client:
            for kind in KINDS:
                wait_until(
                    lambda k=kind: any(i.status == "passing" for i in client.instances(name=k).instances),
                    timeout=120,
                    what=f"{kind} registered and passing",
                )
        yield procs
    finally:
        stop_all(list(procs.values()))


@pytest.fixture(scope="module")
def router(fleet) -> Iterator[Router]:
    with Router(fleet["registry"].base_url, preferences=DEFAULT_PREFERENCES, deadline_s=120) as r:
        yield r


def test_the_router_reaches_every_capability_on_its_worker(router) -> None:
    optimize = {"sequence": GFP[:60], "task_type": "optimize", "options": {"avoid_sites": ["EcoRI"]}}
    design = router.predict("codon-optimization", optimize)
    assert design.service == "codon" and design.data["protein"] == GFP[:60]
    verify = {"sequence": design.data["sequence"], "task_type": "codon-verification", "options": {"protein": GFP[:60]}}
    report = router.predict("codon-verification", verify)
    assert report.data["valid"] is True
    splice = router.predict("splice-site", {"sequence": HBB_REGION, "options": {"scores": False}})
    assert splice.service == "splice" and splice.data["max_acceptor"]["position"] == HBB_EXON2_ACCEPTOR
    # A capability reaches the worker; the task type says what to do (the capability's name works as one).
    pll = router.predict("antibody-likelihood", {"sequence": VH_FRAGMENT[:12], "task_type": "antibody-likelihood"})
    assert pll.service == "antiberty" and pll.data["pseudo_log_likelihood"] < 0
    embedding = router.predict("protein-embedding", {"sequence": "MKTAYIAKQR"})
    assert (embedding.service, embedding.data["dim"], embedding.fallback_used) == ("hf", 32, False)


def test_model_info_and_per_task_metrics_over_http(fleet) -> None:
    for kind, alphabet in (("codon", "protein"), ("antiberty", "protein"), ("splice", "dna"), ("hf", "protein")):
        info = requests.get(fleet[kind].base_url + "/model/info", timeout=5).json()["data"]
        assert info["kind"] == kind and info["task_types"] and info["version"]
        assert info["input_alphabet"][info["task_types"][0]]["name"] == alphabet
        assert info["runtime"]["max_batch_items"] == 100 and info["runtime"]["rate_limit_per_min"] == 100
    metrics = requests.get(fleet["codon"].base_url + "/metrics", timeout=5).text
    assert 'seqmodel_sequences_total{outcome="ok",service="codon",task_type="optimize"}' in metrics


def test_bad_input_and_oversized_batches_get_their_codes(fleet) -> None:
    url = fleet["antiberty"].base_url
    cases = [
        ("/predict", {"sequence": "EVQLZ"}, 400, "INVALID_SEQUENCE"),
        ("/predict", {"sequence": ""}, 400, "INVALID_SEQUENCE"),
        ("/predict", {"sequence": "A" * 511}, 400, "SEQUENCE_TOO_LONG"),
        ("/predict/batch", {"sequences": ["EVQL"] * 101}, 400, "INVALID_REQUEST"),
    ]
    for path, body, status, code in cases:
        resp = requests.post(url + path, json=body, headers={"X-Client-ID": "codes"}, timeout=30)
        assert (resp.status_code, resp.json()["error"]["code"]) == (status, code), body
    batch = requests.post(
        url + "/predict/batch",
        json={"sequences": [TRASTUZUMAB_VH[:20], "EVQLB"], "task_type": "embedding", "options": {"per_residue": False}},
        timeout=60,
    ).json()["data"]
    assert batch["succeeded"] == 1 and batch["results"][1]["error"]["code"] == "INVALID_SEQUENCE"


def test_a_burst_over_the_rate_limit_is_refused_with_429(fleet) -> None:
    url = fleet["codon"].base_url + "/predict"
    headers = {"Authorization": f"Bearer {BURST_TOKEN}"}  # its own bucket, whatever else called from here
    statuses: list[int] = []
    t0 = time.monotonic()
    with requests.Session() as session:
        while 429 not in statuses and len(statuses) < 300:
            statuses.append(session.post(url, json={"sequence": ""}, headers=headers, timeout=5).status_code)
        limited = session.post(url, json={"sequence": "MK"}, headers=headers, timeout=5)
    refilled = (time.monotonic() - t0) * 100 / 60  # a slow machine earns tokens back while it sends
    assert statuses[:100] == [400] * 100 and statuses[-1] == 429
    assert len(statuses) - 1 <= 100 + refilled + 1
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["error"]["code"] == "RATE_LIMITED"


def test_the_batch_runner_works_with_a_sequence_worker(router, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    for i in range(4):
        task = {"task": "codon-verification", "input": {"sequence": "ATG" + "GCT" * (i + 1) + "TAA"}}
        (tmp_path / "in" / f"t{i}.json").write_text(json.dumps(task))
    summary = run_batch(router, tmp_path / "in", tmp_path / "out", "codon-verification", concurrency=2, progress=False)
    assert (summary.succeeded, summary.failed) == (4, 0)
    doc = json.loads((tmp_path / "out" / "t2.json").read_text())
    assert doc["output"]["translation"] == "MAAA" and doc["metadata"]["service"] == "codon"


def test_the_pipeline_cli_chains_optimisation_into_verification(fleet, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    rng = random.Random(5)
    for i in range(3):
        protein = "M" + "".join(rng.choice("ACDEFGHIKLMNPQRSTVWY") for _ in range(40))
        options = {"host": "h_sapiens", "avoid_sites": ["BsaI", "EcoRI"], "max_homopolymer": 5}
        (tmp_path / "in" / f"p{i}.json").write_text(json.dumps({"input": {"sequence": protein, "options": options}}))
    command = [
        sys.executable,
        "-m",
        "services.client.pipeline",
        "--registry",
        fleet["registry"].base_url,
        "--steps",
        "codon-optimization,codon-verification",
        "--input-dir",
        str(tmp_path / "in"),
        "--output-dir",
        str(tmp_path / "out"),
        "--no-progress",
    ]
    run = subprocess.run(command, cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert (summary["succeeded"], summary["failed"]) == (3, 0)
    for path in (tmp_path / "out").glob("p*.json"):
        doc = json.loads(path.read_text())
        assert doc["status"] == "success" and doc["output"]["valid"] is True
        assert doc["output"]["expected_protein"] == doc["steps"][0]["output"]["protein"]
    again = subprocess.run(command, cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=120)
    assert json.loads(again.stdout.strip().splitlines()[-1])["skipped"] == 3


def test_protein_embedding_prefers_hf_and_falls_back_to_antiberty_when_it_leaves(fleet, router) -> None:
    assert router.predict("protein-embedding", {"sequence": "MKTAYIAKQR"}).service == "hf"
    assert fleet["hf"].terminate() == 0
    with RegistryClient(fleet["registry"].base_url, watch=False, max_age_s=0) as client:
        wait_until(lambda: not client.instances(name="hf").instances, timeout=15, what="hf deregistered")
    result = wait_until(
        lambda: router.predict("protein-embedding", {"sequence": "EVQLVESGG", "options": {"per_residue": False}}),
        timeout=20,
        what="an embedding after hf left",
    )
    assert (result.service, result.data["dim"], result.fallback_used) == ("antiberty", 512, False)
