"""The agent gateway as a real process over real workers on loopback: every REST route, MCP on stdio
(the SDK's own client) and on streamable HTTP, identity forwarding, load/unload, drain and fallback.

One fleet per module (models load once): a token-secured registry, codon (rate limit 6/min per
client, to see the caller's own budget), antiberty, an hf worker serving a tiny ESM the test saves
(a second protein-embedding service, so "best" has a choice), compass-lite on its shipped weights,
and a gateway allowed to launch echo replicas. Tests that change the fleet (drain, launch) undo it.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support import (
    AUTH,
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
from tests.unit.seqmodels.fixtures import GFP, TRASTUZUMAB_VH

pytest.importorskip("antiberty")
pytest.importorskip("mcp")

WORKERS = ("codon", "antiberty", "hf", "compass-lite")
CODON_RATE_PER_MIN = 6
COMPLEX = REPO / "examples" / "complexes" / "1a30"
CLIENTS = {"alice": "alice-issued-token", "bob": "bob-issued-token"}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Iterator[dict[str, Proc]]:
    from tests.unit.seqmodels.tiny_hf import build_tiny_esm

    tmp = tmp_path_factory.mktemp("gateway")
    registry = start_registry(tmp, *REGISTRY_FLAGS)
    env = python_env(REGISTRY_TOKEN=TOKEN, OMP_NUM_THREADS="1")
    tokens = tmp / "client-tokens.txt"  # the operator issued alice and bob a token each (hashes only)
    tokens.write_text("".join(f"{name}:{hashlib.sha256(tok.encode()).hexdigest()}\n" for name, tok in CLIENTS.items()))
    common = ["--port", "0", "--registry", registry.base_url]
    commands = {
        "codon": ["-m", "seqmodels.codon", *common, "--rate-limit-per-min", str(CODON_RATE_PER_MIN)],
        "antiberty": ["-m", "seqmodels.antiberty", *common, "--torch-threads", "1"],
        "compass-lite": [
            "-m",
            "compass.service.worker",
            "--model",
            "compass-lite",
            *common,
            "--state-dir",
            str(tmp / "lite"),
        ],
        "gateway": ["-m", "gateway", *common, "--launch-kind", "echo", "--deadline-s", "60"],
    }
    procs: dict[str, Proc] = {"registry": registry}
    try:
        for name, args in commands.items():  # all at once: imports and model loads overlap
            own = python_env(**{**env, "WORKER_CLIENT_TOKENS_FILE": str(tokens)}) if name == "codon" else env
            procs[name] = spawn(args, tmp / f"{name}.log", base_url="", env=own)
        model_dir = build_tiny_esm(tmp / "tiny-esm")  # while they start
        hf = ["-m", "seqmodels.hf", *common, "--torch-threads", "1", "--model-dir", str(model_dir)]
        procs["hf"] = spawn(hf, tmp / "hf.log", base_url="", env=env)
        for name in [*commands, "hf"]:
            procs[name].base_url = read_json_line(procs[name], "event", timeout=120)["base_url"]
        wait_for_fleet(procs)
        yield procs
    finally:
        stop_all(list(procs.values()))


def wait_for_fleet(procs: dict[str, Proc], timeout: float = 240.0) -> None:
    """Until the gateway lists every worker as loaded; else fail naming the missing ones, with their logs."""
    missing: set[str] = set(WORKERS)

    def loaded() -> bool:
        nonlocal missing
        missing = set(WORKERS) - {m["name"] for m in get(procs["gateway"], "/models/loaded")["models"]}
        return not missing

    try:
        wait_until(loaded, timeout=timeout, what="every worker loaded and seen by the gateway")
    except AssertionError as exc:
        tails = "\n".join(f"--- {name}:\n{procs[name].log()[-1500:]}" for name in sorted(missing))
        raise AssertionError(f"{exc}; not loaded: {', '.join(sorted(missing))}\n{tails}") from None


@pytest.fixture(scope="module")
def gateway(fleet) -> Proc:
    return fleet["gateway"]


def call(proc: Proc, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, f"{proc.base_url}/api/v1{path}", timeout=120, **kwargs)


def get(proc: Proc, path: str) -> Any:
    resp = call(proc, "GET", path)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def post(proc: Proc, path: str, body: Any, status: int = 200, **kwargs: Any) -> dict[str, Any]:
    resp = call(proc, "POST", path, json=body, **kwargs)
    assert resp.status_code == status, resp.text
    return resp.json()


# -- REST ------------------------------------------------------------------------------------------


def test_models_list_every_worker_with_capabilities_and_health(gateway) -> None:
    models = {m["name"]: m for m in get(gateway, "/models")["models"]}
    assert set(WORKERS) <= set(models) and "gateway" not in models  # gateways are not models
    assert {"protein-embedding", "antibody-likelihood"} <= set(models["antiberty"]["capabilities"])
    assert models["codon"]["sequence_types"] == ["dna", "protein"]
    lite = models["compass-lite"]
    assert lite["active_model"]["kind"] == "compass-lite" and lite["usable_instances"] == 1
    inst = lite["instances"][0]
    assert inst["status"] == "passing" and inst["draining"] is False and isinstance(inst["pid"], int)
    loaded = {m["name"] for m in get(gateway, "/models/loaded")["models"]}
    assert set(WORKERS) <= loaded <= set(models)


def test_tasks_and_sequence_types(gateway) -> None:
    tasks = {t["task_type"]: t for t in get(gateway, "/tasks")["tasks"]}
    assert tasks["affinity"]["available"] and tasks["affinity"]["served_by"] == ["compass-lite"]
    assert not tasks["docking"]["available"] and tasks["docking"]["capability"] == "docking"
    assert sorted(tasks["embedding"]["served_by"]) == ["antiberty", "hf"]
    names = [t["name"] for t in get(gateway, "/sequence-types")["sequence_types"]]
    assert names == ["protein", "antibody", "dna", "small_molecule"]


def test_best_model_says_why(gateway) -> None:
    best = post(gateway, "/models/best", {"task_type": "embedding", "sequence_type": "antibody"})["data"]
    assert best["best_model"] == "antiberty" and set(best["candidates"]) == {"antiberty", "hf"}
    assert "specialised for antibody" in best["reason"]
    codon = post(gateway, "/models/best", {"task_type": "codon_optimization", "sequence_type": "protein"})["data"]
    assert codon["best_model"] == "codon" and codon["capability"] == "codon-optimization"
    docking = post(gateway, "/models/best", {"task_type": "docking"}, status=503)["error"]
    assert docking["code"] == "MODEL_NOT_LOADED" and "capability docking" in docking["details"]


def test_analyze_runs_on_the_best_model_and_says_who_served(gateway) -> None:
    out = post(
        gateway, "/analyze", {"task_type": "embedding", "sequences": [TRASTUZUMAB_VH], "sequence_type": "antibody"}
    )
    data = out["data"]
    assert data["served_by"]["service"] == "antiberty" and data["served_by"]["fallback_used"] is False
    assert data["chosen"]["by"] == "best" and data["succeeded"] == 1
    assert len(data["results"][0]["data"]["mean"]) == data["results"][0]["data"]["dim"]
    codon = post(gateway, "/analyze", {"task_type": "codon_optimization", "sequences": [GFP[:40]]})["data"]
    assert codon["results"][0]["data"]["protein"] == GFP[:40] and codon["served_by"]["service"] == "codon"


def test_analyze_falls_back_when_a_kind_has_no_instance(gateway) -> None:
    item = {
        "protein_pdb": (COMPLEX / "1a30_pocket.pdb").read_text(),
        "ligand_sdf": (COMPLEX / "1a30_ligand.sdf").read_text(),
    }
    out = post(gateway, "/analyze", {"task_type": "affinity", "inputs": [item], "model_name": "compass"})["data"]
    assert out["chosen"] == {"model": "compass", "by": "caller", "reason": None}
    assert out["served_by"]["service"] == "compass-lite" and out["served_by"]["fallback_used"] is True
    assert isinstance(out["results"][0]["data"]["pK"], float)


def test_model_info_asks_the_worker(gateway) -> None:
    info = get(gateway, "/model/antiberty/info")
    assert info["name"] == "antiberty" and info["worker_info"]["task_types"] == ["embedding", "pseudo_log_likelihood"]
    assert info["info_from"] == info["instances"][0]["instance_id"]
    by_model_id = get(gateway, f"/model/{get(gateway, '/model/codon/info')['models'][0]}/info")
    assert by_model_id["name"] == "codon"  # a served model id finds its service
    missing = call(gateway, "GET", "/model/no-such-model/info")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"


def test_bad_inputs_get_4xx_in_the_envelope(gateway) -> None:
    cases = [
        ({"task_type": "telepathy", "sequences": ["MK"]}, 400, "INVALID_REQUEST"),
        ({"task_type": "embedding", "sequences": ["MK1"]}, 400, "INVALID_SEQUENCE"),
        ({"task_type": "embedding", "sequences": []}, 400, "INVALID_REQUEST"),
        ({"task_type": "embedding", "sequences": ["MK"] * 101}, 413, "PAYLOAD_TOO_LARGE"),
        ({"task_type": "splice", "sequences": ["ACGT"], "sequence_type": "protein"}, 400, "INVALID_REQUEST"),
        ({"task_type": "affinity", "inputs": "not a list"}, 400, "INVALID_REQUEST"),
        ({"task_type": "embedding", "sequences": ["MK"], "model_name": "Not A Name!"}, 400, "INVALID_REQUEST"),
        ({"task_type": "codon_optimization", "sequences": ["MK"], "options": {"host": "mars"}}, 400, "INVALID_REQUEST"),
    ]
    for body, status, code in cases:
        resp = call(gateway, "POST", "/analyze", json=body)
        assert (resp.status_code, resp.json()["error"]["code"]) == (status, code), (body, resp.text)
    malformed = call(gateway, "POST", "/models/best", data="{nope", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["success"] is False
    assert (
        call(gateway, "POST", "/models/best", json={"task_type": "splice", "sequence_type": "smiles"}).status_code
        == 400
    )
    assert call(gateway, "DELETE", "/models").status_code == 405


def test_the_callers_credential_reaches_the_worker(gateway) -> None:
    """The codon worker limits each issued client to 6/min: alice runs out, bob (another token) does not."""
    body = {"task_type": "codon_verification", "sequences": ["ATGAAATAA"]}
    alice = {"Authorization": f"Bearer {CLIENTS['alice']}"}
    for _ in range(CODON_RATE_PER_MIN):
        post(gateway, "/analyze", body, headers=alice)
    refused = post(gateway, "/analyze", body, status=429, headers=alice)
    assert refused["error"]["code"] == "RATE_LIMITED"
    post(gateway, "/analyze", body, headers={"Authorization": f"Bearer {CLIENTS['bob']}"})


def test_load_activates_a_model_on_a_worker_and_refuses_what_it_cannot_do(gateway) -> None:
    lite = next(m for m in get(gateway, "/models")["models"] if m["name"] == "compass-lite")
    active = lite["active_model"]["id"]
    assert call(gateway, "POST", "/model/compass-lite/load", json={"model_id": active}).status_code == 401
    unconfirmed = post(gateway, "/model/compass-lite/load", {"model_id": active}, status=409, headers=AUTH)["error"]
    assert "confirm" in unconfirmed["details"]  # the worker's own safeguard reaches the caller
    done = post(gateway, "/model/compass-lite/load", {"model_id": active, "confirm": True}, headers=AUTH)["data"]
    assert done["action"] == "activated" and done["worker"]["active"]["id"] == active
    assert post(gateway, "/model/codon/load", {}, headers=AUTH)["data"]["action"] == "none"  # already loaded
    fixed = post(gateway, "/model/codon/load", {"model_id": "x1"}, status=409, headers=AUTH)["error"]
    assert "no model activation" in fixed["details"]
    splice = post(gateway, "/model/splice/load", {}, status=409, headers=AUTH)["error"]
    assert "python -m services.worker.launch splice" in splice["details"]
    codon = post(gateway, "/model/codon/unload", {}, status=409, headers=AUTH)["error"]
    assert "SIGTERM" in codon["details"] and "pid" in codon["details"]


def test_load_and_unload_start_and_stop_a_replica_through_the_launcher(gateway) -> None:
    started = post(gateway, "/model/echo/load", {}, status=202, headers=AUTH)["data"]
    assert started["action"] == "launching"
    wait_until(lambda: "echo" in {m["name"] for m in get(gateway, "/models/loaded")["models"]}, timeout=60, what="echo")
    stopped = post(gateway, "/model/echo/unload", {}, headers=AUTH)["data"]
    assert stopped["action"] == "stopped" and stopped["pid"] == started["pid"]
    wait_until(
        lambda: "echo" not in {m["name"] for m in get(gateway, "/models/loaded")["models"]},
        timeout=30,
        what="echo gone",
    )


# -- MCP -------------------------------------------------------------------------------------------


def test_mcp_over_stdio_with_the_sdk_client(fleet) -> None:
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "gateway.mcp", "--registry", fleet["registry"].base_url],
        env=python_env(),
        cwd=str(REPO),
    )

    async def session() -> tuple[Any, ...]:
        async with Client(params, read_timeout_seconds=120) as client:
            tools = (await client.list_tools()).tools
            best = await client.call_tool("best_model", {"task_type": "likelihood", "sequence_type": "antibody"})
            design = await client.call_tool("optimise_codons", {"protein": GFP[:30], "host": "e_coli"})
            docked = await client.call_tool(
                "dock", {"protein_pdb": "ATOM", "ligand_smiles": "CCO", "center": [0, 0, 0], "size": [20, 20, 20]}
            )
            bad = await client.call_tool("embed_sequences", {"sequences": ["MK1"]})
            return tools, best, design, docked, bad

    tools, best, design, docked, bad = asyncio.run(session())
    by_name = {t.name: t for t in tools}
    expected = {"list_models", "best_model", "predict_affinity", "dock", "embed_sequences", "score_sequences"}
    expected |= {"optimise_codons", "find_splice_sites", "search_similar", "job_status", "score_variants"}
    assert expected <= set(by_name)
    assert by_name["best_model"].input_schema["properties"]["task_type"]["enum"][0] == "embedding"
    assert by_name["best_model"].description
    assert not best.is_error and best.structured_content["best_model"] == "antiberty"
    assert not design.is_error and design.structured_content["results"][0]["data"]["protein"] == GFP[:30]
    assert design.structured_content["served_by"]["service"] == "codon"
    assert docked.is_error and docked.structured_content["error"]["code"] == "MODEL_NOT_LOADED"
    assert "no instance serves capability docking" in docked.content[0].text
    assert bad.is_error and bad.structured_content["error"] == {
        "code": "INVALID_SEQUENCE",
        "message": "sequence 0 is not protein: letters '1' are outside ACDEFGHIKLMNPQRSTVWY",
        "status": 400,
    }


def test_mcp_over_streamable_http_on_the_gateway_port(gateway) -> None:
    from mcp import Client

    async def session() -> tuple[Any, ...]:
        async with Client(f"{gateway.base_url}/api/v1/mcp", read_timeout_seconds=120) as client:
            tools = (await client.list_tools()).tools
            models = await client.call_tool("list_models", {"loaded_only": True})
            missing = await client.call_tool("search_similar", {"collection": "ligands", "vectors": [[0.0, 1.0]]})
            return tools, models, missing

    tools, models, missing = asyncio.run(session())
    assert "predict_affinity" in {t.name for t in tools}
    assert {m["name"] for m in models.structured_content["models"]} >= set(WORKERS)
    assert (
        missing.is_error
        and "no instance serves capability vector-search" in missing.structured_content["error"]["message"]
    )


# -- last: it drains antiberty (and undoes it) -----------------------------------------------------


def test_best_changes_when_the_preferred_instance_is_drained(fleet, gateway) -> None:
    ask = {"task_type": "embedding", "sequence_type": "antibody"}
    assert post(gateway, "/models/best", ask)["data"]["best_model"] == "antiberty"
    drained = post(gateway, "/model/antiberty/unload", {"drain": True}, headers=AUTH)["data"]
    assert drained["action"] == "drained" and len(drained["instances"]) == 1
    try:
        assert "antiberty" not in {m["name"] for m in get(gateway, "/models/loaded")["models"]}
        listed = next(m for m in get(gateway, "/models")["models"] if m["name"] == "antiberty")
        assert listed["instances"][0]["draining"] is True and listed["loaded"] is False
        best = wait_until(
            lambda: (b := post(gateway, "/models/best", ask)["data"])["best_model"] == "hf" and b, timeout=10, what="hf"
        )
        assert "antiberty" in best["reason"]  # named as not usable now
        out = post(gateway, "/analyze", {**ask, "sequences": [TRASTUZUMAB_VH[:60]]})["data"]
        assert out["served_by"]["service"] == "hf"
    finally:
        requests.put(
            f"{fleet['registry'].base_url}/api/v1/services/{drained['instances'][0]}/maintenance",
            json={"enabled": False},
            headers=AUTH,
            timeout=10,
        )
    wait_until(lambda: post(gateway, "/models/best", ask)["data"]["best_model"] == "antiberty", timeout=10, what="back")


def test_gateway_registers_like_a_worker_with_its_capability(fleet, gateway) -> None:
    found = requests.get(
        f"{fleet['registry'].base_url}/api/v1/services", params={"capability": "agent-gateway"}, timeout=10
    ).json()["data"]["instances"]
    assert [i["base_url"] for i in found] == [gateway.base_url]
    assert found[0]["metadata"]["mcp_path"] == "/api/v1/mcp"
    assert requests.get(gateway.base_url + "/health/ready", timeout=5).ok
    assert b"worker_requests_total" in requests.get(gateway.base_url + "/metrics", timeout=5).content
