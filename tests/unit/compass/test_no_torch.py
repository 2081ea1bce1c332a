"""A descriptor-model worker never imports torch: it starts in a fraction of the time and memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "complexes" / "1a30"


@pytest.mark.parametrize("model", ["compass-lite", "compass"])
def test_descriptor_worker_imports_and_predicts_without_torch(model: str) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        import compass.service.worker  # the whole worker: routes, jobs, datasets, models
        from compass.model.checkpoint import load_checkpoint
        from compass.predict import predict_files, resolve_model

        predictor = load_checkpoint(resolve_model({model!r}))
        result = predict_files(predictor, {str(EXAMPLE / "1a30_pocket.pdb")!r}, {str(EXAMPLE / "1a30_ligand.sdf")!r})
        assert 0 < result["pK"] < 15, result
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torch_geometric"))
        print(loaded[:5])
        sys.exit(1 if loaded else 0)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_running_compass_lite_worker_has_not_loaded_torch(tmp_path: Path) -> None:
    """The served process itself (load, thread caps, registration-less serving), not only its imports."""
    from tests.support import free_port, python_env, spawn, wait_until

    port = free_port()
    args = ["-m", "compass.service.worker", "--model", "compass-lite", "--port", str(port)]
    args += ["--state-dir", str(tmp_path / "state"), "--model-threads", "1"]
    proc = spawn(args, tmp_path / "worker.log", f"http://127.0.0.1:{port}", env=python_env(OMP_NUM_THREADS="1"))
    try:
        import requests

        def ready() -> bool:
            try:
                return requests.get(proc.base_url + "/health", timeout=2).json()["data"]["status"] == "healthy"
            except (requests.RequestException, ValueError, KeyError, TypeError):
                return False

        wait_until(ready, timeout=120, interval=0.5, what="the worker to load its model")
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "libtorch" not in maps, "the descriptor worker loaded torch"
    finally:
        proc.stop()
