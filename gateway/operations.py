"""Every operation the gateway offers, once: the REST routes and the MCP tools both call these.

A :class:`Gateway` holds no state of its own beyond its registry cache and Router (and the
launchers it started, :mod:`gateway.launcher`): every answer is read from the registry or routed to
a worker. Operations raise :class:`~services.common.envelope.ApiError`, so REST answers an envelope
and MCP an error result with the same code and message. ``authorization`` is the caller's
``Authorization`` header, forwarded to the workers so their rate limits and budgets count the
real caller, not the gateway. Who may load and unload is checked at the HTTP edge (:mod:`gateway.routes`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gateway.catalog import Model, models_of, rank
from gateway.launcher import LocalLaunchers
from gateway.routing import api_error, forwarded, item_failure, served_by, start_hint
from gateway.settings import GatewaySettings
from gateway.tasks import (
    SEQUENCE_TYPES,
    TASKS,
    Task,
    check_sequences,
    guess_sequence_type,
    resolve_sequence_type,
    resolve_task,
)
from services.client import CallResult, ClientError, RegistryClient, RegistryUnavailable, Router
from services.common.envelope import ApiError, ErrorCode
from services.common.instance import SERVICE_NAME_RE
from services.common.kinds import KINDS

_JOB_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_MODEL_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
# Where each capability keeps its long-running jobs (DESIGN: COMPASS training, docking, variant training).
JOB_ROUTES = {
    "affinity": "/api/v1/training/tasks/{id}",
    "docking": "/api/v1/docking/jobs/{id}",
    "variant-effect": "/api/v1/training/tasks/{id}",
}


class Gateway:
    """The operations over one registry cache and one Router (both thread-safe; share one per process)."""

    def __init__(
        self,
        registry: RegistryClient,
        router: Router,
        settings: GatewaySettings,
        *,
        operator_token: str = "",
        launchers: LocalLaunchers | None = None,
    ) -> None:
        self.registry = registry
        self.router = router
        self.settings = settings
        self.operator_token = operator_token
        self.launchers = launchers or LocalLaunchers((), registry.urls, operator_token)

    @classmethod
    def open(cls, registry_urls: list[str], settings: GatewaySettings, token: str = "") -> Gateway:
        """A gateway over these registries: a watched cache of every instance, and a Router over it.

        The Router takes the client settings of the environment (``CLIENT_FALLBACKS``, balancer...)
        with the gateway's deadline and per-try timeout.
        """
        registry = RegistryClient(registry_urls, token=token)
        router = Router.from_settings(
            discovery=registry, deadline_s=settings.deadline_s, try_timeout_s=settings.try_timeout_s or None
        )
        launchers = LocalLaunchers(settings.launch_kinds, registry.urls, token)
        return cls(registry, router, settings, operator_token=token, launchers=launchers)

    def close(self) -> None:
        self.launchers.close()
        self.router.close()
        self.registry.close()

    # -- reading the mesh -------------------------------------------------------------------------

    def catalog(self) -> dict[str, Model]:
        try:
            snap = self.registry.instances()
        except RegistryUnavailable as exc:
            raise ApiError(ErrorCode.OVERLOADED, f"no registry answered: {exc}", retry_after=2) from exc
        return models_of(snap.instances)

    def models(self, loaded_only: bool = False) -> dict[str, Any]:
        entries = [m.public() for m in self.catalog().values() if m.usable or not loaded_only]
        return {"models": entries, "count": len(entries)}

    def find(self, name: str) -> Model:
        """The model called ``name`` (a service name, or a model id one of its instances serves); 404 otherwise."""
        if not isinstance(name, str) or not _MODEL_ID.match(name):
            raise ApiError(ErrorCode.INVALID_REQUEST, "a model name is 1-128 letters, digits, '.', '-' or '_'")
        catalog = self.catalog()
        if name in catalog:
            return catalog[name]
        for model in catalog.values():
            if any(name in i.models for i in model.instances):
                return model
        raise ApiError(ErrorCode.NOT_FOUND, f"no model called {name!r} is registered; GET /api/v1/models lists them")

    def tasks(self) -> dict[str, Any]:
        catalog = self.catalog()
        out = []
        for task in TASKS.values():
            serving = [m.name for m in catalog.values() if task.capability in m.capabilities and m.usable]
            out.append({**task.public(), "served_by": serving, "available": bool(serving)})
        return {"tasks": out, "count": len(out)}

    @staticmethod
    def sequence_types() -> dict[str, Any]:
        return {"sequence_types": [t.public() for t in SEQUENCE_TYPES.values()]}

    def best(self, task_type: Any, sequence_type: Any = None) -> dict[str, Any]:
        task = resolve_task(task_type)
        seq_type = resolve_sequence_type(sequence_type, task) or task.sequence_types[0]
        ranked = rank(self.catalog().values(), task, seq_type)
        if ranked.best is None:
            raise ApiError(ErrorCode.MODEL_NOT_LOADED, ranked.reason + start_hint(task.capability), retry_after=5)
        return {
            "best_model": ranked.best.name,
            "reason": ranked.reason,
            "task_type": task.name,
            "capability": task.capability,
            "sequence_type": seq_type,
            "candidates": [m.name for m in ranked.candidates],
            "validation": ranked.best.public()["validation"],
        }

    # -- routing work -----------------------------------------------------------------------------

    def analyze(self, body: Mapping[str, Any], authorization: str | None = None) -> dict[str, Any]:
        """Run ``task_type`` over ``sequences`` (or ``inputs``) on the named or the best model, with fallbacks."""
        task = resolve_task(body.get("task_type"))
        items, seq_type = self._items(task, body)
        model_name = body.get("model_name")
        if model_name is not None:
            _check_name(model_name)
        ranked = rank(self.catalog().values(), task, seq_type)
        target = model_name or (ranked.best.name if ranked.best else task.capability)
        chain = [*self.router.fallbacks.get(target, ()), *(m.name for m in ranked.candidates), task.capability]
        result = self.route(
            target,
            "POST",
            "/predict/batch",
            json={"items": items},
            authorization=authorization,
            fallbacks=[s for s in chain if s != target],
            what=task.capability,
        )
        data = result.data if isinstance(result.data, dict) else {}
        results = data.get("results", [])
        if results and not any(r.get("success") for r in results):  # nothing to show: the error is the answer
            raise item_failure(results, result)
        return {
            "task_type": task.name,
            "capability": task.capability,
            "sequence_type": seq_type,
            "results": results,
            "count": data.get("count", len(items)),
            "succeeded": data.get("succeeded"),
            "failed": data.get("failed"),
            "chosen": {
                "model": target,
                "by": "caller" if model_name else "best",
                "reason": None if model_name else ranked.reason,
            },
            "served_by": served_by(result),
        }

    def _items(self, task: Task, body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str]:
        """The worker's batch items for ``body``, and the sequence type they were read as."""
        s = self.settings
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise ApiError(ErrorCode.INVALID_REQUEST, "'options' must be an object")
        if task.items == "inputs":
            inputs = body.get("inputs")
            if not isinstance(inputs, list) or not inputs or not all(isinstance(i, dict) for i in inputs):
                raise ApiError(
                    ErrorCode.INVALID_REQUEST, f"task {task.name} reads 'inputs': a non-empty list of objects"
                )
            if len(inputs) > s.max_items:
                raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, f"{len(inputs)} inputs; at most {s.max_items} per call")
            seq_type = resolve_sequence_type(body.get("sequence_type"), task) or task.sequence_types[0]
            return [{**options, **item} for item in inputs], seq_type
        raw = body.get("sequences", body.get("sequence"))
        seq_type = resolve_sequence_type(body.get("sequence_type"), task) or guess_sequence_type(task, raw)
        sequences = check_sequences(raw, seq_type, s.max_items, s.max_sequence_chars)
        return [{"sequence": seq, "task_type": task.worker_task, "options": options} for seq in sequences], seq_type

    def call_capability(
        self,
        capability: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        authorization: str | None = None,
        service: str | None = None,
        idempotent: bool | None = None,
    ) -> dict[str, Any]:
        """One call to a worker with ``capability`` (or to ``service`` when named): its data and who served it.

        ``idempotent=True`` lets a try that may have run be repeated on another instance (a search,
        a docking run: the same answer again, as ``docking.screen`` declares it).
        """
        if service is not None:
            _check_name(service)
        result = self.route(
            service or capability,
            method,
            path,
            json=json,
            authorization=authorization,
            fallbacks=[],
            what=capability,
            idempotent=idempotent,
        )
        return {"result": result.data, "served_by": served_by(result)}

    def route(
        self,
        target: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        authorization: str | None = None,
        fallbacks: list[str] | None = None,
        what: str | None = None,
        deadline: float | None = None,
        idempotent: bool | None = None,
    ) -> CallResult:
        """``Router.call`` with the caller's credential, its errors turned into the envelope's."""
        try:
            return self.router.call(
                target,
                method,
                path,
                json=json,
                headers=forwarded(authorization),
                fallbacks=fallbacks,
                deadline=deadline,
                idempotent=idempotent,
            )
        except ClientError as exc:
            raise api_error(exc, what or target) from exc

    # -- models: info, load, unload ---------------------------------------------------------------

    def model_info(self, name: str) -> dict[str, Any]:
        model = self.find(name)
        entry = model.public()
        if not model.usable:
            return {**entry, "worker_info": None, "note": "no usable instance to ask for its /model/info"}
        result = self.route(model.name, "GET", "/model/info", fallbacks=[], deadline=10.0)
        return {**entry, "worker_info": result.data, "info_from": result.instance}

    def job_status(self, service: str, job_id: str, authorization: str | None = None) -> dict[str, Any]:
        model = self.find(service)
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            raise ApiError(ErrorCode.INVALID_REQUEST, "job_id must be 1-64 letters, digits, '-' or '_'")
        path = next((JOB_ROUTES[c] for c in model.capabilities if c in JOB_ROUTES), None)
        if path is None:
            raise ApiError(
                ErrorCode.NOT_FOUND, f"{model.name} runs no jobs (jobs live on {', '.join(sorted(JOB_ROUTES))} workers)"
            )
        result = self.route(model.name, "GET", path.format(id=job_id), authorization=authorization, fallbacks=[])
        return {"service": model.name, "job": result.data, "served_by": served_by(result)}

    def load(self, name: str, body: Mapping[str, Any], authorization: str | None) -> tuple[dict[str, Any], int]:
        """Activate a model on a worker, or start a replica through a local launcher; else 409 with what to do."""
        _check_name(name)
        model = self.catalog().get(name)
        model_id = body.get("model_id")
        if model_id is not None:
            return self._activate(name, model, body, authorization), 200
        if model is not None and model.usable:
            return {"action": "none", "loaded": True, "instances": len(model.usable), "message": "already loaded"}, 200
        if self.launchers.may_start(name):
            launched = self.launchers.start(name)
            message = f"started a {name} launcher (pid {launched.pid}); it is loaded once GET /models/loaded lists it"
            return {"action": "launching", "kind": name, "pid": launched.pid, "message": message}, 202
        raise ApiError(ErrorCode.CONFLICT, self._start_advice(name))

    def _activate(
        self, name: str, model: Model | None, body: Mapping[str, Any], authorization: str | None
    ) -> dict[str, Any]:
        model_id = body.get("model_id")
        if not isinstance(model_id, str) or not _MODEL_ID.match(model_id):
            raise ApiError(ErrorCode.INVALID_REQUEST, "model_id must be 1-128 letters, digits, '.', '-' or '_'")
        if model is None or not model.usable:
            raise ApiError(
                ErrorCode.CONFLICT, f"no instance of {name} runs to activate {model_id} on. " + self._start_advice(name)
            )
        if not any(isinstance(i.metadata.get("active_model"), dict) for i in model.instances):
            raise ApiError(
                ErrorCode.CONFLICT,
                f"{name} serves a fixed model ({', '.join(model.public()['models'])}): it has no model activation "
                "(the COMPASS kinds have). Start a worker with the model you want instead.",
            )
        # The worker's own safeguards travel as given (COMPASS: confirm a comparison, override a missing figure).
        flags = {k: body[k] for k in ("confirm", "override") if isinstance(body.get(k), bool)}
        result = self.route(
            name, "POST", f"/api/v1/models/{model_id}/activate", json=flags, authorization=authorization, fallbacks=[]
        )
        return {"action": "activated", "model_id": model_id, "worker": result.data, "served_by": served_by(result)}

    def unload(self, name: str, body: Mapping[str, Any], authorization: str | None) -> dict[str, Any]:
        """Stop a replica this gateway started, or drain through the registry when asked; else 409 with what to do."""
        _check_name(name)
        stopped = self.launchers.stop(name)
        if stopped is not None:
            return {"action": "stopped", "kind": name, "pid": stopped.pid, "message": "its replica drained and exited"}
        model = self.catalog().get(name)
        if model is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"no model called {name!r} is registered")
        live = model.usable
        if not live:
            return {"action": "none", "loaded": False, "message": f"{name} has no usable instance"}
        if body.get("drain") is True:
            for inst in live:
                try:
                    self.registry.set_maintenance(inst.instance_id, True, "unloaded through the agent gateway")
                except ClientError as exc:
                    raise ApiError(
                        ErrorCode.CONFLICT, f"the registry refused to drain {inst.instance_id}: {exc}"
                    ) from exc
            return {"action": "drained", "instances": [i.instance_id for i in live]}
        where = "; ".join(f"{i.instance_id} on {i.host} (pid {i.metadata.get('pid', '?')})" for i in live)
        raise ApiError(
            ErrorCode.CONFLICT,
            f"this gateway did not start {name}, so it cannot stop it. Stop its replicas where they run with SIGTERM "
            f'(they drain first): {where}; or call again with {{"drain": true}} to take them out of routing through '
            "the registry (the processes keep running).",
        )

    def _start_advice(self, name: str) -> str:
        urls = ",".join(self.registry.urls)
        if name not in KINDS:
            kinds = ", ".join(KINDS)
            return f"{name!r} is not a launcher kind ({kinds}): start its worker by hand with --registry {urls}."
        allowed = ", ".join(self.launchers.allowed) or "none"
        return (
            f"no instance of {name} is running and this gateway may not start one (its --launch-kind list: {allowed}). "
            f"Start one on a worker host: python -m services.worker.launch {name} --replicas 1 --registry {urls}"
        )


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not SERVICE_NAME_RE.match(name):
        raise ApiError(ErrorCode.INVALID_REQUEST, "a model name is a service name: 1-63 of a-z, 0-9 and '-'")
