"""The COMPASS worker: affinity inference with micro-batching, plus datasets, training jobs and models.

    python -m compass.service.worker --model compass|compass-lite --port 0 --registry http://127.0.0.1:8500

Both kinds serve the same routes; each serves its own active model (``compass``: the descriptor
stack or ViSNet, ``compass-lite``: descriptors + trees), so a Router can fall back from one to the
other. State (SQLite, datasets, runs, models) lives in ``--state-dir``; replicas on one host may share it.
:class:`CompassModel` only composes :class:`~compass.service.serving.Serving` (the /predict path)
and :class:`~compass.service.manage.Management` (datasets, jobs, models) for the worker runtime.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import compass
from compass.service.cli import COMPASS_OPTIONS, KINDS, service_settings
from compass.service.inputs import PREDICT_SCHEMA
from compass.service.manage import Management
from compass.service.routes import build_blueprint
from compass.service.serving import Serving
from compass.service.settings import ServiceSettings
from services.common.periodic import Periodic
from services.common.settings import WorkerSettings
from services.worker.cli import run_worker_cli
from services.worker.model import WorkerModel

if TYPE_CHECKING:
    from flask import Blueprint
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

_SWEEP_S = 2.0


class CompassModel(WorkerModel):
    """One kind (``compass`` or ``compass-lite``): its serving part, its management part and the sweeper."""

    def __init__(
        self, kind: str, settings: ServiceSettings, *, device: str = "cpu", api_token: str = "", weights: str = ""
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.service_name = kind
        self.capabilities = ["affinity"]
        self.predict_schema = PREDICT_SCHEMA
        self.version = compass.__version__
        self.settings = settings
        self.device = device
        self.api_token = api_token
        self.weights = weights
        self.max_batch_items = settings.max_pairs
        self.max_upload_bytes = settings.max_upload_bytes
        self.manage = Management(kind, settings, device=device)
        self.serving = Serving(
            kind, settings, self.manage.store, self.manage.registry, device=device, on_swap=self.publish_metadata
        )
        self._sweeper: Periodic | None = None  # started by load(): adopts dead workers' jobs, follows activations

    @property
    def models(self) -> list[str]:
        """What the runtime lists and registers: the served model, which a swap replaces."""
        return self.serving.models

    # -- start-up ----------------------------------------------------------------------------

    def load(self) -> None:
        """Register shipped weights, serve the active model, adopt orphaned jobs, start the sweeper."""
        self.serving.limit_threads()
        if self.weights:  # asked for by flag: failing to load it is fatal
            self.serving.activate(self.manage.register_file(Path(self.weights)))
        else:
            for candidate in self.manage.startup_candidates():
                if self.serving.try_activate(candidate):
                    break
        if self.serving.served is None:
            log.warning(
                "%s has no model to serve yet: /predict answers MODEL_NOT_LOADED until one is activated", self.kind
            )
        self.manage.start()
        if self._sweeper is None:
            self._sweeper = Periodic("compass-sweep", _SWEEP_S, self._sweep)
            self._sweeper.start()

    def _sweep(self) -> None:
        """Adopt jobs and validations of dead workers; follow activations made by other replicas."""
        self.manage.reconcile()
        self.serving.follow()

    # -- runtime hooks -----------------------------------------------------------------------

    def ready(self) -> bool:
        return self.serving.served is not None

    def queued_items(self) -> int:
        return self.serving.batcher.queued

    def metadata(self) -> dict[str, Any]:
        served = self.serving.served
        return {
            "active_model": self.serving.describe(),
            # What the page shows beside every number: how the active model did on held-out proteins.
            "validation": served.validation if served else None,
            "batching": self.serving.batcher.enabled,
        }

    def limits(self) -> dict[str, Any]:
        s = self.settings
        batcher = self.serving.batcher
        return {
            "max_pairs_per_batch_call": s.max_pairs,
            "max_structure_bytes": s.max_structure_bytes,
            "max_upload_bytes": s.max_upload_bytes,
            "micro_batch": {"max_batch": s.max_batch, "max_wait_ms": s.max_wait_ms, "workers": batcher.workers},
            "model_threads": self.serving.model_threads,
            "jobs_per_device": s.jobs_per_device,
        }

    def info(self) -> dict[str, Any]:
        return {**super().info(), "active_model": self.serving.describe()}

    def add_metrics(self, registry: CollectorRegistry) -> None:
        self.serving.add_metrics(registry)

    def blueprint(self) -> Blueprint:
        return build_blueprint(self.serving, self.manage, self.api_token)

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.serving.predict(payload)

    def predict_batch(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.serving.predict_batch(items)


def make_compass_model(args: SimpleNamespace, worker: WorkerSettings) -> CompassModel:
    """The model the runtime serves, from the parsed flags (the runtime's and ours)."""
    settings = service_settings(args)
    token = settings.api_token or worker.token
    return CompassModel(args.model, settings, device=worker.device, api_token=token, weights=settings.weights)


def main(argv: list[str] | None = None) -> int:
    return run_worker_cli(
        make_compass_model,
        prog="python -m compass.service.worker",
        description="COMPASS worker: affinity inference, datasets, training jobs and models.",
        options=COMPASS_OPTIONS,
        argv=argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
