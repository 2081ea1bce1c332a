"""The COMPASS worker: affinity inference with micro-batching, plus datasets, training jobs and models.

    python -m compass.service.worker --model compass|compass-lite --port 0 --registry http://127.0.0.1:8500

Both kinds serve the same routes; each serves its own active model (``compass``: ViSNet,
``compass-lite``: descriptors + trees), so a Router can fall back from one to the other. State
(SQLite, datasets, runs, models) lives in ``--state-dir``; replicas on one host may share it.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import compass
from compass.model.checkpoint import CheckpointError
from compass.predict import SHIPPED, kd_from_pk
from compass.service.archives import ArchiveLimits
from compass.service.cli import COMPASS_OPTIONS, KINDS, service_settings
from compass.service.datasets import DatasetManager
from compass.service.inputs import PREDICT_SCHEMA, featurize, parse_complex
from compass.service.jobs import JobManager
from compass.service.models import ModelRegistry, checkpoint_error
from compass.service.served import ForwardPasses, ServedModel
from compass.service.settings import ServiceSettings
from compass.service.store import Store
from compass.settings import weights_dir
from services.common.envelope import ApiError, ErrorCode
from services.common.periodic import Periodic
from services.common.settings import WorkerSettings
from services.worker.cli import run_worker_cli
from services.worker.jobfiles import read_json
from services.worker.model import WorkerModel, item_error, item_ok
from services.worker.procs import owner_token

if TYPE_CHECKING:
    from flask import Blueprint
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

_SWEEP_S = 2.0
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class CompassModel(WorkerModel):
    """One kind (``compass`` or ``compass-lite``) with its state folder, batcher, jobs and models."""

    def __init__(
        self, kind: str, settings: ServiceSettings, *, device: str = "cpu", api_token: str = "", weights: str = ""
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.service_name = kind
        self.capabilities = ["affinity"]
        self.predict_schema = PREDICT_SCHEMA
        self.version = compass.__version__
        self.models: list[str] = []
        self.settings = settings
        self.device = device
        self.api_token = api_token
        self.weights = weights
        self.max_batch_items = settings.max_pairs
        self.max_upload_bytes = settings.max_upload_bytes
        state = settings.state_dir
        state.mkdir(parents=True, exist_ok=True)
        self.owner = owner_token()
        self.store = Store(state / "compass.db")
        self.registry = ModelRegistry(self.store, state, device)
        limits = ArchiveLimits(
            settings.max_upload_bytes,
            settings.max_archive_files,
            settings.max_extracted_bytes,
            settings.max_compression_ratio,
        )
        self.datasets = DatasetManager(self.store, state, limits, self.owner)
        self.jobs = JobManager(
            self.store,
            state,
            self.datasets,
            settings,
            device=device,
            owner=self.owner,
            register_model=self._register_from_job,
        )
        cpu = not device.startswith("cuda")
        self.model_threads = settings.model_threads if settings.model_threads >= 0 else (1 if cpu else 0)
        workers = settings.batch_workers or ((os.cpu_count() or 1) if cpu and kind == "compass" else 1)
        wait_s = settings.max_wait_ms / 1000.0
        self.batcher = ForwardPasses(settings.max_batch, wait_s, self._observe, self.model_threads, workers)
        self.served: ServedModel | None = None
        # Featurising holds the GIL: more at once than CPUs only starves the thread running the model.
        self._prep_slots = threading.BoundedSemaphore(settings.featurize_slots or os.cpu_count() or 1)
        self._active_version = 0
        self._swap_lock = threading.Lock()
        self._sweeper: Periodic | None = None  # started by load(): adopts dead workers' jobs, follows activations
        self._batch_hist: Any = None
        self._forward_hist: Any = None

    # -- start-up ----------------------------------------------------------------------------

    def load(self) -> None:
        """Register shipped weights, serve the active model, adopt orphaned jobs, start the sweeper."""
        if self.model_threads > 0:
            import torch

            torch.set_num_threads(self.model_threads)
        explicit = Path(self.weights) if self.weights else None
        shipped = weights_dir() / SHIPPED[self.kind]
        shipped_row = None
        if explicit is not None:  # asked for by flag: failing to load it is fatal
            row = self.registry.register(explicit, name=f"{self.kind} ({explicit.name})", source="file")
            self.activate(row["id"])
        elif shipped.is_file():
            try:
                shipped_row = self.registry.register(shipped, name=f"{self.kind} (shipped)", source="shipped")
            except CheckpointError:
                log.exception("shipped weights %s cannot be loaded", shipped)
        if self.served is None:
            active, _ = self.store.active(self.kind)
            candidates = [active, shipped_row["id"] if shipped_row else None]
            row = self.store.get("models", active) if active else None
            if shipped_row and row and row["source"] == "shipped" and active != shipped_row["id"]:
                # An upgrade brought new shipped weights: they replace the old shipped ones (a model
                # someone trained or activated by hand stays active across upgrades).
                log.info("new shipped weights %s replace the shipped %s", shipped_row["id"], active)
                candidates.reverse()
            for candidate in candidates:
                if candidate and self._try_activate(candidate):
                    break
        if self.served is None:
            log.warning(
                "%s has no model to serve yet: /predict answers MODEL_NOT_LOADED until one is activated", self.kind
            )
        self.datasets.start()
        self.jobs.reconcile()
        if self._sweeper is None:
            self._sweeper = Periodic("compass-sweep", _SWEEP_S, self._sweep)
            self._sweeper.start()

    def _try_activate(self, model_id: str) -> bool:
        try:
            self.activate(model_id)
            return True
        except ApiError as exc:
            log.error("cannot serve model %s: %s", model_id, exc.details)
            return False

    def _sweep(self) -> None:
        """Adopt jobs and validations of dead workers; follow activations made by other replicas."""
        self.jobs.reconcile()
        self.datasets.reconcile()
        model_id, version = self.store.active(self.kind)
        if model_id and version != self._active_version:
            self._follow(model_id, version)

    def _follow(self, model_id: str, version: int) -> None:
        try:
            row = self.registry.get(model_id)
            served = ServedModel(row["id"], row["name"], row["kind"], self.registry.load(row))
        except (ApiError, CheckpointError) as exc:
            self._active_version = version  # said once; the next activation is tried again
            log.error("cannot follow the activation of %s: %s (still serving the previous model)", model_id, exc)
            return
        with self._swap_lock:
            self.served, self._active_version = served, version
            self.models = [f"{self.kind}@{model_id}"]
        log.info("now serving %s (activated by another replica)", model_id)
        self.publish_metadata()

    # -- models ------------------------------------------------------------------------------

    def activate(self, model_id: str) -> dict[str, Any]:
        """Load ``model_id`` fully, then swap it in: requests in flight finish on the old one."""
        row = self.registry.get(model_id)
        if row["kind"] != self.kind:
            raise ApiError(
                ErrorCode.CONFLICT, f"model {model_id} is a {row['kind']} model; this worker serves {self.kind}"
            )
        try:
            served = ServedModel(row["id"], row["name"], row["kind"], self.registry.load(row))
        except CheckpointError as exc:
            raise checkpoint_error(exc) from exc
        with self._swap_lock:
            previous = self.served
            self._active_version = self.store.set_active(self.kind, model_id)
            self.served = served
            self.models = [f"{self.kind}@{model_id}"]
        log.info("serving %s model %s (%s)", self.kind, model_id, row["name"])
        self.publish_metadata()
        return {"active": served.describe(), "previous": previous.describe() if previous else None}

    def _register_from_job(self, checkpoint: Path, job: dict[str, Any]) -> dict[str, Any]:
        evaluation = read_json(checkpoint.parent / "eval.json")
        return self.registry.register(
            checkpoint,
            name=job.get("name") or job["id"],
            source="job",
            job_id=job["id"],
            dataset_id=job.get("dataset_id"),
            metrics=evaluation,
        )

    # -- runtime hooks -----------------------------------------------------------------------

    def ready(self) -> bool:
        return self.served is not None

    def metadata(self) -> dict[str, Any]:
        served = self.served
        return {"active_model": served.describe() if served else None, "batching": self.batcher.enabled}

    def limits(self) -> dict[str, Any]:
        s = self.settings
        return {
            "max_pairs_per_batch_call": s.max_pairs,
            "max_structure_bytes": s.max_structure_bytes,
            "max_upload_bytes": s.max_upload_bytes,
            "micro_batch": {"max_batch": s.max_batch, "max_wait_ms": s.max_wait_ms, "workers": self.batcher.workers},
            "model_threads": self.model_threads,
            "jobs_per_device": s.jobs_per_device,
        }

    def info(self) -> dict[str, Any]:
        served = self.served
        return {**super().info(), "active_model": served.describe() if served else None}

    def add_metrics(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Gauge, Histogram

        self._batch_hist = Histogram(
            "compass_batch_size", "Complexes per forward pass.", buckets=_BATCH_BUCKETS, registry=registry
        )
        self._forward_hist = Histogram(
            "compass_forward_seconds", "Time of one forward pass.", buckets=_SECONDS_BUCKETS, registry=registry
        )
        Gauge("compass_batch_queue", "Complexes waiting for a forward pass.", registry=registry).set_function(
            lambda: self.batcher.queued
        )

    def _observe(self, size: int, seconds: float) -> None:
        if self._batch_hist is not None:
            self._batch_hist.observe(size)
            self._forward_hist.observe(seconds)

    def blueprint(self) -> Blueprint:
        from compass.service.routes import build_blueprint

        return build_blueprint(self)

    # -- inference ---------------------------------------------------------------------------

    def _model(self) -> ServedModel:
        served = self.served  # one read: the whole request uses this model even if a swap happens
        if served is None:
            raise ApiError(ErrorCode.MODEL_NOT_LOADED, "no model is active: activate one", retry_after=5)
        return served

    def _answer(self, pk: float, served: ServedModel, graph: Any, notes: list[str], **times: float) -> dict[str, Any]:
        if not math.isfinite(pk):
            raise ApiError(ErrorCode.PREDICTION_FAILED, f"the model returned a non-finite value ({pk})")
        return {
            "pK": round(pk, 4),
            "kd": kd_from_pk(pk),
            "model": served.kind,
            "model_id": served.id,
            "model_version": served.id,
            "model_name": served.name,
            "ligand_atoms": graph.num_ligand_atoms,
            "pocket_atoms": int(graph.atom_type.numel()) - graph.num_ligand_atoms,
            "notes": notes,
            "batch_size": int(times.pop("batch_size")),
            "timings_ms": {k: round(v, 3) for k, v in times.items()},
            # Descriptor models (compass.model.pairs) say how far to trust the number: interval and domain.
            **(served.predictor.trust(graph, pk) if hasattr(served.predictor, "trust") else {}),
        }

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        t0 = time.perf_counter()
        served = self._model()
        inp = parse_complex(payload, self.settings.max_structure_bytes)
        with self._prep_slots:
            graph, notes = featurize(inp, served.feature_settings)
        t1 = time.perf_counter()
        [scored] = self.batcher.score([graph], served)
        total = (time.perf_counter() - t0) * 1e3
        return self._answer(
            scored.pK,
            served,
            graph,
            notes,
            batch_size=scored.batch_size,
            preprocess=(t1 - t0) * 1e3,
            queue=scored.queue_ms,
            model=scored.model_ms,
            total=total,
        )

    def predict_batch(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Featurise each pair (failures stay per item), then score them all in shared forward passes."""
        served = self._model()
        results: list[dict[str, Any] | None] = [None] * len(items)
        ready: list[tuple[int, Any, list[str], float]] = []
        for i, item in enumerate(items):
            t0 = time.perf_counter()
            try:
                inp = parse_complex(item, self.settings.max_structure_bytes)
                with self._prep_slots:
                    graph, notes = featurize(inp, served.feature_settings)
            except ApiError as err:
                results[i] = item_error(err.code, err.details)
                continue
            ready.append((i, graph, notes, (time.perf_counter() - t0) * 1e3))
        scores = self.batcher.score([g for _, g, _, _ in ready], served) if ready else []
        for (i, graph, notes, prep_ms), scored in zip(ready, scores, strict=True):
            try:
                results[i] = item_ok(
                    self._answer(
                        scored.pK,
                        scored.model,
                        graph,
                        notes,
                        batch_size=scored.batch_size,
                        preprocess=prep_ms,
                        queue=scored.queue_ms,
                        model=scored.model_ms,
                    )
                )
            except ApiError as err:
                results[i] = item_error(err.code, err.details)
        return [r for r in results if r is not None]


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
