"""Issue 18, the workers' half, against real processes on loopback.

* rate limits key on an issued client token, else the peer address (item 7);
* tokens come from files, never the command line (item 10);
* the AntiBERTy worker admits work by cost: 413 past a request's budget, 429 past a client's,
  and a short request is answered while a long one runs (item 6); non-ASCII letters are refused;
* the COMPASS worker refuses short ATOM lines, fractional ligand indexes and dataset indexes
  that point outside the dataset, each with a 400 or a reason in the report (items 5 and 10).
"""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from services.client import ClientError, Router
from services.common.cli import from_params
from services.common.client_tokens import main as client_tokens_main
from services.common.settings import ClientSettings
from tests.integration.test_compass_worker import api, build_checkpoints, complex_files, data, start_compass
from tests.support import Proc, python_env, read_json_line, spawn, start_registry, stop_all, wait_until
from tests.unit.seqmodels.fixtures import TRASTUZUMAB_VH


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("worker-security")


@pytest.fixture(scope="module")
def client_tokens(tmp: Path) -> dict[str, Any]:
    """Tokens issued with the operator's CLI: ``{"file": path, "alice": token, ...}``."""
    path = tmp / "client-tokens.txt"
    issued: dict[str, Any] = {"file": path}
    for name in ("alice", "bob", "carol"):
        out = io.StringIO()
        with redirect_stdout(out):
            assert client_tokens_main(["issue", name, "--file", str(path)]) == 0
        issued[name] = out.getvalue().strip()
    assert issued["alice"] not in path.read_text() and oct(path.stat().st_mode & 0o777) == "0o600"
    return issued


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def start_worker(tmp: Path, name: str, *args: str, env: dict[str, str] | None = None) -> Proc:
    proc = spawn([*args, "--port", "0"], tmp / f"{name}.log", "", env=env or python_env(OMP_NUM_THREADS="1"))
    try:
        proc.base_url = read_json_line(proc, "event", timeout=120)["base_url"]
        wait_until(lambda: requests.get(proc.base_url + "/health/ready", timeout=2).ok, timeout=120, what=name)
    except BaseException:
        proc.stop()
        raise
    return proc


# -- item 7: who a rate limit counts ------------------------------------------------------------


def test_rate_limits_key_on_an_issued_token_else_the_peer(tmp: Path, client_tokens: dict[str, Any]) -> None:
    echo = start_worker(
        tmp, "echo", "-m", "services.worker.echo", "--rate-limit-per-min", "2",
        "--client-tokens-file", str(client_tokens["file"]),
    )  # fmt: skip
    try:
        url = echo.base_url + "/predict"

        def status(headers: dict[str, str]) -> int:
            return requests.post(url, json={"x": 1}, headers=headers, timeout=10).status_code

        # No token: rotating X-Client-ID or a made-up bearer does not escape the peer's limit.
        anon = [status({"X-Client-ID": f"rotating-{i}"}) for i in range(2)]
        assert anon == [200, 200]
        assert status({"X-Client-ID": "rotating-9"}) == 429
        assert status({"Authorization": "Bearer made-up", "X-Client-ID": "alice"}) == 429
        # Spoofing alice's name from the peer address spent the peer's tokens, never alice's.
        alice = bearer(client_tokens["alice"])
        assert [status(alice), status(alice), status(alice)] == [200, 200, 429]
        # A token holder may name sub-clients: each gets its own bucket; bob is untouched by alice.
        assert status(bearer(client_tokens["alice"], **{"X-Client-ID": "ana"})) == 200
        assert status(bearer(client_tokens["bob"])) == 200
        info = requests.get(echo.base_url + "/model/info", timeout=5).json()["data"]["runtime"]
        assert info["rate_limit_key"] == "issued client token, else peer address"
    finally:
        echo.stop()


def test_a_router_with_a_client_token_is_counted_as_that_client(tmp: Path, client_tokens: dict[str, Any]) -> None:
    """``CLIENT_TOKEN`` reaches the worker through the Router: its calls spend the token's bucket."""
    registry = start_registry(tmp, name="registry-client-token")
    echo = start_worker(
        tmp, "echo-routed", "-m", "services.worker.echo", "--rate-limit-per-min", "2",
        "--client-tokens-file", str(client_tokens["file"]), "--registry", registry.base_url,
    )  # fmt: skip
    routers: list[Router] = []

    def router(token: str) -> Router:
        settings = from_params(ClientSettings, {"registry_urls": [registry.base_url], "client_token": token})
        routers.append(Router.from_settings(settings, deadline_s=3.0))
        return routers[-1]

    try:
        anon, made_up, carol = router(""), router("made-up-token"), router(client_tokens["carol"])
        wait_until(lambda: anon.discovery.refresh(name="echo").instances, timeout=30, what="echo registered")
        assert [anon.predict("echo", {"x": i}).status_code for i in range(2)] == [200, 200]
        for peer in (anon, made_up):  # the peer's bucket is spent; an unissued token does not escape it
            with pytest.raises(ClientError):
                peer.predict("echo", {"x": 3})
        assert [carol.predict("echo", {"x": i}).status_code for i in range(2)] == [200, 200]
    finally:
        for r in routers:
            r.close()
        stop_all([echo, registry])


# -- item 10: tokens from files, not the command line ---------------------------------------------


def test_registry_and_worker_read_their_token_from_a_file(tmp: Path) -> None:
    secret = "file-borne-token-7d1f"
    path = tmp / "registry-token"
    path.write_text(secret + "\n")
    registry = start_registry(tmp, "--token-file", str(path), name="registry-token-file")
    env = python_env(REGISTRY_TOKEN_FILE=str(path), OMP_NUM_THREADS="1")
    worker = start_worker(
        tmp, "echo-token-file", "-m", "services.worker.echo", "--registry", registry.base_url, env=env
    )
    try:
        listed = registry.base_url + "/api/v1/services?name=echo"
        wait_until(lambda: requests.get(listed, timeout=5).json()["data"]["instances"], timeout=30, what="registered")
        unauthorised = requests.post(registry.base_url + "/api/v1/services/register", json={}, timeout=5)
        assert unauthorised.status_code == 401  # the registry really requires the token it read
        for proc in (registry, worker):
            assert secret not in " ".join(psutil.Process(proc.pid).cmdline())
    finally:
        stop_all([worker, registry])


# -- items 6 and 10 on the AntiBERTy worker ---------------------------------------------------------


@pytest.fixture(scope="module")
def antiberty(tmp: Path, client_tokens: dict[str, Any]) -> Iterator[Proc]:
    pytest.importorskip("antiberty")
    proc = start_worker(
        tmp, "antiberty", "-m", "seqmodels.antiberty", "--torch-threads", "1",
        "--max-request-cost", "4000", "--max-client-cost", "6000", "--pass-residues", "256",
        "--client-tokens-file", str(client_tokens["file"]), "--drain-timeout", "1",
    )  # fmt: skip
    yield proc
    proc.stop()


def test_non_ascii_letters_that_upper_case_into_amino_acids_are_400(antiberty: Proc) -> None:
    for sequence in ("EVQ\u0131VES", "\u00dfEVQ", "EVQ\ufb00"):  # ı → I, ß → SS, ﬀ → FF
        resp = requests.post(antiberty.base_url + "/predict", json={"sequence": sequence}, timeout=30)
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "INVALID_SEQUENCE", sequence


def test_a_request_over_its_cost_budget_is_413_with_the_reason(antiberty: Proc, client_tokens: dict) -> None:
    body = {"sequences": [TRASTUZUMAB_VH[:30]] * 5, "task_type": "pseudo_log_likelihood"}  # 5 × 30² = 4,500
    resp = requests.post(antiberty.base_url + "/predict/batch", json=body, timeout=30)
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert "4,500 residue-passes" in resp.json()["error"]["details"]
    info = requests.get(antiberty.base_url + "/model/info", timeout=5).json()["data"]
    assert (info["runtime"]["max_request_cost"], info["runtime"]["cost_unit"]) == (4000, "residue-passes")


def test_a_clients_work_in_flight_is_bounded_and_a_short_request_is_not_stuck_behind_it(
    antiberty: Proc, client_tokens: dict[str, Any]
) -> None:
    url = antiberty.base_url + "/predict"
    long_pll = {"sequence": TRASTUZUMAB_VH[:60], "task_type": "pseudo_log_likelihood"}  # 3,600: seconds here
    answers: dict[str, requests.Response] = {}
    alice = bearer(client_tokens["alice"])
    first = threading.Thread(target=lambda: answers.update(long=requests.post(url, json=long_pll, headers=alice)))
    first.start()
    try:
        passes = 'seqmodel_batch_size_count{service="antiberty",task_type="pseudo_log_likelihood"}'
        wait_until(
            lambda: passes in requests.get(antiberty.base_url + "/metrics", timeout=5).text,
            timeout=60,
            what="the long PLL's first pass",
        )
        again = requests.post(url, json=long_pll, headers=alice, timeout=30)  # 7,200 in flight > 6,000
        assert again.status_code == 429 and again.json()["error"]["code"] == "RATE_LIMITED"
        assert "in flight" in again.json()["error"]["details"] and float(again.headers["Retry-After"]) >= 1
        short = {"sequence": TRASTUZUMAB_VH[:20], "task_type": "embedding", "options": {"per_residue": False}}
        quick = requests.post(url, json=short, headers=bearer(client_tokens["carol"]), timeout=60)
        assert quick.status_code == 200 and quick.json()["data"]["dim"] == 512
        assert first.is_alive(), "the short embedding was answered while the long PLL still ran"
    finally:
        first.join(timeout=120)
    assert answers["long"].status_code == 200 and answers["long"].json()["data"]["num_tokens"] == 60


# -- items 5 and 10 on the COMPASS worker -----------------------------------------------------------


@pytest.fixture(scope="module")
def compass(tmp: Path) -> Iterator[dict[str, Any]]:
    lite, _ = build_checkpoints(tmp)
    registry = start_registry(tmp, name="compass-registry")
    worker = start_compass(tmp, registry, "lite", "compass-lite", tmp / "state", "--weights", str(lite))
    yield {"worker": worker, "state": tmp / "state"}
    stop_all([worker, registry])


SHORT_ATOM = "ATOM      1  N   ALA A   1      11.104"


def test_a_short_atom_line_is_400_and_fails_only_its_own_batch_item(compass: dict[str, Any]) -> None:
    worker = compass["worker"]
    protein, ligand = complex_files("1a30")
    broken = protein.replace("\nATOM  ", f"\n{SHORT_ATOM}\nATOM  ", 1)
    resp = requests.post(worker.base_url + "/predict", json={"protein_pdb": broken, "ligand_sdf": ligand}, timeout=30)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "INVALID_STRUCTURE"
    assert "coordinates need 54" in resp.json()["error"]["details"]
    items = [
        {"protein_pdb": protein, "ligand_sdf": ligand},
        {"protein_pdb": broken, "ligand_sdf": ligand},
        {"protein_pdb": protein, "ligand_sdf": ligand, "ligand_index": 1.9},
    ]
    batch = data(requests.post(worker.base_url + "/predict/batch", json={"items": items}, timeout=60))
    results = batch["results"]
    assert results[0]["success"] and results[0]["data"]["pK"] > 0
    assert results[1]["error"]["code"] == "INVALID_STRUCTURE" and results[2]["error"]["code"] == "INVALID_REQUEST"


def test_a_fractional_ligand_index_is_refused_not_read_as_another_record(compass: dict[str, Any]) -> None:
    protein, ligand = complex_files("1a30")
    files = {"protein": ("p.pdb", protein), "ligand": ("l.sdf", ligand)}
    resp = requests.post(compass["worker"].base_url + "/predict", files=files, data={"ligand_index": "1.9"}, timeout=30)
    assert resp.status_code == 400 and "whole number" in resp.json()["error"]["details"]


def test_a_dataset_index_pointing_outside_its_folder_has_those_rows_refused(compass: dict[str, Any]) -> None:
    worker = compass["worker"]
    protein, ligand = complex_files("1a30")
    other = compass["state"].resolve() / "elsewhere"
    other.mkdir(parents=True, exist_ok=True)
    (other / "p.pdb").write_text(protein)
    header = "group,series,protein,sdf_index,ligand,pK,protein_file,ligands_file\n"
    rows = [
        "g,s,P,0,a,6.0,s/p.pdb,s/l.sdf",
        "g,s,P,1,b,6.0,../../elsewhere/p.pdb,s/l.sdf",
        f"g,s,P,2,c,6.0,{other / 'p.pdb'},s/l.sdf",
        "g,s,P,3,d,6.0,s/p.pdb,../../../../../../etc/hostname",
    ]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("fep1/index.csv", header + "\n".join(rows) + "\n")
        zf.writestr("fep1/s/p.pdb", protein)
        zf.writestr("fep1/s/l.sdf", ligand)
    files = {"file": ("fep1.zip", buf.getvalue(), "application/zip")}
    record = data(api(worker, "POST", "/data/datasets", files=files, data={"name": "escape"}), 202)
    done = wait_until(
        lambda: (d := data(api(worker, "GET", f"/data/datasets/{record['id']}")))["status"] != "validating" and d,
        timeout=60,
        what="validation",
    )
    assert done["n_complexes"] == 1, done
    skipped = {s["key"]: s["reason"] for s in done["report"]["skipped"]}
    assert set(skipped) == {"g/s/1", "g/s/2", "g/s/3"}
    assert all("outside the dataset folder" in reason for reason in skipped.values())
