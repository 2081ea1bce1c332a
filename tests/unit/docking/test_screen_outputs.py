"""The screen's library reader, ranking and outputs, from result files in the batch runner's format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem

from docking import ligand as lig
from docking import screen
from docking.scoring import crop_protein


def pose_sdf(smiles: str) -> str:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    return lig.mol_to_sdf(mol)


def write(folder: Path, name: str, doc: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(doc))


def test_ranked_csv_and_best_poses(tmp_path: Path) -> None:
    results = tmp_path / "results"
    for i, (smiles, score, pk) in enumerate([("CCO", -3.0, 4.0), ("c1ccccc1O", -5.5, None), ("CCN", -4.0, 5.0)]):
        interval = None if pk is None else {"low": pk - 1, "high": pk + 1, "level": 0.8}
        pose = {
            "rank": 1,
            "vina_score": score,
            "sdf": pose_sdf(smiles),
            "pK": pk,
            "interval": interval,
            "scored_by": "compass" if pk else None,
        }
        write(
            results,
            f"{i:06d}.json",
            {
                "status": "success",
                "output": {"poses": [pose], "smiles": smiles},
                "metadata": {"index": i, "name": f"L{i}"},
            },
        )
    write(
        results,
        "000003.json",
        {
            "status": "error",
            "error": {"code": "INVALID_SMILES", "details": "bad"},
            "metadata": {"index": 3, "name": "L3"},
        },
    )
    ranked = screen.write_outputs(tmp_path)
    assert [r["name"] for r in ranked] == ["L1", "L2", "L0", "L3"]
    assert [r["rank"] for r in ranked] == [1, 2, 3, None]
    rows = (tmp_path / "results.csv").read_text().splitlines()
    assert rows[1].startswith("1,1,L1,success,-5.5") and "INVALID_SMILES: bad" in rows[4]
    assert ",10000.0,compass," in rows[2], "pK 5 → Kd 10 µM"
    names = [m.GetProp("_Name") for m in Chem.SDMolSupplier(str(tmp_path / "poses.sdf"))]
    assert names == ["L1", "L2", "L0"]


def test_library_reader(tmp_path: Path) -> None:
    smi = tmp_path / "lib.smi"
    smi.write_text("# a comment\nCCO ethanol\n\nc1ccccc1\n")
    assert screen.read_library(smi) == [
        {"name": "ethanol", "ligand_smiles": "CCO"},
        {"name": "c1ccccc1", "ligand_smiles": "c1ccccc1"},
    ]
    sdf = tmp_path / "lib.sdf"
    sdf.write_text(pose_sdf("CCO") + pose_sdf("CCN"))
    entries = screen.read_library(sdf)
    assert [e["name"] for e in entries] == ["record-0", "record-1"] and "M  END" in entries[0]["ligand_sdf"]


def test_crop_keeps_whole_residues_near_the_points() -> None:
    lines = [
        "ATOM      1  N   ALA A   1       0.000   0.000   0.000  1.00  0.00           N",
        "ATOM      2  CA  ALA A   1      30.000   0.000   0.000  1.00  0.00           C",
        "ATOM      3  N   GLY A   2      50.000   0.000   0.000  1.00  0.00           N",
    ]
    cropped = crop_protein("\n".join(lines), np.array([[1.0, 0.0, 0.0]]), 5.0)
    assert cropped.count("ATOM") == 2 and "GLY" not in cropped


def test_screen_spreads_ligands_by_dockings_in_flight() -> None:
    """Dockings vary from seconds to minutes, so the screen balances on in-flight counts unless told otherwise."""
    from services.common.cli import command, parse
    from services.common.settings import ClientSettings

    cmd = command("screen", screen.screen_params(ClientSettings()))
    required = ["--protein", "p.pdb", "--ligands", "l.smi", "--out", "o", "--box-ligand", "r.sdf"]
    assert parse(cmd, required).params["balancer"] == "least_connections"
    assert parse(cmd, [*required, "--balancer", "p2c"]).params["balancer"] == "p2c"
