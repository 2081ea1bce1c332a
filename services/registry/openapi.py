"""OpenAPI 3.0 description of every registry route (served at /openapi.json, fuzzed by schemathesis)."""

from __future__ import annotations

from typing import Any

from services.common.envelope import envelope_schema
from services.common.instance import MIN_CHECK_INTERVAL_S
from services.registry import history, nodes
from services.registry.ownership import SECRET_HEADER

_ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"}
_NAME = {"type": "string", "pattern": "^[a-z0-9-]{1,63}$"}
_HEALTH = {"type": "string", "enum": ["passing", "warning", "critical"]}
_STATUS = {"type": "string", "enum": ["passing", "warning", "critical", "maintenance"]}
_TAG = {"type": "string", "pattern": "^[A-Za-z0-9._:=-]{1,64}$"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _envelope(data: dict[str, Any] | None = None) -> dict[str, Any]:
    props = {"data": data} if data else {}
    return {"allOf": [_ref("Envelope"), {"type": "object", "properties": props}]}


_ERR = {
    "400": _json(_ref("ErrorEnvelope"), "invalid request"),
    "401": _json(_ref("ErrorEnvelope"), "token missing or wrong"),
    "404": _json(_ref("ErrorEnvelope"), "unknown instance"),
    "413": _json(_ref("ErrorEnvelope"), "body or metadata too large"),
    "405": _json(_ref("ErrorEnvelope"), "method not allowed (the id 'register' is reserved)"),
    "415": _json(_ref("ErrorEnvelope"), "unsupported media type"),
}
_HOST = {
    "type": "string",
    "maxLength": 253,
    "pattern": "^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$",
}


def _links(operations: dict[str, str]) -> dict[str, Any]:
    """OpenAPI links from a registration to the calls that take its id and secret (drives stateful fuzzing)."""
    params = {"instance_id": "$response.body#/data/instance_id"}
    secret = {f"header.{SECRET_HEADER}": "$response.body#/data/instance_secret"}
    return {
        name: {"operationId": op, "parameters": {**params, **(secret if op != "getInstance" else {})}}
        for name, op in operations.items()
    }


_REGISTER_LINKS = _links(
    {"Heartbeat": "heartbeat", "Maintenance": "maintenance", "GetInstance": "getInstance", "Deregister": "deregister"}
)
_AUTH = [{"bearer": []}, {}]


def _id_param(name: str = "instance_id") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _ID}


_SECRET_PARAM = {
    "name": SECRET_HEADER,
    "in": "header",
    "required": False,
    "description": "the instance's secret, answered at registration (or use the operator token)",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,256}$"},
}
_TAKE_OVER_PARAM = {
    "name": "take_over",
    "in": "query",
    "required": False,
    "description": "operator only: replace a live instance of another registrant",
    "schema": {"type": "string", "enum": ["true", "false", "1", "0"]},
}
_REGISTERED = {
    "type": "object",
    "required": ["instance_id", "instance_secret", "ttl_s", "heartbeat_interval_s"],
    "properties": {
        "instance_id": {"type": "string"},
        "instance_secret": {"type": "string", "description": "send as X-Instance-Secret on this id's writes"},
        "ttl_s": {"type": "number"},
        "heartbeat_interval_s": {"type": "number"},
    },
}
_CONFLICT = {"409": _json(_ref("ErrorEnvelope"), "the id (or address) is live and held by another registrant")}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_LIST_PARAMS = [
    _query("name", _NAME, "service name"),
    _query("tag", _TAG, "tag every instance must carry"),
    _query(
        "status",
        {
            "type": "string",
            "pattern": "^(passing|warning|critical|maintenance)(,(passing|warning|critical|maintenance))*$",
        },
        "comma-separated states (default: every state)",
    ),
    _query("capability", _TAG, "capability listed in metadata.capabilities"),
    _query(
        "index",
        {"type": "integer", "minimum": 0, "maximum": 10**17},
        "blocking query: wait until the index passes this",
    ),
    _query(
        "wait", {"type": "string", "pattern": "^[0-9]{1,3}(\\.[0-9]{1,3})?(ms|s)?$"}, "longest wait, e.g. 30s (≤ 600s)"
    ),
]


def _schemas() -> dict[str, Any]:
    return {
        "Envelope": envelope_schema({"nullable": True}, {"type": "string"}),
        "ErrorEnvelope": {
            "allOf": [
                _ref("Envelope"),
                {
                    "type": "object",
                    "properties": {
                        "success": {"type": "boolean", "enum": [False]},
                        "error": {
                            "type": "object",
                            "required": ["code", "details"],
                            "properties": {"code": {"type": "string"}, "details": {"type": "string"}},
                        },
                    },
                },
            ]
        },
        "Check": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "path": {"type": "string", "pattern": "^/[A-Za-z0-9._~/-]{0,255}$"},
                "interval_s": {"type": "number", "minimum": MIN_CHECK_INTERVAL_S, "maximum": 3600},
                "timeout_s": {"type": "number", "minimum": 0.05, "maximum": 60},
                "failures_before_critical": {"type": "integer", "minimum": 1, "maximum": 100},
                "successes_before_passing": {"type": "integer", "minimum": 1, "maximum": 100},
            },
        },
        "Registration": {
            "type": "object",
            "required": ["service_name", "host", "port"],
            "properties": {
                "instance_id": {**_ID, "nullable": True},
                "service_name": _NAME,
                "host": _HOST,
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "base_url": {
                    "type": "string",
                    "pattern": "^https?://[A-Za-z0-9.-]+(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~/-]*)?$",
                    "maxLength": 512,
                    "nullable": True,
                },
                "tags": {"type": "array", "maxItems": 32, "items": _TAG, "nullable": True},
                "metadata": {
                    "type": "object",
                    "nullable": True,
                    "description": "≤ 8 KiB as JSON; capabilities and models are lists of strings",
                    "properties": {
                        "capabilities": {"type": "array", "items": {"type": "string"}},
                        "models": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "version": {"type": "string", "maxLength": 64, "nullable": True},
                "weight": {"type": "integer", "minimum": 1, "maximum": 1000},
                "status": _HEALTH,
                "load": {"allOf": [_ref("Load")], "nullable": True},
                "check": {"allOf": [_ref("Check")], "nullable": True},
            },
        },
        "Load": {
            "type": "object",
            "description": "numbers or strings: inflight, queued, cpu_percent, rss_mb, gpu_mem_mb, ...",
            "additionalProperties": {"oneOf": [{"type": "number"}, {"type": "string"}]},
        },
        "Heartbeat": {
            "type": "object",
            "properties": {
                "status": {**_HEALTH, "nullable": True},
                "load": {"allOf": [_ref("Load")], "nullable": True},
            },
        },
        "Maintenance": {
            "type": "object",
            "required": ["enabled"],
            "properties": {"enabled": {"type": "boolean"}, "reason": {"type": "string", "maxLength": 256}},
        },
        "Instance": {
            "type": "object",
            "required": ["instance_id", "service_name", "host", "port", "base_url", "status", "health"],
            "properties": {
                "instance_id": {"type": "string"},
                "service_name": {"type": "string"},
                "host": {"type": "string"},
                "port": {"type": "integer"},
                "base_url": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "metadata": {"type": "object"},
                "version": {"type": "string"},
                "weight": {"type": "integer"},
                "status": _STATUS,
                "health": _HEALTH,
                "maintenance": {"type": "boolean"},
                "maintenance_reason": {"type": "string"},
                "status_reason": {"type": "string"},
                "last_heartbeat": {"type": "string", "nullable": True},
                "registered_at": {"type": "string", "nullable": True},
                "load": {"type": "object"},
                "check": {"nullable": True},
            },
        },
        "CompatRegistration": {
            "type": "object",
            "required": ["service_name", "host", "port"],
            "properties": {
                "service_name": _NAME,
                "host": _HOST,
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "metadata": {"type": "object", "nullable": True},
                "version": {"type": "string", "maxLength": 64, "nullable": True},
            },
        },
        "ServiceInfo": {
            "type": "object",
            "required": ["service_name", "service_id", "host", "port", "status"],
            "properties": {
                "service_name": {"type": "string"},
                "service_id": {"type": "string"},
                "host": {"type": "string"},
                "port": {"type": "integer"},
                "base_url": {"type": "string"},
                "status": {"type": "string", "enum": ["healthy", "unhealthy", "unknown"]},
                "metadata": {"type": "object"},
                "registered_at": {"type": "string", "nullable": True},
                "last_heartbeat": {"type": "string", "nullable": True},
                "version": {"type": "string"},
            },
        },
        "Detail": {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}},
    }


def _plain(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"get": {"summary": description, "responses": {"200": _json(schema or {"type": "object"}, description)}}}


def _native_paths() -> dict[str, Any]:
    inst_env = _envelope(_ref("Instance"))
    return {
        "/api/v1/services/register": {
            "post": {
                "operationId": "register",
                "summary": "Register (idempotent: a stable id replaces, never duplicates)",
                "security": _AUTH,
                "parameters": [_SECRET_PARAM, _TAKE_OVER_PARAM],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Registration")}}},
                "responses": {
                    "201": {**_json(_envelope(_REGISTERED), "registered"), "links": _REGISTER_LINKS},
                    "200": {**_json(_envelope(_REGISTERED), "replaced"), "links": _REGISTER_LINKS},
                    **_ERR,
                    **_CONFLICT,
                },
            }
        },
        "/api/v1/services/{instance_id}/heartbeat": {
            "put": {
                "operationId": "heartbeat",
                "summary": "Heartbeat with optional status and load; 404 means register again",
                "security": _AUTH,
                "parameters": [_id_param(), _SECRET_PARAM],
                "requestBody": {"required": False, "content": {"application/json": {"schema": _ref("Heartbeat")}}},
                "responses": {"200": _json(_envelope(), "recorded"), **_ERR},
            }
        },
        "/api/v1/services/{instance_id}/maintenance": {
            "put": {
                "operationId": "maintenance",
                "summary": "Drain on or off",
                "security": _AUTH,
                "parameters": [_id_param(), _SECRET_PARAM],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Maintenance")}}},
                "responses": {"200": _json(inst_env, "updated"), **_ERR},
            }
        },
        "/api/v1/services/{instance_id}": {
            "get": {
                "operationId": "getInstance",
                "summary": "One instance",
                "parameters": [_id_param()],
                "responses": {"200": _json(inst_env, "the instance"), **_ERR},
            },
            "delete": {
                "operationId": "deregister",
                "summary": "Deregister",
                "security": _AUTH,
                "parameters": [_id_param(), _SECRET_PARAM],
                "responses": {"200": _json(_envelope(), "deregistered"), **_ERR},
            },
        },
        "/api/v1/services": {
            "get": {
                "summary": "List instances (every state unless status= is given); index+wait blocks until a change",
                "parameters": _LIST_PARAMS,
                "responses": {
                    "200": _json(_envelope({"type": "object", "required": ["instances", "index"]}), "instances"),
                    "503": _json(_ref("ErrorEnvelope"), "too many blocking queries (Retry-After)"),
                    **_ERR,
                },
            }
        },
        "/api/v1/catalog": {
            "get": {
                "summary": "Service names with counts per state, capabilities and models",
                "parameters": _LIST_PARAMS[:4],
                "responses": {"200": _json(_envelope(), "catalog"), **_ERR},
            }
        },
    }


def _compat_paths() -> dict[str, Any]:
    detail = {
        code: _json(_ref("Detail"), text)
        for code, text in (
            ("400", "invalid"),
            ("401", "token"),
            ("404", "unknown id"),
            ("409", "the id is live and held by a native registrant"),
            ("413", "too large"),
            ("415", "media type"),
        )
    }
    base = "/compat/v0/api/v1/services"
    return {
        "/compat/v0/health": _plain("compat liveness"),
        f"{base}/register": {
            "post": {
                "summary": "compat register",
                "security": _AUTH,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("CompatRegistration")}},
                },
                "responses": {"200": _json({"type": "object", "required": ["service_id"]}, "registered"), **detail},
            }
        },
        f"{base}/{{service_id}}/heartbeat": {
            "post": {
                "summary": "compat heartbeat",
                "security": _AUTH,
                "parameters": [_id_param("service_id")],
                "responses": {"200": _json({"type": "object"}, "ok"), **detail},
            }
        },
        f"{base}/{{service_id}}": {
            "get": {
                "summary": "compat get",
                "parameters": [_id_param("service_id")],
                "responses": {"200": _json(_ref("ServiceInfo"), "one"), **detail},
            },
            "delete": {
                "summary": "compat deregister",
                "security": _AUTH,
                "parameters": [_id_param("service_id")],
                "responses": {"200": _json({"type": "object"}, "ok"), **detail},
            },
        },
        base: {
            "get": {
                "summary": "compat discover",
                "parameters": [
                    _query("service_name", _NAME, "service name"),
                    _query("status_filter", {"type": "string", "enum": ["healthy", "unhealthy", "unknown"]}, "state"),
                ],
                "responses": {
                    "200": _json({"type": "object", "required": ["services", "count"]}, "services"),
                    **detail,
                },
            }
        },
    }


def build_spec(version: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for prefix in ("", "/api/v1"):
        paths[f"{prefix}/health"] = _plain("liveness")
        paths[f"{prefix}/openapi.json"] = _plain("this document")
        paths[f"{prefix}/prometheus/targets"] = _plain("Prometheus HTTP service discovery", {"type": "array"})
        paths[f"{prefix}/metrics"] = {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {"description": "text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}
                },
            }
        }
    paths.update(_native_paths())
    paths.update(history.OPENAPI_PATHS)
    paths.update(nodes.OPENAPI_PATHS)
    paths.update(_compat_paths())
    return {
        "openapi": "3.0.3",
        "info": {"title": "COMPASS mesh registry", "version": version},
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
