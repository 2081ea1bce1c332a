"""Checkpoints rebuild the model from the file alone, reproduce predictions exactly, and refuse bad files."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import compass
from compass.data.graph import FeatureSettings
from compass.model.checkpoint import CheckpointError, Predictor, load_checkpoint, model_id
from compass.model.visnet import CompassViSNet, ViSNetConfig
from compass.model.visnet_checkpoint import CompassPredictor, read_meta, save_checkpoint
from compass.train.synthetic import synthetic_set
from compass.version import git_state

ARCH = ViSNetConfig(hidden_channels=16, num_layers=2, num_heads=2, num_rbf=8, cutoff=4.0, y_mean=6.5, y_std=1.2)
SETTINGS = FeatureSettings(crop_radius=6.0, max_protein_atoms=300)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def saved(tmp_path: Path) -> tuple[CompassViSNet, Path]:
    torch.manual_seed(0)
    model = CompassViSNet(ARCH)
    with torch.no_grad():  # move weights away from their initial values so a default rebuild would differ
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = save_checkpoint(
        model,
        tmp_path / "model.safetensors",
        feature_settings=SETTINGS,
        plan={"seed": 3},
        data_hash="abc123",
        metrics={"val_rmse": 1.1},
    )
    return model, path


def test_round_trip_reproduces_predictions_exactly(saved: tuple[CompassViSNet, Path]) -> None:
    model, path = saved
    graphs, _ = synthetic_set(5, seed=1)
    expected = CompassPredictor(model, {"feature_settings": SETTINGS.to_dict()}).predict(graphs, batch_size=2)
    predictor = load_checkpoint(path)
    assert isinstance(predictor, Predictor) and predictor.kind == "compass"
    got = predictor.predict(graphs, batch_size=2)
    assert got.dtype == np.float64 and got.shape == (5,)
    np.testing.assert_array_equal(got, expected)


def test_metadata_carries_everything_needed(saved: tuple[CompassViSNet, Path]) -> None:
    _, path = saved
    meta = read_meta(path)
    assert meta["kind"] == "compass"
    assert ViSNetConfig.from_dict(meta["arch"]) == ARCH
    assert meta["feature_settings"] == SETTINGS.to_dict()
    assert meta["plan"] == {"seed": 3} and meta["data_hash"] == "abc123" and meta["metrics"] == {"val_rmse": 1.1}
    assert meta["code_version"]["compass"] == compass.__version__
    assert meta["code_version"]["git_dirty"] in (True, False, None)
    assert meta["created"].endswith("Z")
    predictor = load_checkpoint(path)
    assert predictor.feature_settings == SETTINGS  # from the file, not the defaults
    assert predictor.model.config == ARCH


def test_git_state_says_when_the_code_is_not_the_commit(tmp_path: Path) -> None:
    """A checkpoint trained on edited code must not pass for the commit it started from."""
    assert git_state(tmp_path) == (None, None)  # not a checkout
    env = ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    pkg = tmp_path / "compass"
    pkg.mkdir()
    (pkg / "model.py").write_text("A = 1\n")
    for args in (["init", "-q"], ["add", "."], [*env, "commit", "-q", "-m", "one"]):
        subprocess.run(["git", *args], cwd=tmp_path, check=True)
    commit, dirty = git_state(pkg)
    assert commit is not None and len(commit) == 40 and dirty is False
    (pkg / "model.py").write_text("A = 2\n")
    assert git_state(pkg) == (commit, True)
    (pkg / "model.py").write_text("A = 1\n")
    (tmp_path / "elsewhere.txt").write_text("outside the package\n")
    assert git_state(pkg) == (commit, False)  # only the package's own files count


def test_model_id_is_a_content_hash(saved: tuple[CompassViSNet, Path], tmp_path: Path) -> None:
    _, path = saved
    copy = tmp_path / "renamed.safetensors"
    copy.write_bytes(path.read_bytes())
    assert model_id(path) == model_id(copy) and len(model_id(path)) == 12
    copy.write_bytes(path.read_bytes() + b" ")
    assert model_id(copy) != model_id(path)


def test_edited_weights_are_refused(saved: tuple[CompassViSNet, Path]) -> None:
    _, path = saved
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0xFF  # flip bits inside the last tensor's data
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="digest"):
        load_checkpoint(path)


def test_truncated_and_foreign_files_are_refused(saved: tuple[CompassViSNet, Path], tmp_path: Path) -> None:
    _, path = saved
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError):
        load_checkpoint(truncated)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(junk)
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="not a COMPASS checkpoint"):
        load_checkpoint(plain)
    pickle = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, pickle)
    with pytest.raises(CheckpointError, match="unknown checkpoint type"):
        load_checkpoint(pickle)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_metadata_that_does_not_fit_the_weights_is_refused(saved: tuple[CompassViSNet, Path], tmp_path: Path) -> None:
    _, path = saved
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
        meta = json.loads(f.metadata()["compass"])
    meta["arch"]["hidden_channels"] = 32  # the digest still matches, the architecture does not
    forged = tmp_path / "forged.safetensors"
    save_file(tensors, str(forged), metadata={"compass": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(forged)
    meta["arch"] = {**ARCH.to_dict(), "surprise": 1}
    save_file(tensors, str(forged), metadata={"compass": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="unknown ViSNet config keys"):
        load_checkpoint(forged)
    del meta["arch"]["surprise"], meta["arch"]["cutoff"]  # a gap must not be filled with a default
    save_file(tensors, str(forged), metadata={"compass": json.dumps(meta)})
    with pytest.raises(CheckpointError, match=r"arch lacks \['cutoff'\]"):
        load_checkpoint(forged)


def test_lite_checkpoints_are_dispatched_by_suffix(tmp_path: Path) -> None:
    lite = pytest.importorskip("compass.model.lite")
    graphs, records = synthetic_set(24, seed=2)
    config = {"estimator": "et", "n_estimators": 10, "n_jobs": 1}
    predictor = lite.train_lite(graphs, records, config, seed=0, feature_settings=SETTINGS)
    path = lite.save_lite(predictor, tmp_path / "lite.skops", {"data_hash": "xyz"})
    loaded = load_checkpoint(path)
    assert isinstance(loaded, Predictor) and loaded.kind == "compass-lite"
    assert loaded.feature_settings == SETTINGS and loaded.meta["data_hash"] == "xyz"
    np.testing.assert_array_equal(loaded.predict(graphs), predictor.predict(graphs))
    bad = tmp_path / "bad.skops"
    bad.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError):
        load_checkpoint(bad)
