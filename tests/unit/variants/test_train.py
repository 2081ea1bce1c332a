"""``variants.train`` end to end on a real DMS slice: artifacts, resume, plugins, the workdir CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.unit.variants.dms import IMPORT_ARGS, TRASTUZUMAB_VH, dms_slice
from variants import store as store_cli
from variants import train, workdir
from variants.plugins import load_plugins

TINY_CNN = {"name": "cnn", "filters": 4, "dense": 4}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("store")
    path = folder / "v.db"
    assert store_cli.main(["add-source", "--db", str(path), "--id", "tz", "--sequence", TRASTUZUMAB_VH]) == 0
    assert store_cli.main(["import", "--db", str(path), "--csv", str(dms_slice(folder, 200)), *IMPORT_ARGS]) == 0
    return path


def write_plan(folder: Path, db: Path, **sections: dict) -> Path:
    plan = {
        "data": {"db": str(db), "label": "AgClass", "where": [["assay", "=", "her2"]]},
        "model": TINY_CNN,
        "train": {"max_epochs": 2, "batch_size": 32},
        **sections,
    }
    path = folder / "plan.json"
    path.write_text(json.dumps(plan))
    return path


def test_a_tiny_plan_trains_end_to_end_and_writes_every_artifact(db: Path, tmp_path: Path, capsys) -> None:
    plan = write_plan(tmp_path, db, split={"strategy": "hamming", "seed": 2})
    assert train.main([str(plan), "--workdir", str(tmp_path / "wd"), "--run-id", "r1", "--no-progress"]) == 0
    run = tmp_path / "wd" / "runs" / "r1"
    for name in (
        "exp_plan.json",
        "training/checkpoint.pt",
        "training/history.json",
        "model.pt",
        "model_info.json",
        "labels.npz",
        "metrics.json",
        "visualization/roc_pr.png",
        "visualization/confusion_matrix.png",
    ):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    saved_plan = json.loads((run / "exp_plan.json").read_text())
    assert saved_plan["run_id"] == "r1" and saved_plan["split"]["strategy"] == "hamming"
    assert (
        metrics["data"]["kept"]
        == metrics["split"]["train"] + metrics["split"]["val"] + metrics["split"]["test"] + metrics["split"]["excluded"]
    )
    with np.load(run / "labels.npz") as labels:
        assert len(labels["test_scores"]) == metrics["test"]["n"] == len(labels["test_labels"])
        cm = metrics["test"]["confusion_matrix"]
        assert sum(cm.values()) == metrics["test"]["n"] and 0.0 <= metrics["test"]["roc_auc"] <= 1.0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run"] == str(run)
    assert train.main([str(plan), "--workdir", str(tmp_path / "wd"), "--run-id", "r1", "--no-progress"]) == 1


def test_resume_continues_from_the_last_epoch(db: Path, tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    args = ["--workdir", str(wd), "--run-id", "r2", "--no-progress"]
    assert train.main([str(write_plan(tmp_path, db, train={"max_epochs": 1, "batch_size": 32})), *args]) == 0
    run = wd / "runs" / "r2"
    (run / "metrics.json").unlink()  # as if the run had been stopped after its first epoch
    longer = write_plan(tmp_path, db, train={"max_epochs": 2, "batch_size": 32, "patience": 5})
    assert train.main([str(longer), *args, "--resume"]) == 0
    history = json.loads((run / "training" / "history.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    stamp = (run / "metrics.json").stat().st_mtime_ns
    assert train.main([str(longer), *args, "--resume"]) == 0  # finished: left as it is
    assert (run / "metrics.json").stat().st_mtime_ns == stamp


PLUGIN = '''
import json

import numpy as np

from variants.models.base import VariantModel


class PositionLogOdds(VariantModel):
    """Sum over region positions of log P(letter | binder) / P(letter | non-binder), add-one smoothed."""

    name = "position-log-odds"
    file_name = "model.json"

    def fit(self, train, val, config, progress):
        x = self.context.vocab.one_hot(self.context.windows(train.sequences))
        pos = x[train.labels == 1].sum(axis=0) + 1
        neg = x[train.labels == 0].sum(axis=0) + 1
        self.table = np.log(pos / pos.sum(axis=1, keepdims=True)) - np.log(neg / neg.sum(axis=1, keepdims=True))
        progress({"stage": "counted"})
        return {"positions": int(self.table.shape[0])}

    def score(self, sequences):
        x = self.context.vocab.one_hot(self.context.windows(sequences))
        return (x * self.table[None]).sum(axis=(1, 2))

    def save(self, path):
        path.write_text(json.dumps(self.table.tolist()))

    @classmethod
    def load(cls, path, context):
        model = cls({}, context)
        model.table = np.array(json.loads(path.read_text()))
        return model
'''


def test_a_plugin_model_from_the_working_directory_trains_by_name(db: Path, tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    (wd / "model").mkdir(parents=True)
    (wd / "model" / "log_odds.py").write_text(PLUGIN)
    plan = write_plan(tmp_path, db, model={"name": "position-log-odds"})
    assert train.main([str(plan), "--workdir", str(wd), "--run-id", "p1", "--no-progress"]) == 0
    run = wd / "runs" / "p1"
    metrics = json.loads((run / "metrics.json").read_text())
    info = json.loads((run / "model_info.json").read_text())
    assert metrics["model"] == "position-log-odds" and info["plugin"].endswith("model/log_odds.py")
    assert metrics["test"]["roc_auc"] > 0.6  # per-position letter preferences carry real signal in this DMS


def test_a_broken_plugin_is_reported_by_file_and_line(db: Path, tmp_path: Path, capsys) -> None:
    wd = tmp_path / "wd"
    (wd / "model").mkdir(parents=True)
    (wd / "model" / "broken.py").write_text("import json\n\nraise RuntimeError('boom')\n")
    (wd / "metrics").mkdir()
    (wd / "metrics" / "typo.py").write_text("def f(:\n")
    registry = load_plugins(wd)
    assert {(Path(f.file).name, f.line) for f in registry.failures} == {("broken.py", 3), ("typo.py", 1)}
    assert "cnn" in registry.classes["model"]  # the others still load
    plan = write_plan(tmp_path, db, model={"name": "from-broken"})
    assert train.main([str(plan), "--workdir", str(wd), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "no model named 'from-broken'" in err and "broken.py line 3" in err and "RuntimeError: boom" in err


def test_workdir_cli_get_set_clear(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("VARIANTS_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("VARIANTS_WORKDIR", raising=False)
    assert workdir.main(["--get"]) == 1
    assert workdir.main(["--set", str(tmp_path / "node")]) == 0
    assert all((tmp_path / "node" / kind).is_dir() for kind in ("model", "embed", "metrics", "vocab", "runs"))
    capsys.readouterr()
    assert workdir.main(["--get"]) == 0 and capsys.readouterr().out.strip() == str(tmp_path / "node")
    monkeypatch.setenv("VARIANTS_WORKDIR", str(tmp_path / "other"))
    assert workdir.main(["--get"]) == 0 and capsys.readouterr().out.strip() == str(tmp_path / "other")
    monkeypatch.delenv("VARIANTS_WORKDIR")
    assert workdir.main(["--clear"]) == 0 and workdir.main(["--get"]) == 1
    with pytest.raises(SystemExit) as usage:
        workdir.main(["--get", "--clear"])
    assert usage.value.code == 2
