"""The Dock page against a real dock worker in the session fleet (scoring by its compass-lite worker).

Vina runs at exhaustiveness 1 on benzamidine in the 1o3f example pocket, so a docking takes seconds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from rdkit import Chem

from tests.flashdock.apptest import by_label, open_page, texts
from tests.flashdock.fleet import instances, spawn_worker, wait_ready
from tests.support import Proc, wait_until

pytest.importorskip("vina")


@pytest.fixture(scope="module")
def dock_worker(fleet: dict[str, Any]) -> Iterator[Proc]:
    registry = fleet["registry"]
    args = ["-m", "docking.worker", "--state-dir", str(fleet["tmp"] / "dock-page"), "--drain-timeout", "5"]
    proc = wait_ready(spawn_worker(fleet["tmp"], registry, "dock-page", args), "dock", timeout=120)
    try:
        wait_until(lambda: any(i["service_name"] == "dock" for i in instances(registry)), timeout=20)
        yield proc
    finally:
        proc.stop()
        wait_until(lambda: not any(i["service_name"] == "dock" for i in instances(registry)), timeout=20)


def fill(at: Any, smiles: str) -> None:
    by_label(at.selectbox, "Example complex").set_value("1o3f")
    at.text_area(key="dock_smiles").input(smiles)
    by_label(at.radio, "Box").set_value("Reference ligand")
    at.number_input(key="dock_padding").set_value(2.0)
    at.number_input(key="dock_exh").set_value(1)
    at.number_input(key="dock_poses").set_value(2)
    at.number_input(key="dock_rings").set_value(2)


def test_dock_one_smiles_shows_poses_scores_and_the_3d_view(dock_worker: Proc) -> None:
    at = open_page("dock")
    fill(at, "NC(=N)c1ccccc1 benzamidine")
    at.run()
    at.button(key="dock_run").click().run(timeout=300)
    assert not at.exception, [e.value for e in at.exception]
    [frame] = at.dataframe
    row = frame.value.iloc[0]
    assert row["ligand"] == "benzamidine" and row["Vina (kcal/mol)"] < 0
    assert row["model"] == "compass-lite" and 0 < row["COMPASS pK"] < 15
    if row["80% low"] is not None:  # the fleet's compass-lite may carry no interval calibration
        assert row["80% low"] <= row["COMPASS pK"] <= row["80% high"]
    [view] = at.get("iframe")
    assert '"format": "sdf"' in view.proto.srcdoc and "benzamidine" in view.proto.srcdoc
    assert {b.label for b in at.get("download_button")} >= {"Best poses (SDF)", "Table (CSV)"}
    assert "served by **dock**" in texts(at)
    answer = at.session_state["dock"]["rows"][0]
    assert answer["params"]["ring_conformers"] == 2 and answer["starts"] == 1, "an aromatic-only ligand: one start"
    # The box is drawn with the pose, and the pose lies inside it.
    drawn = json.loads(re.search(r"const D = (\{.*?\});\n", view.proto.srcdoc).group(1))
    (centre, size), pose = drawn["box"], Chem.MolFromMolBlock(drawn["ligand"])
    assert all(
        abs(x - c) <= s / 2 + 0.5
        for xyz in pose.GetConformer().GetPositions()
        for x, c, s in zip(xyz, centre, size, strict=True)
    )
    assert "addBox" in view.proto.srcdoc

    # "Send this pose to Predict": the Predict page opens on that pose in its docked protein and scores it.
    by_label(at.button, "Send this pose to Predict").click().run(timeout=60)
    at.switch_page("views/predict.py").run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    assert by_label(at.radio, "Complex").value == "Docked pose"
    by_label(at.button, "Predict").click().run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    assert at.metric and "Prediction failed" not in texts(at) and "benzamidine_pose1.sdf" in texts(at)


def test_several_smiles_run_as_a_job_with_a_bad_one_refused(dock_worker: Proc) -> None:
    at = open_page("dock")
    fill(at, "NC(=N)c1ccccc1 bza\nC1CC(( broken")
    at.run()
    at.button(key="dock_run").click().run(timeout=60)
    assert "INVALID_SMILES" in texts(at) or "cannot parse" in texts(at)
    fill(at, "NC(=N)c1ccccc1 bza\nOc1ccccc1 phenol")
    at.run()
    at.button(key="dock_run").click().run(timeout=300)
    assert not at.exception, [e.value for e in at.exception]
    frame = at.dataframe[0].value
    assert sorted(frame["ligand"]) == ["bza", "phenol"] and (frame["Vina (kcal/mol)"] < 0).all()
    assert "job completed" in texts(at)
