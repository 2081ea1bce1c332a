"""The COMPASS worker's module shape: serving and management are parts the worker composes, the
routes never import the worker, and a compass-lite worker starts and predicts without the
training stack (torch_geometric, the ViSNet model, the training loop)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support import REPO

LAZY = ("torch_geometric", "compass.model.visnet", "compass.train.trainer", "compass.train.loop")
SERVICE = REPO / "compass" / "service"

LITE_WORKER = textwrap.dedent(
    """
    import sys, tempfile
    from pathlib import Path
    from compass.service.settings import ServiceSettings
    from compass.service.worker import CompassModel

    model = CompassModel("compass-lite", ServiceSettings(state_dir=Path(tempfile.mkdtemp()) / "state"))
    model.load()
    example = Path("examples/complexes/1a30")
    body = {
        "protein_pdb": (example / "1a30_pocket.pdb").read_text(),
        "ligand_sdf": (example / "1a30_ligand.sdf").read_text(),
    }
    assert model.ready() and model.predict(body)["model"] == "compass-lite"
    print(sorted(m for m in LAZY if m in sys.modules))
    """
)


def test_a_compass_lite_worker_starts_and_predicts_without_the_training_stack() -> None:
    script = LITE_WORKER.replace("LAZY", repr(LAZY))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # A fresh interpreter: this test process may already hold torch_geometric (other tests).
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def _service_imports(path: Path) -> tuple[set[str], set[str]]:
    """The ``compass.service`` modules ``path`` imports: at top level, and anywhere (functions, TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    top = {n.module for n in tree.body if isinstance(n, ast.ImportFrom) and n.module}
    anywhere = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    return {m for m in top if m.startswith("compass.service")}, {m for m in anywhere if m.startswith("compass.service")}


def test_routes_serving_and_management_never_import_the_worker() -> None:
    for name in ("routes.py", "serving.py", "manage.py"):
        _, anywhere = _service_imports(SERVICE / name)
        assert not anywhere & {"compass.service.worker", "compass.service.routes"}, (name, anywhere)
    top, anywhere = _service_imports(SERVICE / "worker.py")
    assert anywhere == top, f"worker.py imports inside a function or TYPE_CHECKING: {anywhere - top}"
    assert {"compass.service.routes", "compass.service.serving", "compass.service.manage"} <= top
