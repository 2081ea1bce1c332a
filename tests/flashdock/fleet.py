"""A real mesh for FlashDock tests: token registry, a compass-lite worker, a codon worker.

The compass-lite weights come from ``python -m compass.train`` on the three example complexes
(seconds), as scripts/run.sh gets them when compass/weights/ has none: no shared data is needed,
and the checkpoint always matches the code under test. One fleet serves the whole pytest session
(:func:`shared_fleet`, used by tests/flashdock and tests/e2e); modules add what only they need
(sequence-model workers, :func:`start_hanging`) to its registry and remove it again.
"""

from __future__ import annotations

import io
import itertools
import json
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support import (
    AUTH,
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

EXAMPLES = REPO / "examples" / "complexes"
LITE_PLAN = {
    "seed": 0,
    "data": {"roots": [str(EXAMPLES)]},
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


def spawn_worker(tmp: Path, registry: Proc, name: str, args: list[str]) -> Proc:
    """Start a worker registering with ``registry`` (returns at once: start several, then :func:`wait_ready`)."""
    return spawn(
        [*args, "--port", "0", "--registry", registry.base_url], tmp / f"{name}.log", "", env=python_env(**WORKER_ENV)
    )


def wait_ready(proc: Proc, name: str, timeout: float = 90) -> Proc:
    """Wait for the worker's start line and its ready route; stops it on failure."""
    try:
        proc.base_url = read_json_line(proc, "event", timeout=timeout)["base_url"]
        wait_until(lambda: requests.get(proc.base_url + "/health/ready", timeout=2).ok, timeout=timeout, what=name)
    except BaseException:
        proc.stop()
        raise
    return proc


def start_worker(tmp: Path, registry: Proc, name: str, args: list[str], timeout: float = 90) -> Proc:
    """A worker process registered with ``registry``; returns once its ready route answers."""
    return wait_ready(spawn_worker(tmp, registry, name, args), name, timeout)


def start_lite(tmp: Path, registry: Proc, weights: Path, name: str = "lite") -> Proc:
    args = ["-m", "compass.service.worker", "--model", "compass-lite", "--weights", str(weights)]
    args += ["--state-dir", str(tmp / "state"), "--stop-grace-s", "5", "--drain-timeout", "3"]
    return start_worker(tmp, registry, name, args)


def start_echo(tmp: Path, registry: Proc, name: str = "echo") -> Proc:
    """A fast-starting worker the tests can kill."""
    return start_worker(
        tmp, registry, name, ["-m", "services.worker.echo", "--token", TOKEN, "--drain-timeout", "1"], 30
    )


_HANGING = itertools.count()


def start_hanging(tmp: Path, registry: Proc, service: str, capabilities: list[str]) -> tuple[Proc, str]:
    """A :mod:`tests.flashdock.hanging_worker` process registered (passing) as ``service``; it and its instance id."""
    args = ["-m", "tests.flashdock.hanging_worker", "--registry", registry.base_url, "--token", TOKEN]
    args += ["--service", service, *(f"--capability={c}" for c in capabilities)]
    proc = spawn(args, tmp / f"hanging-{service}-{next(_HANGING)}.log", "")  # a fresh log: its first line is ours
    try:
        line = read_json_line(proc, "event", timeout=30)
        proc.base_url = line["base_url"]
        passing = {"instance_id": line["instance_id"], "status": "passing"}
        wait_until(
            lambda: any(passing.items() <= i.items() for i in instances(registry)),
            timeout=10,
            what="the hanging worker registered and passing",
        )
    except BaseException:
        proc.stop()
        raise
    return proc, line["instance_id"]


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
        codon_proc = spawn_worker(tmp, registry, "codon", ["-m", "seqmodels.codon"]) if codon else None
        if codon_proc is not None:  # its start overlaps the training
            procs.append(codon_proc)
        wait_until(
            lambda: trainer.popen.poll() is not None, timeout=180, interval=0.2, what="tiny compass-lite training"
        )
        assert weights.exists(), trainer.log()
        lite = start_lite(tmp, registry, weights)
        procs.append(lite)
        if codon_proc is not None:
            wait_ready(codon_proc, "codon")
        env = {"FLASHDOCK_REGISTRY_URL": registry.base_url, "REGISTRY_TOKEN": TOKEN, "FLASHDOCK_MONITOR_REFRESH_S": "2"}
        yield {"tmp": tmp, "registry": registry, "lite": lite, "weights": weights, "procs": procs, "env": env}
    finally:
        for proc in reversed(procs):
            proc.stop()


# One fleet per pytest session, whichever test folder asks first (tests/flashdock, tests/e2e): a
# session fixture lives in one folder's conftest, and a fixture imported into a second conftest
# would be a second definition with its own instance, so the fleet is kept here instead.
_SHARED: dict[str, Any] = {}


def shared_fleet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The session's fleet, for a session-scoped fixture: started on first use, stopped at the session's end.

    The stop is a finalizer of the first fixture that asked: session fixtures, wherever defined, are
    all torn down after the last test, so the fleet outlives every user in either folder.
    """
    assert request.scope == "session", "the shared fleet outlives modules: ask for it from a session fixture"
    if "error" in _SHARED:
        raise RuntimeError(f"the shared FlashDock fleet failed to start earlier: {_SHARED['error']}")
    if "fleet" not in _SHARED:
        stack = ExitStack()
        try:
            _SHARED["fleet"] = stack.enter_context(real_fleet(tmp_path_factory.mktemp("fleet")))
        except BaseException as exc:
            _SHARED["error"] = repr(exc)
            stack.close()
            raise
        request.addfinalizer(_SHARED.clear)
        request.addfinalizer(stack.close)  # finalizers run last-in first-out: stop the fleet, then forget it
    return _SHARED["fleet"]


def examples_zip() -> bytes:
    """The example complexes as a dataset archive (a per-complex layout under examples/)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(EXAMPLES.rglob("*")):
            if path.is_file():
                zf.write(path, f"examples/{path.relative_to(EXAMPLES)}")
    return buf.getvalue()


def upload_examples(fleet: dict[str, Any], name: str = "examples") -> str:
    """Upload :func:`examples_zip` to the compass-lite worker and wait until it validated; its dataset id."""
    api = fleet["lite"].base_url + "/api/v1/data/datasets"
    resp = requests.post(api, files={"file": ("ex.zip", examples_zip())}, data={"name": name}, headers=AUTH, timeout=30)
    assert resp.status_code == 202, resp.text
    ds = resp.json()["data"]["id"]
    wait_until(
        lambda: requests.get(f"{api}/{ds}", timeout=2).json()["data"]["status"] == "ready", timeout=60, what="dataset"
    )
    return ds


def instances(registry: Proc) -> list[dict[str, Any]]:
    resp = requests.get(registry.base_url + "/api/v1/services", timeout=2)
    return resp.json()["data"]["instances"]
