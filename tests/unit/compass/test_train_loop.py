"""Plans, schedule and the training loop on synthetic complexes: artifacts, resume, cancel, early stop."""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from compass.train import ExperimentPlan, PlanError, train
from compass.train import artifacts as art
from compass.train.__main__ import main
from compass.train.inputs import filter_records
from compass.train.plan import OptimSpec
from compass.train.schedule import warmup_cosine, warmup_steps_for
from compass.train.synthetic import synthetic_set, write_root

TINY = {"hidden_channels": 16, "num_layers": 2, "num_heads": 2, "num_rbf": 8, "cutoff": 4.0, "max_num_neighbors": 12}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    graphs, records = synthetic_set(24, seed=0, n_groups=6, ligand_atoms=(5, 9), protein_atoms=(10, 18))
    return write_root(tmp_path_factory.mktemp("data") / "synthetic.pt", graphs, records)


def plan_dict(root: Path, **optim: Any) -> dict[str, Any]:
    return {
        "seed": 1,
        "data": {"roots": [str(root)]},
        "split": {"kind": "group-holdout", "val_fraction": 0.25, "seed": 0},
        "model": {"kind": "compass", "config": TINY},
        "optim": {"lr": 2e-3, "epochs": 3, "batch_size": 8, "warmup_steps": 2, "patience": 0, **optim},
        "device": "cpu",
    }


def write_plan(folder: Path, data: dict[str, Any]) -> Path:
    path = folder / "plan.json"
    path.write_text(json.dumps(data))
    return path


# -- plans ---------------------------------------------------------------------------------------


def test_plan_round_trips_and_resolves_roots_against_its_folder(tmp_path: Path, root: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "fep").mkdir()
    data = plan_dict(root)
    data["data"]["roots"] = ["data/fep"]
    plan = ExperimentPlan.from_json(write_plan(tmp_path, data))
    assert plan.resolved_roots() == [(tmp_path / "data" / "fep").resolve()]
    assert ExperimentPlan.from_dict(plan.to_dict()).to_dict() == plan.to_dict()
    assert plan.optim.warmup_steps == 2 and plan.model.config == TINY
    run_id = plan.with_run_id().run_id
    assert run_id and run_id.endswith(plan.digest()[:6])


def test_missing_root_names_every_place_tried(tmp_path: Path, root: Path) -> None:
    data = plan_dict(root)
    data["data"]["roots"] = ["nowhere/fep"]
    plan = ExperimentPlan.from_json(write_plan(tmp_path, data))
    with pytest.raises(FileNotFoundError, match="tried") as err:
        plan.resolved_roots()
    assert str(tmp_path) in str(err.value)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"epochz": 3}, "unknown keys"),
        ({"optim": {"lr": 1e-3, "momentum": 0.9}}, "optim: unknown keys"),
        ({"optim": {"epochs": "ten"}}, "optim.epochs must be a finite integer"),
        ({"optim": {"amp": "maybe"}}, "optim.amp must be one of"),
        ({"optim": {"group_weighting": "log"}}, "optim.group_weighting must be one of"),
        ({"optim": {"position_noise": 2.0}}, "optim.position_noise"),
        ({"model": {"kind": "transformer"}}, "model.kind must be one of"),
        ({"model": {"kind": "compass", "config": {"hidden": 3}}}, "unknown ViSNet config keys"),
        ({"model": {"kind": "compass", "config": {"y_mean": 3.0}}}, "y_mean"),
        ({"model": {"kind": "compass-lite", "config": {"trees": 3}}}, "unknown compass-lite settings"),
        ({"split": {"kind": "group-holdout", "val_fraction": 0}}, "val_fraction"),
        ({"data": {"roots": []}}, "data.roots"),
        ({"data": {"roots": ["x"], "feature": {"crop": 5}}}, "unknown feature settings"),
        ({"run_id": "../escape"}, "run_id"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_invalid_plans_say_which_key(root: Path, patch: dict[str, Any], message: str) -> None:
    data = {**plan_dict(root), **patch}
    with pytest.raises(PlanError, match=message):
        ExperimentPlan.from_dict(data)


def test_warmup_then_cosine_schedule() -> None:
    lrs = [warmup_cosine(s, total_steps=110, warmup_steps=10) for s in range(110)]
    assert lrs[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert lrs[10] == pytest.approx(1.0) and lrs[60] == pytest.approx(0.5) and lrs[-1] < 0.001
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    assert warmup_steps_for(OptimSpec(warmup_fraction=0.1), 200) == 20
    assert warmup_steps_for(OptimSpec(warmup_steps=7, warmup_fraction=0.5), 200) == 7


def test_filters_drop_excluded_ids_and_other_affinity_types(tmp_path: Path, root: Path) -> None:
    graphs, records = synthetic_set(6, seed=3)
    records[0].key, records[1].key = "casf/1abc", "2xyz"
    for r, kind in zip(records, ["Kd", "Ki", "IC50", "Kd", "Kd", "Ki"], strict=True):
        r.extra["affinity_type"] = kind
    graphs[5].y = math.nan
    (tmp_path / "core.txt").write_text("1ABC\n# comment\n2xyz\n")
    data = plan_dict(root)
    data["data"].update(exclude_ids_file=str(tmp_path / "core.txt"), affinity_types=["Kd", "Ki"])
    kept_graphs, kept = filter_records(ExperimentPlan.from_dict(data), graphs, records)
    assert [r.key for r in kept] == ["syn/3", "syn/4"]  # ids excluded, IC50 dropped, unlabelled dropped
    assert [g.key for g in kept_graphs] == ["syn/3", "syn/4"]


# -- training ------------------------------------------------------------------------------------


def test_training_run_writes_every_artifact(tmp_path: Path, root: Path) -> None:
    plan = ExperimentPlan.from_dict(plan_dict(root))
    seen: list[dict[str, Any]] = []
    result = train(plan, runs_dir=tmp_path, run_id="r1", progress=False, progress_every=2, on_step=seen.append)
    run = tmp_path / "r1"
    assert result.status == "completed" and result.run_dir == run
    for name in ("plan.json", "train.log", "metrics.jsonl", "progress.json", "eval.json", "best.safetensors"):
        assert (run / name).is_file(), name
    assert (run / "last.safetensors").is_file() and (run / "last.state.pt").is_file()
    rows = art.read_metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    keys = {"epoch", "step", "train_loss", "val_rmse", "val_pearson", "lr", "seconds", "complexes_per_s"}
    assert keys <= set(rows[0])
    assert rows[-1]["step"] == seen[-1]["step"] == len(seen)
    progress = json.loads((run / "progress.json").read_text())
    assert progress["status"] == "completed" and progress["step"] == progress["total_steps"] == len(seen)
    assert json.loads((run / "plan.json").read_text())["run_id"] == "r1"
    # eval.json is what the best checkpoint really predicts on the validation split
    from compass.model.checkpoint import load_checkpoint

    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation == result.metrics and evaluation["n_val"] > 0
    predictor = load_checkpoint(result.best_checkpoint)
    assert predictor.meta["plan"]["run_id"] == "r1" and predictor.meta["data_hash"] == evaluation["data_hash"]
    split = predictor.meta["extra"]
    assert len(split["val_keys"]) == evaluation["n_val"] and len(split["train_keys"]) == evaluation["n_train"]
    assert not set(split["val_keys"]) & set(split["train_keys"])
    best_row = min(rows, key=lambda r: r["val_rmse"])
    assert evaluation["val_rmse"] == pytest.approx(best_row["val_rmse"], abs=1e-9)
    with pytest.raises(FileExistsError):
        train(plan, runs_dir=tmp_path, run_id="r1", progress=False)
    with pytest.raises(PlanError, match=r"differs .*\['optim'\]"):
        train(plan, runs_dir=tmp_path, run_id="r1", resume=True, max_epochs=5, progress=False)


def test_cancel_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path: Path, root: Path) -> None:
    plan = ExperimentPlan.from_dict(plan_dict(root))
    straight = train(plan, runs_dir=tmp_path, run_id="straight", progress=False)

    total = json.loads((tmp_path / "straight" / "progress.json").read_text())["total_steps"]
    per_epoch = total // 3
    assert per_epoch >= 2
    cut = per_epoch + 1  # the first step of epoch 2: a mid-epoch stop

    def sigterm_mid_epoch(progress: dict[str, Any]) -> None:
        if progress["step"] == cut:
            os.kill(os.getpid(), signal.SIGTERM)

    cancelled = train(plan, runs_dir=tmp_path, run_id="split", progress=False, on_step=sigterm_mid_epoch)
    assert cancelled.status == "cancelled"
    assert json.loads((tmp_path / "split" / "progress.json").read_text())["status"] == "cancelled"
    assert [r["epoch"] for r in art.read_metrics(tmp_path / "split")] == [1]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is removed afterwards
    steps: list[int] = []
    resumed = train(
        plan, runs_dir=tmp_path, run_id="split", resume=True, progress=False, on_step=lambda p: steps.append(p["step"])
    )
    assert resumed.status == "completed"
    assert steps == list(range(cut + 1, total + 1))  # it continued after the cut instead of starting again
    a, b = (
        load_file(str(tmp_path / "straight" / "last.safetensors")),
        load_file(str(tmp_path / "split" / "last.safetensors")),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = ("seconds", "complexes_per_s")
    rows_a = [{k: v for k, v in r.items() if k not in strip} for r in art.read_metrics(tmp_path / "straight")]
    rows_b = [{k: v for k, v in r.items() if k not in strip} for r in art.read_metrics(tmp_path / "split")]
    assert rows_a == rows_b
    assert resumed.metrics["val_rmse"] == straight.metrics["val_rmse"]


def test_early_stopping_keeps_the_best_epoch(tmp_path: Path, root: Path) -> None:
    plan = ExperimentPlan.from_dict(plan_dict(root, lr=1e-12, epochs=6, patience=2, warmup_steps=0))
    result = train(plan, runs_dir=tmp_path, run_id="es", progress=False)
    assert result.metrics["stopped_early"] is True
    assert result.metrics["best_epoch"] == 1 and result.metrics["epochs_run"] == 3
    assert len(art.read_metrics(tmp_path / "es")) == 3


def test_in_memory_graphs_skip_the_data_roots(tmp_path: Path, root: Path) -> None:
    data = plan_dict(root, epochs=1)
    data["data"]["roots"] = ["/does/not/exist"]
    data["split"] = {"kind": "none"}
    graphs, records = synthetic_set(10, seed=4, ligand_atoms=(5, 8), protein_atoms=(8, 12))
    result = train(
        ExperimentPlan.from_dict(data),
        train_graphs=graphs[:7],
        train_records=records[:7],
        val_graphs=graphs[7:],
        runs_dir=tmp_path,
        run_id="mem",
        progress=False,
    )
    assert result.metrics["n_train"] == 7 and result.metrics["n_val"] == 3
    assert math.isfinite(result.metrics["val_rmse"])


def _train_in_memory(tmp_path: Path, root: Path, run_id: str, groups: list[str], **optim: Any) -> dict:
    """Weights of a 2-epoch run on 12 synthetic complexes with the given protein groups."""
    data = plan_dict(root, epochs=2, **optim)
    data["split"] = {"kind": "none"}
    graphs, records = synthetic_set(12, seed=5, ligand_atoms=(5, 8), protein_atoms=(8, 12))
    for record, group in zip(records, groups, strict=True):
        record.group = group
    result = train(
        ExperimentPlan.from_dict(data),
        train_graphs=graphs,
        train_records=records,
        runs_dir=tmp_path,
        run_id=run_id,
        progress=False,
    )
    return load_file(str(result.best_checkpoint))


def test_group_weighting_counts_complexes_per_protein(tmp_path: Path, root: Path) -> None:
    """Equal groups weigh 1 each (same run as unweighted); one protein with 9 complexes does not."""
    even = [f"p{i % 4}" for i in range(12)]
    skewed = ["big"] * 9 + ["a", "b", "c"]
    plain = _train_in_memory(tmp_path, root, "plain", even)
    same = _train_in_memory(tmp_path, root, "even", even, group_weighting="inverse_sqrt")
    plain_skewed = _train_in_memory(tmp_path, root, "plain-skewed", skewed)
    weighted = _train_in_memory(tmp_path, root, "skewed", skewed, group_weighting="inverse_sqrt")
    assert all(torch.equal(plain[k], same[k]) for k in plain)
    assert all(torch.equal(plain[k], plain_skewed[k]) for k in plain)  # groups alone change nothing
    assert any(not torch.equal(plain[k], weighted[k]) for k in plain)


def test_position_noise_is_seeded_and_changes_training(tmp_path: Path, root: Path) -> None:
    groups = [f"p{i % 4}" for i in range(12)]
    plain = _train_in_memory(tmp_path, root, "plain", groups)
    noisy = _train_in_memory(tmp_path, root, "noisy", groups, position_noise=0.2)
    again = _train_in_memory(tmp_path, root, "noisy-again", groups, position_noise=0.2)
    assert all(torch.equal(noisy[k], again[k]) for k in noisy)
    assert any(not torch.equal(plain[k], noisy[k]) for k in plain)


def test_no_validation_split_keeps_the_last_epoch(tmp_path: Path, root: Path) -> None:
    data = plan_dict(root, epochs=2)
    data["split"] = {"kind": "none"}
    result = train(ExperimentPlan.from_dict(data), runs_dir=tmp_path, run_id="all", progress=False)
    assert result.metrics["n_train"] == 24 and result.metrics["n_val"] == 0 and result.metrics["best_epoch"] == 2
    best = load_file(str(result.best_checkpoint))
    last = load_file(str(tmp_path / "all" / "last.safetensors"))
    assert all(torch.equal(best[k], last[k]) for k in best)


def test_compass_lite_plan_trains_and_scores(tmp_path: Path, root: Path) -> None:
    pytest.importorskip("compass.model.lite")
    data = plan_dict(root)
    data["model"] = {"kind": "compass-lite", "config": {"estimator": "et", "n_estimators": 10}}
    result = train(ExperimentPlan.from_dict(data), runs_dir=tmp_path, run_id="lite", progress=False)
    assert result.best_checkpoint.name == "best.skops" and result.best_checkpoint.is_file()
    assert math.isfinite(result.metrics["val_rmse"]) and len(art.read_metrics(tmp_path / "lite")) == 1
    from compass.model.checkpoint import load_checkpoint

    predictor = load_checkpoint(result.best_checkpoint)
    assert predictor.kind == "compass-lite" and predictor.meta["data_hash"] == result.metrics["data_hash"]
    assert len(predictor.meta["extra"]["val_keys"]) == result.metrics["n_val"]
    assert np.isfinite(predictor.predict(synthetic_set(3, seed=9)[0])).all()


def test_cli_prints_progress_and_reports_plan_errors(
    tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan_path = write_plan(tmp_path, plan_dict(root))
    runs = ["--runs-dir", str(tmp_path / "runs"), "--max-epochs", "1"]
    code = main([str(plan_path), *runs, "--run-id", "cli", "--seed", "7"])
    out = capsys.readouterr().out
    assert code == 0
    lines = [json.loads(line[len(art.PROGRESS_PREFIX) :]) for line in out.splitlines() if line.startswith("PROGRESS ")]
    assert lines and lines[-1]["status"] == "completed" and lines[-1]["total_epochs"] == 1
    saved = json.loads((tmp_path / "runs" / "cli" / "plan.json").read_text())
    assert saved["optim"]["epochs"] == 1 and saved["seed"] == 7  # the plan file says seed 1
    with pytest.raises(SystemExit) as usage:
        main([str(plan_path), *runs, "--seed", "-1"])
    assert usage.value.code == 2 and "--seed" in capsys.readouterr().err
    bad = write_plan(tmp_path, {**plan_dict(root), "optimizer": {}})
    assert main([str(bad)]) == 2
    assert "unknown keys" in capsys.readouterr().err


def test_real_fep_series_train_end_to_end(tmp_path: Path) -> None:
    """Four FEP+ series of four proteins: featurise, split by protein, train one epoch, predict."""
    import csv
    import shutil

    from compass.settings import data_dir

    fep = data_dir() / "fep"
    if not (fep / "index.csv").is_file():
        pytest.skip(f"shared FEP data not found at {fep} (set COMPASS_DATA_DIR)")
    pytest.importorskip("rdkit", reason="featurising structures needs RDKit")
    wanted = {"chk1_set1", "wagner_brd4", "Fxa_2ei8", "MHT1_lig3_alpha05"}
    with (fep / "index.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["series"] in wanted]
    root = tmp_path / "fep4"
    for r in rows:  # a copy: an index may only name files inside its own folder
        for name in (r["protein_file"], r["ligands_file"]):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(fep / name, root / name)
    with (root / "index.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    data = plan_dict(root, epochs=1, batch_size=4)
    data["data"]["cache_dir"] = str(tmp_path / "cache")
    result = train(ExperimentPlan.from_dict(data), runs_dir=tmp_path / "runs", run_id="fep", progress=False)
    assert result.metrics["n_train"] + result.metrics["n_val"] == len(rows) == 12
    from compass.model.checkpoint import load_checkpoint

    predictor = load_checkpoint(result.best_checkpoint)
    split = predictor.meta["extra"]
    proteins = {r["series"]: r["protein"] for r in rows}
    train_proteins = {proteins[k.split("/")[1]] for k in split["train_keys"]}
    val_proteins = {proteins[k.split("/")[1]] for k in split["val_keys"]}
    assert val_proteins and not train_proteins & val_proteins  # grouped by protein
    assert list((tmp_path / "cache").glob("*.pt"))  # featurised once, cached for the next run
