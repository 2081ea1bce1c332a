"""A real mesh for FlashDock tests: token registry, a compass-lite worker, a codon worker.

The compass-lite weights come from ``python -m compass.train`` on the three example complexes
(seconds), the same way scripts/run.sh gets them, so no shared data is needed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from tests.support import (
    REGISTRY_FLAGS,
    REPO,
    TOKEN,
    Proc,
    python_env,
    read_json_line,
    spawn,
    start_registry,
    wait_until,
)

LITE_PLAN = {
    "seed": 0,
    "data": {"roots": [str(REPO / "examples" / "complexes")]},
    "split": {"kind": "none"},
    "model": {"kind": "compass-lite", "config": {"max_iter": 20, "min_samples_leaf": 1}},
    "device": "cpu",
}
WORKER_ENV = {"REGISTRY_TOKEN": TOKEN, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def start_training(tmp: Path) -> tuple[Proc, Path]:
    """Train a tiny compass-lite model in the background; returns the process and the checkpoint path."""
    plan = tmp / "lite_plan.json"
    plan.write_text(json.dumps(LITE_PLAN))
    args = ["-m", "compass.train", str(plan), "--runs-dir", str(tmp / "runs"), "--run-id", "lite", "--no-progress"]
    return spawn(args, tmp / "train.log", "", env=python_env(OMP_NUM_THREADS="1")), tmp / "runs" / "lite" / "best.skops"


def start_worker(tmp: Path, registry: Proc, name: str, args: list[str], timeout: float = 90) -> Proc:
    """A worker process registered with ``registry``; returns once its ready route answers."""
    proc = spawn(
        [*args, "--port", "0", "--registry", registry.base_url], tmp / f"{name}.log", "", env=python_env(**WORKER_ENV)
    )
    try:
        proc.base_url = read_json_line(proc, "event", timeout=timeout)["base_url"]
        wait_until(lambda: requests.get(proc.base_url + "/health/ready", timeout=2).ok, timeout=timeout, what=name)
    except BaseException:
        proc.stop()
        raise
    return proc


def start_lite(tmp: Path, registry: Proc, weights: Path, name: str = "lite") -> Proc:
    args = ["-m", "compass.service.worker", "--model", "compass-lite", "--weights", str(weights)]
    args += ["--state-dir", str(tmp / "state"), "--stop-grace-s", "5", "--drain-timeout", "3"]
    return start_worker(tmp, registry, name, args)


def start_echo(tmp: Path, registry: Proc, name: str = "echo") -> Proc:
    """A fast-starting worker the tests can kill."""
    return start_worker(
        tmp, registry, name, ["-m", "services.worker.echo", "--token", TOKEN, "--drain-timeout", "1"], 30
    )


@contextmanager
def real_fleet(tmp: Path, codon: bool = True) -> Iterator[dict[str, Any]]:
    """Registry + compass-lite (+ codon) as real processes; ``state["env"]`` is FlashDock's environment.

    The environment is handed out, never written to ``os.environ``: a session-long fleet that set
    REGISTRY_TOKEN process-wide would put a token on every later test's in-process registry.
    """
    procs: list[Proc] = []
    try:
        trainer, weights = start_training(tmp)
        procs.append(trainer)
        registry = start_registry(tmp, *REGISTRY_FLAGS)
        procs.append(registry)
        if codon:
            procs.append(start_worker(tmp, registry, "codon", ["-m", "seqmodels.codon"]))
        wait_until(
            lambda: trainer.popen.poll() is not None, timeout=180, interval=0.2, what="tiny compass-lite training"
        )
        assert weights.exists(), trainer.log()
        lite = start_lite(tmp, registry, weights)
        procs.append(lite)
        env = {"FLASHDOCK_REGISTRY_URL": registry.base_url, "REGISTRY_TOKEN": TOKEN, "FLASHDOCK_MONITOR_REFRESH_S": "2"}
        yield {"tmp": tmp, "registry": registry, "lite": lite, "weights": weights, "procs": procs, "env": env}
    finally:
        for proc in reversed(procs):
            proc.stop()


def instances(registry: Proc) -> list[dict[str, Any]]:
    resp = requests.get(registry.base_url + "/api/v1/services", timeout=2)
    return resp.json()["data"]["instances"]
