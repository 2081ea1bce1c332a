"""DDP smoke run: ``torchrun --nproc_per_node 2 -m compass.train`` on two CPU processes (gloo)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from compass.train.synthetic import synthetic_set, write_root

REPO = Path(__file__).resolve().parents[2]
TINY = {"hidden_channels": 16, "num_layers": 2, "num_heads": 2, "num_rbf": 8, "cutoff": 4.0, "max_num_neighbors": 12}


def test_two_gloo_processes_train_one_run(tmp_path: Path) -> None:
    graphs, records = synthetic_set(20, seed=0, n_groups=5, ligand_atoms=(5, 8), protein_atoms=(8, 14))
    root = write_root(tmp_path / "synthetic.pt", graphs, records)
    plan = {
        "seed": 0,
        "data": {"roots": [root.name]},  # relative: resolved against the plan's folder
        "split": {"kind": "group-holdout", "val_fraction": 0.2, "seed": 0},
        "model": {"kind": "compass", "config": TINY},
        "optim": {"lr": 1e-3, "epochs": 2, "batch_size": 4, "warmup_steps": 1},
        "device": "cpu",
    }
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(plan))
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "compass.train", str(plan_path), "--runs-dir", str(runs), "--run-id", "ddp", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "rank 0 of 2 (gloo)" in output and "rank 1 of 2 (gloo)" in output

    run = runs / "ddp"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]  # written once per epoch, by rank 0 only
    evaluation = json.loads((run / "eval.json").read_text())
    n_train = evaluation["n_train"]
    progress = json.loads((run / "progress.json").read_text())
    per_rank_steps = math.ceil(math.ceil(n_train / 2) / 4)  # each rank sees half of the data per epoch
    assert progress["status"] == "completed" and progress["total_steps"] == 2 * per_rank_steps
    assert math.isfinite(evaluation["val_rmse"]) and evaluation["n_val"] == 20 - n_train  # all-reduced over ranks
    assert output.count("PROGRESS ") >= 1 and output.count('"status": "completed"') == 1  # rank 0 reports

    from compass.model.checkpoint import load_checkpoint

    predictor = load_checkpoint(run / "best.safetensors")
    assert predictor.meta["plan"]["run_id"] == "ddp"
    assert len(predictor.predict(graphs[:3])) == 3
