"""The dock worker as real processes on loopback: a registry, a compass-lite worker, a dock worker.

Real Vina runs at exhaustiveness 1 on a small ligand (benzamidine in trypsin's S1 pocket, the
example complex 1o3f) so each docking takes seconds. No COMPASS worker runs, so scoring falls
back to compass-lite through the Router: the answers must say so.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from rdkit import Chem
from rdkit.Chem import AllChem

from tests.flashdock.fleet import spawn_worker, wait_ready
from tests.support import (
    AUTH,
    REGISTRY_FLAGS,
    REPO,
    Proc,
    python_env,
    start_registry,
    wait_until,
)

pytest.importorskip("vina")

EXAMPLE = REPO / "examples" / "complexes" / "1o3f"
PROTEIN = (EXAMPLE / "1o3f_pocket.pdb").read_text()
REFERENCE = (EXAMPLE / "1o3f_ligand.sdf").read_text()
BENZAMIDINE = "NC(=N)c1ccccc1"
FAST = {"exhaustiveness": 1, "n_poses": 3, "seed": 1}
BOX = {"reference_ligand_sdf": REFERENCE, "padding": 2.0}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("docking")
    registry = start_registry(tmp, *REGISTRY_FLAGS)
    procs = [registry]
    try:
        lite = ["-m", "compass.service.worker", "--model", "compass-lite", "--state-dir", str(tmp / "compass")]
        procs.append(wait_ready(spawn_worker(tmp, registry, "lite", lite), "lite"))
        dock = ["-m", "docking.worker", "--state-dir", str(tmp / "dock"), "--drain-timeout", "5"]
        procs.append(wait_ready(spawn_worker(tmp, registry, "dock", dock), "dock"))
        yield {"tmp": tmp, "registry": registry, "dock": procs[-1]}
    finally:
        for proc in reversed(procs):
            proc.stop()


def post(proc: Proc, path: str, **kwargs: Any) -> requests.Response:
    return requests.post(proc.base_url + path, timeout=300, **kwargs)


def ok_data(resp: requests.Response, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["success"] is True
    return body["data"]


def check_poses(data: dict[str, Any], heavy_atoms: int) -> list[Chem.Mol]:
    """Poses RDKit reads, the right molecule, inside the box, best Vina score first."""
    center, size = np.array(data["box"]["center"]), np.array(data["box"]["size"])
    mols = []
    for pose in data["poses"]:
        mol = Chem.MolFromMolBlock(pose["sdf"], removeHs=False)
        assert mol is not None
        assert mol.GetNumHeavyAtoms() == heavy_atoms
        heavy = mol.GetConformer().GetPositions()[[a.GetAtomicNum() > 1 for a in mol.GetAtoms()]]
        assert np.all(np.abs(heavy - center) <= size / 2 + 0.5), "a pose atom lies outside the box"
        mols.append(mol)
    scores = [p["vina_score"] for p in data["poses"]]
    assert scores == sorted(scores) and scores[0] < 0
    assert [p["rank"] for p in data["poses"]] == list(range(1, len(scores) + 1))
    return mols


def test_dock_smiles_poses_in_box_scored_by_fallback(mesh: dict[str, Any]) -> None:
    body = {"protein_pdb": PROTEIN, "ligand_smiles": BENZAMIDINE, "box": BOX, **FAST}
    data = ok_data(post(mesh["dock"], "/dock", json=body))
    check_poses(data, heavy_atoms=9)
    assert data["box"]["source"] == "reference_ligand" and max(data["box"]["size"]) < 40
    assert data["scored_by"] == "compass-lite" and data["fallback_used"] is True
    for pose in data["poses"]:
        assert pose["scored_by"] == "compass-lite"
        assert isinstance(pose["pK"], float) and 0 < pose["pK"] < 15
        assert pose["interval"]["low"] <= pose["pK"] <= pose["interval"]["high"]
    assert data["smiles"] == "NC(=[NH2+])c1ccccc1", "benzamidine is protonated at pH 7.4"
    assert {"vina", "maps", "receptor", "total"} <= set(data["timings_ms"])


def test_dock_ring_conformers_pools_starts(mesh: dict[str, Any]) -> None:
    body = {"protein_pdb": PROTEIN, "ligand_smiles": "NC(=[NH2+])c1ccc(cc1)C1CCC(O)CC1", "box": BOX, **FAST}
    data = ok_data(post(mesh["dock"], "/dock", json={**body, "ring_conformers": 2, "score": False}))
    check_poses(data, heavy_atoms=16)
    assert data["params"]["ring_conformers"] == 2 and data["starts"] == 2
    assert "conformers" in data["timings_ms"]
    tags = {p["sdf"].split("<start_conformer>")[1].splitlines()[1].strip() for p in data["poses"]}
    assert tags <= {"0", "1"}, "every pose says which start it came from"


def test_predict_multipart_sdf_uses_the_receptor_cache(mesh: dict[str, Any]) -> None:
    mol = Chem.AddHs(Chem.MolFromSmiles("NC(=[NH2+])c1ccccc1"))
    AllChem.EmbedMolecule(mol, randomSeed=3)
    files = {"protein": ("p.pdb", PROTEIN), "ligand": ("lig.sdf", Chem.MolToMolBlock(mol))}
    box = {"center": [40.5, -1.0, 31.0], "size": [14.0, 14.0, 14.0]}
    form = {"task_type": "dock", "box": json.dumps(box), "score": "false", **{k: str(v) for k, v in FAST.items()}}
    data = ok_data(post(mesh["dock"], "/predict", files=files, data=form))
    check_poses(data, heavy_atoms=9)
    assert data["box"] == {**box, "source": "center_size"}
    assert data["receptor"]["cached"] is True, "the same protein was prepared by the first test"
    assert data["scored_by"] is None and all(p["pK"] is None for p in data["poses"])


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        ({"ligand_smiles": "C1CC(("}, "INVALID_SMILES", "cannot parse"),
        ({"ligand_smiles": "C1#CC1"}, "INVALID_STRUCTURE", "cannot embed"),
        ({"ligand_smiles": "C" * 40}, "INVALID_STRUCTURE", "rotatable bonds"),
        ({"box": {"center": [0, 0, 0], "size": [41, 20, 20]}}, "INVALID_REQUEST", "cap of 40"),
        ({"protein_pdb": "HEADER    EMPTY\nEND\n"}, "INVALID_STRUCTURE", "no ATOM records"),
        ({"exhaustiveness": 65}, "INVALID_REQUEST", "exhaustiveness"),
        ({"n_poses": 21}, "INVALID_REQUEST", "n_poses"),
        ({"ring_conformers": 9}, "INVALID_REQUEST", "ring_conformers"),
        ({"ligand_sdf": REFERENCE}, "INVALID_REQUEST", "exactly one"),
        ({"box": {"residues": ["Z:9999"]}}, "INVALID_REQUEST", "not in the protein"),
    ],
)
def test_bad_input_is_a_400_in_the_envelope(
    mesh: dict[str, Any], change: dict[str, Any], code: str, words: str
) -> None:
    body = {"protein_pdb": PROTEIN, "ligand_smiles": BENZAMIDINE, "box": BOX, **FAST, **change}
    resp = post(mesh["dock"], "/dock", json=body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == code and words in error["details"]


def test_registered_with_docking_capability_and_limits(mesh: dict[str, Any]) -> None:
    found = requests.get(mesh["registry"].base_url + "/api/v1/services", params={"name": "dock"}, timeout=5).json()
    instances = found["data"]["instances"]
    assert instances and all("docking" in inst["metadata"]["capabilities"] for inst in instances)
    info = requests.get(mesh["dock"].base_url + "/model/info", timeout=5).json()["data"]
    assert info["limits"]["max_box_side_angstrom"] == 40 and info["limits"]["max_rotatable_bonds"] == 32


def job_url(mesh: dict[str, Any], job_id: str = "") -> str:
    return mesh["dock"].base_url + "/api/v1/docking/jobs" + (f"/{job_id}" if job_id else "")


def test_job_docks_every_ligand_with_progress(mesh: dict[str, Any]) -> None:
    body = {"protein_pdb": PROTEIN, "ligands": [BENZAMIDINE, "Oc1ccccc1"], "names": ["bza", "phenol"], "box": BOX}
    body.update(FAST, score=False, ring_conformers=2)  # no saturated ring: one start each, passed through
    assert requests.post(job_url(mesh), json=body, timeout=30).status_code == 401, "creating a job needs the token"
    job = ok_data(requests.post(job_url(mesh), json=body, headers=AUTH, timeout=30), 201)

    def finished() -> dict[str, Any] | None:
        view = requests.get(job_url(mesh, job["id"]), timeout=10).json()["data"]
        return view if view["status"] != "running" else None

    view = wait_until(finished, timeout=240, interval=0.5, what="the docking job")
    assert view["status"] == "completed", view
    assert view["progress"]["done"] == 2 and view["progress"]["total"] == 2
    assert [r["name"] for r in view["results"]] == ["bza", "phenol"] and view["n_results"] == 2
    assert all(r["status"] == "success" and r["poses"] for r in view["results"])
    assert all(r["params"]["ring_conformers"] == 2 and r["starts"] == 1 for r in view["results"])


def test_cancel_stops_the_vina_process(mesh: dict[str, Any]) -> None:
    big = {"center": [40.5, -1.0, 31.0], "size": [30.0, 30.0, 30.0]}
    ligands = ["CC(C)CC(NC(=O)C(CC(=O)O)NC(=O)C(N)CCC(=O)O)C(=O)O"] * 3
    body = {"protein_pdb": PROTEIN, "ligands": ligands, "box": big, "exhaustiveness": 64, "score": False}
    job = ok_data(requests.post(job_url(mesh), json=body, headers=AUTH, timeout=30), 201)

    def docking() -> bool:
        view = requests.get(job_url(mesh, job["id"]), timeout=10).json()["data"]
        return view["status"] == "running" and bool((view["progress"] or {}).get("current"))

    wait_until(docking, timeout=60, interval=0.2, what="the job to start docking")
    pid = requests.get(job_url(mesh, job["id"]), timeout=10).json()["data"]["pid"]
    resp = requests.delete(job_url(mesh, job["id"]), headers=AUTH, timeout=10)
    assert resp.status_code == 202, resp.text

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_until(gone, timeout=5, interval=0.1, what="the Vina process to end")
    view = wait_until(
        lambda: (v := requests.get(job_url(mesh, job["id"]), timeout=10).json()["data"])["status"] != "running" and v,
        timeout=10,
        what="the cancelled status",
    )
    assert view["status"] == "cancelled" and view["n_results"] == 0


def test_pockets_are_detected(mesh: dict[str, Any]) -> None:
    pytest.importorskip("pyKVFinder")
    data = ok_data(post(mesh["dock"], "/api/v1/docking/pockets", json={"protein_pdb": PROTEIN}))
    assert data["pockets"], "trypsin's pocket file has cavities"
    volumes = [p["volume"] for p in data["pockets"]]
    assert volumes == sorted(volumes, reverse=True) and all(len(p["center"]) == 3 for p in data["pockets"])


def run_screen(mesh: dict[str, Any], out: Path, library: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "docking.screen", "--registry", mesh["registry"].base_url, "--out", str(out)]
    args += ["--protein", str(EXAMPLE / "1o3f_pocket.pdb"), "--ligands", str(library)]
    args += ["--box-ligand", str(EXAMPLE / "1o3f_ligand.sdf"), "--padding", "2", "--exhaustiveness", "1"]
    args += ["--n-poses", "2", "--no-score", "--concurrency", "1", "--no-progress", "--ring-conformers", "2"]
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=python_env(), cwd=REPO
    )


def test_screen_resumes_after_kill9_and_ranks(mesh: dict[str, Any]) -> None:
    library = mesh["tmp"] / "lib.smi"
    library.write_text(f"{BENZAMIDINE} bza\nOc1ccccc1 phenol\nCc1ccccc1N toluidine\n")
    out = mesh["tmp"] / "screen"
    first = run_screen(mesh, out, library)
    results = out / "results"
    wait_until(lambda: len(list(results.glob("*.json"))) >= 1, timeout=120, interval=0.2, what="a first result")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    done_before = {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")}
    second = run_screen(mesh, out, library)
    output, _ = second.communicate(timeout=240)
    assert second.returncode == 0, output
    summary = json.loads(output.strip().splitlines()[-1])
    assert summary["skipped"] == len(done_before) and summary["succeeded"] == 3 - len(done_before)
    assert {p.name: p.stat().st_mtime_ns for p in results.glob("*.json") if p.name in done_before} == done_before
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[0].startswith("rank,index,name")
    scores = [float(r.split(",")[4]) for r in rows[1:]]
    assert scores == sorted(scores)
    poses = [m for m in Chem.SDMolSupplier(str(out / "poses.sdf")) if m is not None]
    assert sorted(m.GetProp("_Name") for m in poses) == ["bza", "phenol", "toluidine"]
    assert json.loads((out / "screen.json").read_text())["ring_conformers"] == 2
