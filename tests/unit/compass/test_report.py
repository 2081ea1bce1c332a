"""Evaluation artefacts: predictions.csv, metrics.json with DESIGN's keys, a real PNG."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from compass.data.graph import NUM_ELEMENTS, ComplexGraph, ComplexRecord
from compass.train.report import PREDICTION_COLUMNS, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _case(n: int = 24, fep: bool = True) -> tuple[list[ComplexRecord], list[ComplexGraph], np.ndarray]:
    rng = np.random.default_rng(0)
    records, graphs = [], []
    for i in range(n):
        pk = float(rng.normal(6.5, 1.2))
        fep_pk = pk + float(rng.normal(0, 0.5)) if fep and i % 3 else None
        series = f"series-{i % 3}"
        records.append(ComplexRecord(f"k{i}", "", [], pk, f"prot{i % 3}", series, f"mol{i}", fep_plus_pK=fep_pk))
        n_lig = int(rng.integers(10, 40))
        is_lig = torch.tensor([True] * n_lig + [False] * 5)
        graphs.append(ComplexGraph(f"k{i}", NUM_ELEMENTS * is_lig.long(), torch.zeros(n_lig + 5, 3), is_lig, pk))
    pred = np.array([r.pK for r in records]) + rng.normal(0, 0.6, n)
    return records, graphs, pred


def test_report_writes_the_three_files_with_designs_keys(tmp_path: Path) -> None:
    records, graphs, pred = _case()
    survival = {"root": "x", "n_index": 26, "featurised": 24, "n_failed": 2, "failed": [{"key": "a", "reason": "r"}]}
    metrics = write_report(
        tmp_path, records, pred, graphs, survival=survival, model={"kind": "compass-lite"}, title="t"
    )

    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data == metrics
    for key in ("n_molecules", "n_failed", "pooled", "per_series_mean", "anchors", "survival", "model"):
        assert key in data
    assert data["n_molecules"] == 24 and data["n_failed"] == 2 and data["model"]["kind"] == "compass-lite"
    assert set(data["pooled"]) == {"pearson", "spearman", "rmse", "mae"}
    assert set(data["per_series_mean"]) == {"spearman", "pearson", "centred_rmse"}
    assert set(data["anchors"]) == {"fep_plus", "heavy_atoms"}
    assert set(data["anchors"]["fep_plus"]) == set(data["anchors"]["heavy_atoms"])
    assert data["anchors"]["fep_plus"]["n_molecules"] == 16  # only molecules with a value
    assert "kcal_mol" in data and "failed" not in data["survival"]

    with (tmp_path / "predictions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == PREDICTION_COLUMNS and len(rows) == 24
    assert rows[0]["fep_plus"] == "" and rows[1]["fep_plus"] != ""
    assert int(rows[0]["heavy_atoms"]) == graphs[0].num_ligand_atoms
    assert float(rows[5]["prediction"]) == pytest.approx(pred[5], abs=1e-4)

    png = (tmp_path / "scatter.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 2000


def test_report_without_fep_values_writes_null_not_nan(tmp_path: Path) -> None:
    records, graphs, pred = _case(8, fep=False)
    write_report(tmp_path, records, pred, graphs)
    text = (tmp_path / "metrics.json").read_text()
    assert "NaN" not in text
    data = json.loads(text)
    assert data["anchors"]["fep_plus"]["n_molecules"] == 0 and data["anchors"]["fep_plus"]["pooled"]["pearson"] is None
    assert data["n_failed"] == 0 and "kcal_mol" not in data
    assert (tmp_path / "scatter.png").read_bytes().startswith(PNG_MAGIC)


def test_report_with_a_heavy_atom_line_scores_its_errors_and_without_graphs_keeps_the_keys(tmp_path: Path) -> None:
    records, graphs, pred = _case(12)
    data = write_report(tmp_path / "a", records, pred, graphs, heavy_atom_line=(0.1, 4.0))
    assert data["anchors"]["heavy_atoms"]["pooled"]["rmse"] > 0 and data["anchors"]["heavy_atoms"]["calibration"]
    bare = write_report(tmp_path / "b", records, pred)
    assert set(bare["anchors"]) == {"fep_plus", "heavy_atoms"} and bare["anchors"]["heavy_atoms"]["n_molecules"] == 0


def test_report_rejects_misaligned_inputs(tmp_path: Path) -> None:
    records, graphs, pred = _case(4)
    with pytest.raises(ValueError, match="aligned"):
        write_report(tmp_path, records, pred[:3], graphs)
