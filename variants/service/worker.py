"""The variant worker: ``/predict`` scores variants with the active model, ``/api/v1/design`` ranks a library,
``/api/v1/training/tasks`` trains on the worker's mutation store (as jobs that survive kill -9).

    python -m variants.service.worker --port 0 --registry http://127.0.0.1:8500 --state-dir variants-state

State (``--state-dir``): ``variants.db`` (the mutation store), ``worker.db`` (jobs, models),
``runs/``, ``jobs/`` and ``workdir/`` (plugins and caches: trusted local code, see variants.plugins).
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import click
import numpy as np

import variants
from services.common.cli import from_params, options
from services.common.periodic import Periodic
from services.common.settings import WorkerSettings
from services.worker.cli import run_worker_cli
from services.worker.jobs import jobs_table
from services.worker.model import WorkerModel
from services.worker.procs import owner_token
from services.worker.store import Store
from variants.plugins import load_plugins
from variants.service.jobs import TrainingJobs
from variants.service.routes import build_blueprint
from variants.service.serving import MODELS_TABLE, Serving
from variants.settings import VariantSettings, variant_settings

if TYPE_CHECKING:
    from flask import Blueprint

log = logging.getLogger(__name__)
_SWEEP_S = 2.0
VARIANT_OPTIONS = options(VariantSettings, only=("state_dir", "max_variants", "max_design", "api_token"))
PREDICT_SCHEMA = {
    "type": "object",
    "required": ["variants"],
    "properties": {
        "variants": {
            "type": "array",
            "items": {"type": "string"},
            "description": "mutant notation (D102Y, W99F:D102Y), full sequences, or region letters",
        },
        "template": {"type": "string", "description": "template id or sequence (default: the model's)"},
    },
}


class VariantWorker(WorkerModel):
    service_name = "variant"
    version = variants.__version__
    predict_schema = PREDICT_SCHEMA

    def __init__(self, settings: VariantSettings, *, device: str = "cpu", api_token: str = "", run: str = "") -> None:
        self.capabilities = ["variant-effect"]
        self.settings = settings
        self.api_token = api_token
        self.max_upload_bytes = settings.max_upload_bytes
        state = Path(settings.state_dir).resolve()
        self.state = state
        self.workdir = state / "workdir"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.db_path = state / "variants.db"
        self.store = Store(state / "worker.db", jobs_table("jobs", "plan_json TEXT, model_id TEXT") + MODELS_TABLE)
        self.registry = load_plugins(self.workdir)
        self.serving = Serving(self.store, self.registry, settings, self.db_path, self.workdir)
        self.jobs = TrainingJobs(
            self.store,
            state,
            self.workdir,
            self.db_path,
            owner=owner_token(),
            device=device,
            stop_grace_s=settings.stop_grace_s,
            register=lambda run, job: self.serving.register(run, f"job {job['id']}"),
        )
        self.run = run
        self._sweeper: Periodic | None = None

    @property
    def models(self) -> list[str]:
        served = self.serving.describe()
        return [f"variant-{served['model']}-{served['id']}"] if served else ["variant"]

    def load(self) -> None:
        if self.run:
            self.serving.activate(self.serving.register(Path(self.run), "file")["id"])
        self.serving.follow()
        self.jobs.reconcile()
        if self._sweeper is None:
            self._sweeper = Periodic("variant-sweep", _SWEEP_S, self._sweep)
            self._sweeper.start()

    def _sweep(self) -> None:
        before = self.serving.active_id
        self.jobs.reconcile()
        self.serving.follow()
        if self.serving.active_id != before:
            self.publish_metadata()

    def metadata(self) -> dict[str, Any]:
        return {"active_model": self.serving.describe()}

    def limits(self) -> dict[str, Any]:
        s = self.settings
        return {
            "max_variants_per_predict": s.max_variants,
            "max_design": s.max_design,
            "max_library": s.max_library,
            "max_upload_bytes": s.max_upload_bytes,
        }

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "active_model": self.serving.describe(),
            "plugin_failures": [str(f) for f in self.registry.failures],
        }

    def blueprint(self) -> Blueprint:
        return build_blueprint(self)

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.serving.predict(payload)

    def curves(self, run: Path) -> dict[str, Any] | None:
        """ROC and precision-recall points of a run's test split (for pages to plot)."""
        from sklearn.metrics import precision_recall_curve, roc_curve

        path = run / "labels.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            y, s = data["test_labels"], data["test_scores"]
        if len(np.unique(y)) < 2:
            return None
        fpr, tpr, _ = roc_curve(y, s)
        prec, rec, _ = precision_recall_curve(y, s)
        step = max(1, len(fpr) // 400), max(1, len(prec) // 400)
        return {
            "roc": {"fpr": fpr[:: step[0]].tolist(), "tpr": tpr[:: step[0]].tolist()},
            "pr": {"recall": rec[:: step[1]].tolist(), "precision": prec[:: step[1]].tolist()},
        }


def make_variant_worker(args: SimpleNamespace, worker: WorkerSettings) -> VariantWorker:
    settings = from_params(VariantSettings, vars(args), variant_settings())
    return VariantWorker(settings, device=worker.device, api_token=settings.api_token or worker.token, run=args.run)


def main(argv: list[str] | None = None) -> int:
    run_option = click.Option(["--run"], default="", help="a finished run folder to register and serve at start")
    return run_worker_cli(
        make_variant_worker,
        prog="python -m variants.service.worker",
        description="Variant worker: variant-effect scoring, design libraries, training jobs.",
        options=[*VARIANT_OPTIONS, run_option],
        argv=argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
