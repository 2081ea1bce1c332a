"""Packing featurised roots for a GPU machine, and the GPU plan that reads them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compass.data import FeatureSettings, load_root
from compass.data.pack import EXCLUDE_IDS_NAME, main
from compass.model.visnet import ViSNetConfig
from compass.train import ExperimentPlan
from tests.support import shared_data

GPU_PLAN = Path(__file__).resolve().parents[3] / "compass" / "weights" / "plans" / "compass-gpu.json"


def test_pack_writes_a_root_named_pt_that_loads_without_the_structures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = shared_data("pdbbind", "sample")
    ids = shared_data("pdbbind", "casf2016_core_ids.txt")
    out = tmp_path / "carry"
    assert main([str(root), "--out", str(out), "--exclude-ids", str(ids), "--cache-dir", str(tmp_path / "c")]) == 0
    assert f"{out / 'sample.pt'}" in capsys.readouterr().out
    packed = load_root(out / "sample.pt")
    direct = load_root(root, FeatureSettings(), progress=False)
    assert [g.key for g in packed.graphs] == [g.key for g in direct.graphs] and packed.graphs
    assert all(np.array_equal(a.pos, b.pos) for a, b in zip(packed.graphs, direct.graphs, strict=True))
    assert (out / EXCLUDE_IDS_NAME).read_text() == ids.read_text()


def test_pack_refuses_missing_roots_and_colliding_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "a" / "fep").mkdir(parents=True)
    (tmp_path / "b" / "fep").mkdir(parents=True)
    assert main([str(tmp_path / "a" / "fep"), str(tmp_path / "b" / "fep"), "--out", str(tmp_path / "o")]) == 2
    assert "collide" in capsys.readouterr().err


def test_gpu_plan_reads_what_pack_writes_with_the_default_visnet() -> None:
    plan = ExperimentPlan.from_json(GPU_PLAN)
    assert [Path(r).name for r in plan.data.roots] == ["fep.pt", "pdbqt_extra.pt"]
    assert {Path(r).parent for r in plan.data.roots} == {Path(plan.data.exclude_ids_file).parent}
    assert Path(plan.data.exclude_ids_file).name == EXCLUDE_IDS_NAME
    assert plan.data.feature == FeatureSettings()  # what pack featurises with
    config, default = ViSNetConfig.from_dict(plan.model.config), ViSNetConfig()
    assert (config.hidden_channels, config.num_layers, config.edges) == (
        default.hidden_channels,
        default.num_layers,
        default.edges,
    )
    assert plan.device == "cuda" and plan.optim.amp == "auto"
