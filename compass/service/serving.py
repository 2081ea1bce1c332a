"""Inference and the served-model swap of a COMPASS worker: the /predict path and nothing else.

Kept apart from datasets, jobs and the model registry (:mod:`compass.service.manage`) so the
request path reads on its own and the routes take only the part they use. A swap is one reference
assignment under a lock: requests in flight finish on the model they started with.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from compass.model.checkpoint import CheckpointError
from compass.predict import kd_from_pk
from compass.service.inputs import featurize, parse_complex
from compass.service.models import ModelRegistry, checkpoint_error
from compass.service.served import ForwardPasses, ServedModel
from compass.service.settings import ServiceSettings
from compass.service.store import Store
from compass.service.validation import NO_FIGURE_WARNING, activation_check, validation_of
from services.common.envelope import ApiError, ErrorCode
from services.worker.model import as_api_error, item_error, item_ok

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Serving:
    """The active model of one kind and the shared forward passes that score with it."""

    def __init__(
        self,
        kind: str,
        settings: ServiceSettings,
        store: Store,
        registry: ModelRegistry,
        *,
        device: str = "cpu",
        on_swap: Callable[[], None] | None = None,
    ) -> None:
        self.kind = kind
        self.settings = settings
        self.store = store
        self.registry = registry
        self.on_swap = on_swap  # told after every swap (the worker re-registers its metadata)
        cpu = not device.startswith("cuda")
        self.model_threads = settings.model_threads if settings.model_threads >= 0 else (1 if cpu else 0)
        workers = settings.batch_workers or ((os.cpu_count() or 1) if cpu and kind == "compass" else 1)
        wait_s = settings.max_wait_ms / 1000.0
        self.batcher = ForwardPasses(settings.max_batch, wait_s, self._observe, self.model_threads, workers)
        self.served: ServedModel | None = None
        self.models: list[str] = []
        # Featurising holds the GIL: more at once than CPUs only starves the thread running the model.
        self._prep_slots = threading.BoundedSemaphore(settings.featurize_slots or os.cpu_count() or 1)
        self._active_version = 0
        self._swap_lock = threading.Lock()
        self._batch_hist: Any = None
        self._forward_hist: Any = None

    def limit_threads(self) -> None:
        """Cap torch's own threads before any model runs (``model_threads`` > 0).

        A descriptor model never imports torch (it would cost ~180 MB per worker), so until something has,
        the cap goes where torch reads it when a ViSNet model first imports it.
        """
        if self.model_threads <= 0:
            return
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(self.model_threads)
        else:
            os.environ["OMP_NUM_THREADS"] = str(self.model_threads)

    # -- the served model ----------------------------------------------------------------------

    def describe(self) -> dict[str, Any] | None:
        served = self.served
        return served.describe() if served else None

    def _load(self, row: dict[str, Any]) -> ServedModel:
        """The model of ``row`` loaded, with its validation figure (a file that cannot load: CheckpointError)."""
        predictor = self.registry.load(row)
        return ServedModel(row["id"], row["name"], row["kind"], predictor, validation_of(row, predictor.meta))

    def activation_preview(self, model_id: str) -> dict[str, Any]:
        """The candidate's figure beside the active model's, without loading anything (the page shows both)."""
        row = self.registry.get(model_id)
        served = self.served
        figure = served.validation if served is not None and served.id == model_id else validation_of(row)
        return {
            "candidate": {"id": row["id"], "name": row["name"], "kind": row["kind"], "validation": figure},
            "active": served.describe() if served else None,
            "needs_override": figure is None,
        }

    def activate(self, model_id: str, *, confirm: bool = True, override: bool = True) -> dict[str, Any]:
        """Load ``model_id`` fully, then swap it in: requests in flight finish on the old one.

        The route passes the caller's ``confirm`` and ``override``; start-up (shipped weights, ``--weights``)
        is the operator's own choice and keeps the defaults.
        """
        row = self.registry.get(model_id)
        if row["kind"] != self.kind:
            raise ApiError(
                ErrorCode.CONFLICT, f"model {model_id} is a {row['kind']} model; this worker serves {self.kind}"
            )
        try:
            served = self._load(row)
        except CheckpointError as exc:
            raise checkpoint_error(exc) from exc
        current = self.served
        activation_check(served.validation, current.validation if current else None, confirm=confirm, override=override)
        previous = self._swap(served, lambda: self.store.set_active(self.kind, model_id))
        log.info("serving %s model %s (%s)", self.kind, model_id, row["name"])
        return {
            "active": served.describe(),
            "previous": previous.describe() if previous else None,
            "override": served.validation is None,
        }

    def try_activate(self, model_id: str) -> bool:
        """Activate at start-up: a model that cannot be served is logged, and the next one is tried."""
        try:
            self.activate(model_id)
            return True
        except ApiError as exc:
            log.error("cannot serve model %s: %s", model_id, exc.details)
            return False

    def follow(self) -> None:
        """Serve the model another replica activated (the shared store's version moved on)."""
        model_id, version = self.store.active(self.kind)
        if not model_id or version == self._active_version:
            return
        try:
            served = self._load(self.registry.get(model_id))
        except (ApiError, CheckpointError) as exc:
            self._active_version = version  # said once; the next activation is tried again
            log.error("cannot follow the activation of %s: %s (still serving the previous model)", model_id, exc)
            return
        self._swap(served, lambda: version)
        log.info("now serving %s (activated by another replica)", model_id)

    def _swap(self, served: ServedModel, version: Callable[[], int]) -> ServedModel | None:
        """Swap ``served`` in; ``version`` is read under the lock so the sweeper never sees half a swap."""
        with self._swap_lock:
            previous = self.served
            self._active_version = version()
            self.served = served
            self.models = [f"{self.kind}@{served.id}"]
        if self.on_swap is not None:
            self.on_swap()
        return previous

    # -- metrics -------------------------------------------------------------------------------

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

    # -- inference -----------------------------------------------------------------------------

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
            "pocket_atoms": graph.num_atoms - graph.num_ligand_atoms,
            "notes": notes,
            "validation": served.validation,
            **({} if served.validation else {"warning": NO_FIGURE_WARNING}),
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
            except Exception as exc:  # one unreadable pair fails only its own item
                err = as_api_error(exc)
                if err is not exc:
                    log.warning("batch item %d could not be featurised", i, exc_info=True)
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
