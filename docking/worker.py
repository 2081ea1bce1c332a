"""The dock worker (kind ``dock``, capability ``docking``): AutoDock Vina behind the worker runtime.

    python -m docking.worker --port 0 --registry http://127.0.0.1:8500 [--processes 1]

``POST /dock`` and ``POST /predict`` are the same call (so the batch runner and the screen CLI can
send ligands to any dock worker); the docking itself runs in a pool of ``--processes`` child
processes, one Vina search each, so a request never holds the server's threads on the GIL and a
crashed Vina takes only its process. The poses are then scored by COMPASS through the Router
(fallback compass-lite). Many ligands go through ``/api/v1/docking/jobs`` on the job runtime.
Prepared receptors are cached in ``--state-dir`` by content hash, shared by replicas and jobs.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import docking
from docking import box as bx
from docking import receptor as rec
from docking import request as dock_request
from docking import scoring
from docking.errors import DockingError, api_error
from docking.jobs import DockingJobs
from docking.routes import build_blueprint
from docking.settings import DockSettings
from services.common.cli import from_params, options
from services.common.envelope import ApiError, ErrorCode
from services.common.periodic import Periodic
from services.common.settings import WorkerSettings
from services.worker.cli import run_worker_cli
from services.worker.model import WorkerModel
from services.worker.procs import owner_token

if TYPE_CHECKING:
    from flask import Blueprint

    from services.client.router import Router

log = logging.getLogger(__name__)

VINA_VERSION = "1.2.7"
_SWEEP_S = 2.0
DOCK_OPTIONS = options(DockSettings)
PREDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["protein_pdb"],
    "properties": {
        "protein_pdb": {"type": "string"},
        "ligand_smiles": {"type": "string"},
        "ligand_sdf": {"type": "string"},
        "box": {"type": "object"},
        "exhaustiveness": {"type": "integer", "minimum": 1},
        "n_poses": {"type": "integer", "minimum": 1},
        "ring_conformers": {"type": "integer", "minimum": 1},
        "seed": {"type": "integer", "minimum": 0, "maximum": 2**31 - 2},
        "ph": {"type": ["number", "null"]},
        "score": {"type": "boolean"},
    },
}


def _pool_init() -> None:
    """Docking processes: one thread each for the libraries that would take every core."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import vina  # noqa: F401 - imported once here, not in the first request
    from meeko import MoleculePreparation  # noqa: F401


def _detect(payload: dict[str, Any], settings: DockSettings) -> dict[str, Any]:
    """Pockets of a protein (in a docking process: pyKVFinder is CPU work too)."""
    text = payload.get("protein_pdb")
    if not isinstance(text, str) or not text.strip():
        raise DockingError("INVALID_REQUEST", "'protein_pdb' is required")
    if len(text.encode()) > settings.max_structure_bytes:
        raise DockingError("INVALID_REQUEST", f"'protein_pdb' exceeds {settings.max_structure_bytes} bytes")
    receptor = rec.prepare(
        text, rec.ReceptorOptions(), dock_request.receptor_cache(settings), max_atoms=settings.max_protein_atoms
    )
    return {"pockets": bx.detect_pockets(receptor.pdb)}


class DockModel(WorkerModel):
    service_name = "dock"

    def __init__(self, settings: DockSettings, *, registry_urls: list[str], api_token: str = "") -> None:
        self.capabilities = ["docking"]
        self.models = [f"autodock-vina-{VINA_VERSION}"]
        self.task_types = ["dock"]
        self.predict_schema = PREDICT_SCHEMA
        self.settings = settings
        self.version = docking.__version__
        self.registry_urls = registry_urls
        self.api_token = api_token
        self.max_upload_bytes = 3 * settings.max_structure_bytes
        self.max_batch_items = 4  # each item is a whole docking: batches stay short
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.jobs = DockingJobs(settings, owner=owner_token(), registry_urls=registry_urls)
        self._pool: ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._router: Router | None = None
        self._sweeper: Periodic | None = None

    # -- start-up ----------------------------------------------------------------------------

    def load(self) -> None:
        """Start the docking processes (imports done once), adopt orphaned jobs, start the sweeper."""
        self._pool_for().submit(int).result()
        if self.registry_urls:
            from services.client.router import Router

            self._router = Router(self.registry_urls)
        self.jobs.reconcile()
        if self._sweeper is None:
            self._sweeper = Periodic("dock-sweep", _SWEEP_S, self.jobs.reconcile)
            self._sweeper.start()

    def _pool_for(self) -> ProcessPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                ctx = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(self.settings.processes, mp_context=ctx, initializer=_pool_init)
            return self._pool

    def _in_pool(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` in a docking process; a crashed process is replaced for the next call."""
        try:
            return self._pool_for().submit(fn, *args).result()
        except DockingError as err:
            raise api_error(err) from None
        except BrokenProcessPool:
            with self._pool_lock:
                self._pool = None
            raise ApiError(ErrorCode.PREDICTION_FAILED, "the docking process crashed; it has been restarted") from None

    # -- runtime hooks -----------------------------------------------------------------------

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Dock one ligand; every pose scored by COMPASS (or compass-lite) unless ``score`` is false."""
        try:
            req = dock_request.parse(payload, self.settings)
        except DockingError as err:
            raise api_error(err) from None
        answer = self._in_pool(dock_request.run, req, self.settings)
        if req.score:
            points = scoring.pose_points(answer["poses"])
            answer.update(scoring.score_poses(self._router, req.protein_pdb, answer["poses"], self.settings, points))
        else:
            answer.update(scoring.unscored(answer["poses"], None))
        return answer

    def pockets(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self._in_pool(_detect, payload, self.settings)

    def limits(self) -> dict[str, Any]:
        s = self.settings
        return {
            "max_box_side_angstrom": s.max_box_side,
            "max_exhaustiveness": s.max_exhaustiveness,
            "max_poses": s.max_poses,
            "max_ring_conformers": s.max_ring_conformers,
            "max_rotatable_bonds": s.max_rotatable_bonds,
            "max_heavy_atoms": s.max_heavy_atoms,
            "max_protein_atoms": s.max_protein_atoms,
            "max_structure_bytes": s.max_structure_bytes,
            "max_job_ligands": s.max_job_ligands,
            "docking_processes": s.processes,
        }

    def metadata(self) -> dict[str, Any]:
        return {
            "engine": f"vina {VINA_VERSION}",
            "pocket_detection": bx.detection_available(),
            "scored_by": [self.settings.score_service, *self.settings.score_fallbacks],
        }

    def info(self) -> dict[str, Any]:
        return {**super().info(), **self.metadata()}

    def blueprint(self) -> Blueprint:
        return build_blueprint(self.jobs, self.pockets, self.api_token)


def make_dock_model(args: SimpleNamespace, worker: WorkerSettings) -> DockModel:
    settings = from_params(DockSettings, vars(args))
    return DockModel(settings, registry_urls=list(worker.registry_urls), api_token=settings.api_token or worker.token)


def main(argv: list[str] | None = None) -> int:
    return run_worker_cli(
        make_dock_model,
        prog="python -m docking.worker",
        description="Dock worker: AutoDock Vina docking with COMPASS scoring, docking jobs, pocket detection.",
        options=DOCK_OPTIONS,
        argv=argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
