"""The paths of the native API (``/api/v1/services``): register, heartbeat, maintenance, discovery.

A registration links to the calls that take its id and secret, which drives schemathesis's stateful fuzzing.
"""

from __future__ import annotations

from typing import Any

from services.registry.openapi.blocks import AUTH, ERR, NAME, TAG, envelope, id_param, json_response, query, ref
from services.registry.ownership import SECRET_HEADER


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
_CONFLICT = {"409": json_response(ref("ErrorEnvelope"), "the id (or address) is live and held by another registrant")}


_LIST_PARAMS = [
    query("name", NAME, "service name"),
    query("tag", TAG, "tag every instance must carry"),
    query(
        "status",
        {
            "type": "string",
            "pattern": "^(passing|warning|critical|maintenance)(,(passing|warning|critical|maintenance))*$",
        },
        "comma-separated states (default: every state)",
    ),
    query("capability", TAG, "capability listed in metadata.capabilities"),
    query(
        "index",
        {"type": "integer", "minimum": 0, "maximum": 10**17},
        "blocking query: wait until the index passes this",
    ),
    query(
        "wait", {"type": "string", "pattern": "^[0-9]{1,3}(\\.[0-9]{1,3})?(ms|s)?$"}, "longest wait, e.g. 30s (≤ 600s)"
    ),
]


def native_paths() -> dict[str, Any]:
    inst_env = envelope(ref("Instance"))
    return {
        "/api/v1/services/register": {
            "post": {
                "operationId": "register",
                "summary": "Register (idempotent: a stable id replaces, never duplicates)",
                "security": AUTH,
                "parameters": [_SECRET_PARAM, _TAKE_OVER_PARAM],
                "requestBody": {"required": True, "content": {"application/json": {"schema": ref("Registration")}}},
                "responses": {
                    "201": {**json_response(envelope(_REGISTERED), "registered"), "links": _REGISTER_LINKS},
                    "200": {**json_response(envelope(_REGISTERED), "replaced"), "links": _REGISTER_LINKS},
                    **ERR,
                    **_CONFLICT,
                },
            }
        },
        "/api/v1/services/{instance_id}/heartbeat": {
            "put": {
                "operationId": "heartbeat",
                "summary": "Heartbeat with optional status and load; 404 means register again",
                "security": AUTH,
                "parameters": [id_param(), _SECRET_PARAM],
                "requestBody": {"required": False, "content": {"application/json": {"schema": ref("Heartbeat")}}},
                "responses": {"200": json_response(envelope(), "recorded"), **ERR},
            }
        },
        "/api/v1/services/{instance_id}/maintenance": {
            "put": {
                "operationId": "maintenance",
                "summary": "Drain on or off",
                "security": AUTH,
                "parameters": [id_param(), _SECRET_PARAM],
                "requestBody": {"required": True, "content": {"application/json": {"schema": ref("Maintenance")}}},
                "responses": {"200": json_response(inst_env, "updated"), **ERR},
            }
        },
        "/api/v1/services/{instance_id}": {
            "get": {
                "operationId": "getInstance",
                "summary": "One instance",
                "parameters": [id_param()],
                "responses": {"200": json_response(inst_env, "the instance"), **ERR},
            },
            "delete": {
                "operationId": "deregister",
                "summary": "Deregister",
                "security": AUTH,
                "parameters": [id_param(), _SECRET_PARAM],
                "responses": {"200": json_response(envelope(), "deregistered"), **ERR},
            },
        },
        "/api/v1/services": {
            "get": {
                "summary": "List instances (every state unless status= is given); index+wait blocks until a change",
                "parameters": _LIST_PARAMS,
                "responses": {
                    "200": json_response(envelope({"type": "object", "required": ["instances", "index"]}), "instances"),
                    "503": json_response(ref("ErrorEnvelope"), "too many blocking queries (Retry-After)"),
                    **ERR,
                },
            }
        },
        "/api/v1/catalog": {
            "get": {
                "summary": "Service names with counts per state, capabilities and models",
                "parameters": _LIST_PARAMS[:4],
                "responses": {"200": json_response(envelope(), "catalog"), **ERR},
            }
        },
    }
