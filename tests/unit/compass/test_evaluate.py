"""Evaluation end to end with compass-lite (fast): fep-lpo folds, CASF scoring, leak refusal, CLIs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from compass import evaluate, predict
from compass.data.similarity import protein_sequence, related, shared_fraction, words
from compass.train.plan import ExperimentPlan
from tests.support import shared_data

LITE = {"estimator": "hgb", "max_iter": 40, "n_jobs": 1}


def _plan(tmp_path: Path, roots: list[str], split: str = "group-holdout") -> ExperimentPlan:
    data = {
        "seed": 0,
        "data": {"roots": roots, "cache_dir": str(tmp_path / "cache")},
        "split": {"kind": split, "val_fraction": 0.1, "seed": 0},
        "model": {"kind": "compass-lite", "config": LITE},
        "runs_dir": str(tmp_path / "runs"),
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    return ExperimentPlan.from_json(path)


def test_fep_lpo_predicts_every_molecule_out_of_fold_and_leaves_relatives_out(tmp_path: Path) -> None:
    fep, extra = shared_data("fep"), shared_data("pdbqt_extra")
    plan = _plan(tmp_path, [str(fep), str(extra)])
    out = tmp_path / "lpo"
    metrics = evaluate.fep_lpo(plan, fep, out, folds=5, seed=0, progress=False)
    assert metrics["n_failed"] == 0 and metrics["n_records"] == 1141
    # Every record predicted by a model that never saw its protein.
    folds = metrics["folds"]
    assert len(folds) == 5 and sum(f["n_test"] for f in folds) == 1141
    seen: set[str] = set()
    for f in folds:
        assert not seen & set(f["proteins"])
        seen |= set(f["proteins"])
    # BACE, thrombin, HSP90... have PDBbind relatives in pdbqt_extra: some fold must leave them out.
    assert sum(f["n_related_left_out"] for f in folds) > 20
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == 1141 and all(r["prediction"] not in ("", "nan") for r in rows)
    for key in ("n_molecules", "n_failed", "pooled", "per_series_mean", "anchors"):
        assert key in metrics
    assert set(metrics["anchors"]) == {"fep_plus", "heavy_atoms"}
    assert (out / "scatter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_casf_scoring_and_refusal_to_score_training_data(tmp_path: Path) -> None:
    from compass.train.loop import train

    plan = _plan(tmp_path, [str(shared_data("pdbqt_extra"))])
    result = train(plan, run_id="lite-extra", progress=False)
    metrics = evaluate.score_checkpoint(
        result.best_checkpoint, shared_data("casf2016"), tmp_path / "casf", which="casf2016", progress=False
    )
    assert metrics["n_molecules"] == 285 and metrics["casf2016"]["n_clusters"] == 57
    assert -1.0 <= metrics["casf2016"]["scoring_power_pearson"] <= 1.0

    leaky = _plan(tmp_path, [str(shared_data("casf2016"))])
    leak = train(leaky, run_id="lite-casf", progress=False)
    with pytest.raises(ValueError, match="CASF-2016 complexes were in this model's training"):
        evaluate.score_checkpoint(leak.best_checkpoint, shared_data("casf2016"), tmp_path / "x", which="casf2016")
    # "all" scores only what the model never saw (training or validation).
    partial = evaluate.score_checkpoint(
        leak.best_checkpoint, shared_data("pdbbind", "sample"), tmp_path / "all", which="all", progress=False
    )
    assert partial["model"]["n_in_training_left_out"] > 0  # the sample holds CASF core complexes
    assert partial["n_molecules"] == 24 - partial["model"]["n_in_training_left_out"]

    # The predict CLI uses the same checkpoint and answers with its content id.
    code = predict.main(
        [
            "--protein",
            str(shared_data("casf2016", "1a30", "1a30_pocket.pdb")),
            "--ligand",
            str(shared_data("casf2016", "1a30", "1a30_ligand.sdf")),
            "--model",
            str(result.best_checkpoint),
            "--json",
        ]
    )
    assert code == 0


def test_cli_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert evaluate.main(["--set", "casf2016", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--checkpoint",
                          str(tmp_path / "missing.safetensors")]) == 2  # fmt: skip
    assert "no checkpoint file" in capsys.readouterr().err
    pocket = shared_data("casf2016", "1a30", "1a30_pocket.pdb")
    assert predict.main(["--protein", str(pocket), "--ligand", str(pocket), "--model", "nope.skops"]) == 2


def test_kd_wording() -> None:
    assert predict.kd_from_pk(9.0) == "1 nM"
    assert predict.kd_from_pk(4.3).endswith("µM")


def test_sequence_relatives_are_found_and_strangers_are_not() -> None:
    bace = str(shared_data("fep", "jacs_set", "bace", "bace_protein.pdb"))
    thrombin = str(shared_data("fep", "jacs_set", "thrombin_core", "thrombin_core_protein.pdb"))
    assert shared_fraction(words(protein_sequence(bace)), words(protein_sequence(bace))) == 1.0
    assert shared_fraction(words(protein_sequence(bace)), words(protein_sequence(thrombin))) < 0.05
    assert related([bace, thrombin], [bace]) == [True, False]
