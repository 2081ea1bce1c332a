"""The base of every sequence worker: one request shape, validation, dynamic batching, metrics.

A kind subclasses :class:`SequenceModel`, names its task types, alphabet and limits, loads its
weights in :meth:`SequenceModel.load_model` and answers a homogeneous batch in
:meth:`SequenceModel.run`. Requests arriving at the same time on different server threads are
merged into one :meth:`~SequenceModel.run` call by :class:`~services.worker.batching.MicroBatcher`;
a ``/predict/batch`` call feeds the same batcher, so its sequences share forward passes too.

A kind whose requests can cost minutes sets ``cost_aware``: each request then has a cost
(:meth:`SequenceModel.cost`, residues × forward passes) that the runtime's admission checks
against the request's and the client's budget (413/429), and is cut into pieces of bounded cost
(:meth:`SequenceModel.pieces`, joined again by :meth:`SequenceModel.join`) that the batcher
schedules fairly, so a short request is never stuck behind a long one.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import abstractmethod
from collections.abc import Hashable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from seqmodels.metrics import TaskMetrics
from seqmodels.sequences import Alphabet, SeqRequest, clean_sequence, request_options, resolve_task_type
from seqmodels.settings import SeqSettings
from services.common.envelope import ApiError, ErrorCode
from services.worker.admission import charge
from services.worker.batching import Batched, MicroBatcher
from services.worker.model import WorkerModel, as_api_error, item_error, item_ok

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

Result = dict[str, Any]


class SequenceModel(WorkerModel):
    """A worker whose requests are ``{"sequence", "task_type", "options"}``.

    Subclasses set ``service_name``, ``version``, ``capabilities``, ``models``, ``tasks`` (the
    canonical task types, the first is the default) and ``task_aliases`` (capability name →
    task type, so a pipeline can send the capability as the task type), and implement
    :meth:`alphabet`, :meth:`load_model` and :meth:`run`.
    """

    tasks: tuple[str, ...] = ()
    task_aliases: dict[str, str] = {}  # noqa: RUF012 - read-only class default
    # False when the tasks read different inputs (protein vs DNA): a body must then name its task.
    has_default_task: bool = True
    # False for CPU-bound libraries that gain nothing from a shared pass (DNA Chisel): run inline.
    batched: bool = True
    # True where one request can cost minutes (masked LMs): admission by cost and bounded passes.
    cost_aware: bool = False
    cost_unit = "residue-passes"

    def __init__(self, settings: SeqSettings | None = None) -> None:
        self.settings = settings or SeqSettings()
        self.rate_limit_per_min = self.settings.rate_limit_per_min
        self.max_batch_items = self.settings.max_batch_items
        if self.cost_aware:
            self.max_request_cost = float(self.settings.max_request_cost)
            self.max_client_cost = float(max(self.settings.max_client_cost, self.settings.max_request_cost))
        self.task_types = [*self.tasks, *self.task_aliases]
        self.metrics = TaskMetrics(self.service_name, queued=lambda: self.batcher.queued)
        self.batcher: MicroBatcher[SeqRequest, Result] = MicroBatcher(
            self._run_batch,
            max_batch=self.settings.batch_size,
            max_wait_s=self.settings.batch_wait_ms / 1000.0,
            on_batch=lambda key, size, seconds: self.metrics.observe_batch(str(key[0]), size, seconds),
            name=f"{self.service_name}-batcher",
            inline=not self.batched,
        )
        self._loaded = threading.Event()

    # -- what a kind implements -------------------------------------------------------------------

    @abstractmethod
    def alphabet(self, task_type: str) -> Alphabet:
        """The letters ``task_type`` accepts."""

    def max_length(self, task_type: str) -> int:
        """The longest sequence ``task_type`` accepts (the setting, unless the model needs less)."""
        return self.settings.max_length

    @abstractmethod
    def load_model(self) -> None:
        """Load weights from disk (never from the network)."""

    def prepare(self, request: SeqRequest) -> SeqRequest:
        """Check the options of one request (raise INVALID_REQUEST) before it joins a batch."""
        return request

    def batch_key(self, request: SeqRequest) -> tuple[Hashable, ...]:
        """Requests with equal keys may share a forward pass; the task type comes first."""
        return (request.task_type,)

    @abstractmethod
    def run(self, requests: Sequence[SeqRequest]) -> Sequence[Any]:
        """Answer a batch of requests (or pieces) with equal :meth:`batch_key`; an Exception fails only its item."""

    def cost(self, request: SeqRequest) -> float:
        """What ``request`` costs in :attr:`cost_unit`: one pass over its residues unless the kind says more."""
        return float(len(request.sequence))

    def pieces(self, request: SeqRequest) -> list[SeqRequest]:
        """The parts the batcher schedules separately (each of bounded cost); one by default."""
        return [request]

    def join(self, request: SeqRequest, parts: list[Any]) -> Result:
        """The answer to ``request`` from its pieces' results, in order."""
        return parts[0]

    def pass_residues(self) -> int:
        """Most residues per forward pass (the batcher's cost cap) for a cost-aware kind."""
        if self.settings.pass_residues > 0:
            return self.settings.pass_residues
        return 16384 if str(getattr(self, "device", "cpu")).startswith("cuda") else 1024

    # -- the WorkerModel interface -------------------------------------------------------------------

    def load(self) -> None:
        self.load_model()
        if self.cost_aware and self.batched:
            self.batcher.max_batch_cost = float(self.pass_residues())
            self.batcher.express_cost = float(self.settings.express_residues)
        self._loaded.set()

    def ready(self) -> bool:
        return self._loaded.is_set()

    def queued_items(self) -> int:
        return self.batcher.queued

    def limits(self) -> dict[str, Any]:
        return {
            "max_sequence_length": {task: self.max_length(task) for task in self.tasks},
            "max_batch_sequences": self.max_batch_items,
            "rate_limit_per_min": self.rate_limit_per_min,
        }

    def info(self) -> dict[str, Any]:
        info = super().info()
        info["task_types"] = list(self.tasks)
        info["task_type_aliases"] = dict(self.task_aliases)
        info["default_task_type"] = self.tasks[0] if self.has_default_task else None
        info["input_alphabet"] = {task: self.alphabet(task).info() for task in self.tasks}
        info["dynamic_batching"] = {
            "enabled": self.batched,
            "max_batch_size": self.batcher.max_batch,
            "max_wait_ms": self.batcher.max_wait_s * 1000.0,
        }
        if self.cost_aware:
            info["dynamic_batching"].update(
                pass_residues=self.batcher.max_batch_cost, express_residues=self.batcher.express_cost
            )
        return info

    def add_metrics(self, registry: CollectorRegistry) -> None:
        """The runtime's hook (where it has one): per-task-type metrics on the worker's ``/metrics``."""
        self.metrics.attach(registry)

    def batch_items(self, body: dict[str, Any]) -> Any:
        """The runtime's ``items``, or the seed systems' ``{"sequences": [...], "task_type", "options"}``."""
        if "sequences" not in body or "items" in body:
            return super().batch_items(body)
        rest = {k: v for k, v in body.items() if k != "sequences"}
        sequences = body["sequences"]
        if not isinstance(sequences, list) or not sequences:
            raise ApiError(ErrorCode.INVALID_REQUEST, "'sequences' must be a non-empty list of strings")
        return [{**rest, "sequence": seq} for seq in sequences]

    def parse(self, payload: dict[str, Any]) -> SeqRequest:
        """Validate one body into a :class:`SeqRequest` (the error codes of DESIGN's worker contract)."""
        task = resolve_task_type(payload, self.task_aliases, self.tasks[0] if self.has_default_task else "")
        if not task:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"'task_type' is required: one of {', '.join(self.task_types)}")
        if task not in self.tasks:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"task_type must be one of {', '.join(self.task_types)}")
        options = request_options(payload)
        sequence = clean_sequence(payload.get("sequence"), self.alphabet(task), self.max_length(task))
        return self.prepare(SeqRequest(sequence, task, options))

    def predict(self, payload: dict[str, Any]) -> Result:
        if not self._loaded.is_set():
            raise ApiError(ErrorCode.MODEL_NOT_LOADED, "model is not loaded yet", retry_after=5)
        t0 = time.perf_counter()
        task = self._label(payload)
        try:
            request = self.parse(payload)
            task = request.task_type
            charge(self.cost(request), f"this {task} of {len(request.sequence)} residues")
            result = self._submit([request])[0].result().value
        except Exception as exc:
            err = as_api_error(exc)
            self.metrics.observe(task, err.code.value, time.perf_counter() - t0)
            if err is exc:
                raise
            raise err from exc
        self.metrics.observe(task, "ok", time.perf_counter() - t0, len(request.sequence))
        return result

    def predict_batch(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not self._loaded.is_set():
            raise ApiError(ErrorCode.MODEL_NOT_LOADED, "model is not loaded yet", retry_after=5)
        t0 = time.perf_counter()
        answers: list[dict[str, Any] | None] = [None] * len(items)
        requests: list[tuple[int, SeqRequest]] = []
        for i, payload in enumerate(items):
            try:
                requests.append((i, self.parse(payload)))
            except Exception as exc:  # one bad item never fails the others
                err = as_api_error(exc)
                self.metrics.observe(self._label(payload), err.code.value, 0.0)
                answers[i] = item_error(err.code, err.details)
        if requests:  # the whole call is admitted or refused (413/429) before any of it runs
            charge(sum(self.cost(r) for _, r in requests), f"this batch of {len(requests)} sequences")
        futures = self._submit([r for _, r in requests]) if requests else []
        for (i, request), future in zip(requests, futures, strict=True):
            try:
                answers[i] = item_ok(future.result().value)
                self.metrics.observe(request.task_type, "ok", time.perf_counter() - t0, len(request.sequence))
            except Exception as exc:
                err = as_api_error(exc)
                if err.code is ErrorCode.PREDICTION_FAILED:
                    log.warning("batch item %d failed: %s", i, err.details)
                self.metrics.observe(request.task_type, err.code.value, time.perf_counter() - t0)
                answers[i] = item_error(err.code, err.details)
        return [a for a in answers if a is not None]

    # -- internals -----------------------------------------------------------------------------------

    def _label(self, payload: Any) -> str:
        """A bounded metrics label for a body that may not parse (never the client's free text)."""
        task = payload.get("task_type") if isinstance(payload, dict) else None
        if task is None:
            return self.tasks[0] if self.has_default_task else "invalid"
        task = self.task_aliases.get(task, task) if isinstance(task, str) else None
        return task if task in self.tasks else "invalid"

    def _submit(self, requests: list[SeqRequest]) -> list[_Joined]:
        """Queue every piece of ``requests`` as one flow; one handle per request joins its pieces."""
        split = [self.pieces(r) for r in requests]
        flat = [p for parts in split for p in parts]
        futures = self.batcher.submit_many([(self.batch_key(p), p) for p in flat], costs=[self.cost(p) for p in flat])
        handles, at = [], 0
        for request, parts in zip(requests, split, strict=True):
            handles.append(_Joined(self, request, futures[at : at + len(parts)]))
            at += len(parts)
        return handles

    def _finish(self, request: SeqRequest, parts: list[Any]) -> Result:
        result = self.join(request, parts)
        result.setdefault("model", self.models[0])
        result.setdefault("task_type", request.task_type)
        result.setdefault("length", len(request.sequence))
        return result

    def _run_batch(self, _key: Hashable, requests: Sequence[SeqRequest]) -> Sequence[Any]:
        return list(self.run(requests))


class _Joined:
    """A request's answer once all its pieces are done (a Future-like ``result()``)."""

    def __init__(self, model: SequenceModel, request: SeqRequest, futures: list[Future]) -> None:
        self.model, self.request, self.futures = model, request, futures

    def result(self) -> Batched[Result]:
        done = [f.result() for f in self.futures]  # the first failed piece raises its error
        value = self.model._finish(self.request, [b.value for b in done])
        return Batched(
            value,
            max(b.batch_size for b in done),
            min(b.queue_ms for b in done),
            sum(b.model_ms for b in done),
        )
