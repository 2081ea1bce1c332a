"""The OpenAPI 3 document of a worker: the runtime's routes in full, the kind's routes from its views.

Built from the app's URL map at request time so a kind's blueprint routes are listed without
the kind writing any spec; a kind may describe its /predict body with ``predict_schema``.
"""

from __future__ import annotations

import inspect
import re
from typing import TYPE_CHECKING, Any

from services.common.envelope import envelope_schema

if TYPE_CHECKING:
    from flask import Flask

    from services.worker.model import WorkerModel

_ERROR_CODES = [
    "INVALID_REQUEST",
    "INVALID_STRUCTURE",
    "INVALID_SEQUENCE",
    "SEQUENCE_TOO_LONG",
    "UNAUTHORIZED",
    "NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "CONFLICT",
    "PAYLOAD_TOO_LARGE",
    "UNSUPPORTED_MEDIA_TYPE",
    "RATE_LIMITED",
    "PREDICTION_FAILED",
    "INTERNAL_ERROR",
    "MODEL_NOT_LOADED",
    "OVERLOADED",
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _envelope_of(data: dict[str, Any]) -> dict[str, Any]:
    return {"allOf": [_ref("Envelope"), {"type": "object", "properties": {"data": data}}]}


def _responses(ok_desc: str, data: dict[str, Any], *errors: int) -> dict[str, Any]:
    out: dict[str, Any] = {"200": {"description": ok_desc, "content": _json(_envelope_of(data))}}
    for status in errors:
        out[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    return out


_OBJ = {"type": "object"}
_HEALTH = {
    "type": "object",
    "required": ["status", "model", "version", "uptime_s", "gpu_available", "memory_mb"],
    "properties": {
        "status": {"type": "string", "enum": ["healthy", "unhealthy"]},
        "model": {"type": "string"},
        "version": {"type": "string"},
        "uptime_s": {"type": "number"},
        "gpu_available": {"type": "boolean"},
        "memory_mb": {"type": "number"},
    },
}
_BATCH_RESULT = {
    "type": "object",
    "properties": {
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "success": {"type": "boolean"},
                    "data": {"type": ["object", "null"]},
                    "error": {"oneOf": [{"type": "null"}, _ref("Error")]},
                },
            },
        },
        "count": {"type": "integer"},
        "succeeded": {"type": "integer"},
        "failed": {"type": "integer"},
    },
}


def _runtime_paths(predict_schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "/health": {"get": {"summary": "Process health and identity", "responses": _responses("health", _HEALTH)}},
        "/health/live": {"get": {"summary": "Liveness", "responses": _responses("alive", _OBJ)}},
        "/health/ready": {
            "get": {
                "summary": "Readiness (503 until loaded, and while draining)",
                "responses": _responses("ready", _OBJ, 503),
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {"description": "text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}
                },
            }
        },
        "/model/info": {
            "get": {"summary": "Model names, capabilities and limits", "responses": _responses("info", _OBJ)}
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3", "content": _json(_OBJ)}},
            }
        },
        "/predict": {
            "post": {
                "summary": "One prediction",
                "requestBody": {
                    "required": True,
                    "content": {**_json(predict_schema), "multipart/form-data": {"schema": {"type": "object"}}},
                },
                "responses": _responses("prediction", _OBJ, 400, 413, 429, 500, 503),
            }
        },
        "/predict/batch": {
            "post": {
                "summary": "Many predictions; each item succeeds or fails on its own",
                "requestBody": {
                    "required": True,
                    "content": _json(
                        {
                            "type": "object",
                            "required": ["items"],
                            "properties": {"items": {"type": "array", "minItems": 1, "items": predict_schema}},
                        }
                    ),
                },
                "responses": _responses("per-item results", _BATCH_RESULT, 400, 413, 429, 500, 503),
            }
        },
    }


def _components() -> dict[str, Any]:
    responses = {
        f"E{status}": {"description": desc, "content": _json(_ref("ErrorEnvelope"))}
        for status, desc in [
            (400, "invalid request"),
            (413, "payload too large"),
            (429, "rate limited (Retry-After)"),
            (500, "prediction failed or internal error"),
            (503, "model not loaded, overloaded or draining (Retry-After)"),
        ]
    }
    return {
        "schemas": {
            "Envelope": envelope_schema(
                {"oneOf": [{"type": "null"}, _ref("Error")]}, {"type": "string", "format": "date-time"}
            ),
            "Error": {
                "type": "object",
                "required": ["code", "details"],
                "properties": {"code": {"type": "string", "enum": _ERROR_CODES}, "details": {"type": "string"}},
            },
            "ErrorEnvelope": {
                "allOf": [_ref("Envelope"), {"type": "object", "properties": {"success": {"const": False}}}]
            },
        },
        "responses": responses,
    }


def _openapi_path(rule: str) -> str:
    """Flask's ``/jobs/<int:job_id>`` → OpenAPI's ``/jobs/{job_id}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def build_openapi(app: Flask, model: WorkerModel) -> dict[str, Any]:
    """The document for ``app``: runtime routes first, then every other route it serves."""
    predict_schema = getattr(model, "predict_schema", None) or {"type": "object"}
    paths = _runtime_paths(predict_schema)
    documented = set(paths)  # the runtime's own routes, written out in full above
    for rule in app.url_map.iter_rules():
        path = _openapi_path(rule.rule)
        if path in documented:
            continue  # (two rules on one path, e.g. GET and DELETE of a job, both land below)
        view = app.view_functions.get(rule.endpoint)
        summary = (inspect.getdoc(view) or rule.endpoint).splitlines()[0] if view else rule.endpoint
        params = [
            {"name": arg, "in": "path", "required": True, "schema": {"type": "string"}}
            for arg in sorted(rule.arguments)
        ]
        ops = paths.setdefault(path, {})
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            op: dict[str, Any] = {"summary": summary, "responses": _responses("ok", _OBJ, 400, 500)}
            if params:
                op["parameters"] = params
            ops.setdefault(method.lower(), op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{model.service_name} worker",
            "version": model.version,
            "description": f"Capabilities: {', '.join(model.capabilities)}. Models: {', '.join(model.models)}.",
        },
        "paths": paths,
        "components": _components(),
    }
