"""The building blocks every part of the registry's OpenAPI document shares: value shapes, responses, parameters."""

from __future__ import annotations

from typing import Any

ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"}
NAME = {"type": "string", "pattern": "^[a-z0-9-]{1,63}$"}
HEALTH = {"type": "string", "enum": ["passing", "warning", "critical"]}
STATUS = {"type": "string", "enum": ["passing", "warning", "critical", "maintenance"]}
TAG = {"type": "string", "pattern": "^[A-Za-z0-9._:=-]{1,64}$"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def envelope(data: dict[str, Any] | None = None) -> dict[str, Any]:
    props = {"data": data} if data else {}
    return {"allOf": [ref("Envelope"), {"type": "object", "properties": props}]}


ERR = {
    "400": json_response(ref("ErrorEnvelope"), "invalid request"),
    "401": json_response(ref("ErrorEnvelope"), "token missing or wrong"),
    "404": json_response(ref("ErrorEnvelope"), "unknown instance"),
    "413": json_response(ref("ErrorEnvelope"), "body or metadata too large"),
    "405": json_response(ref("ErrorEnvelope"), "method not allowed (the id 'register' is reserved)"),
    "415": json_response(ref("ErrorEnvelope"), "unsupported media type"),
}
HOST = {
    "type": "string",
    "maxLength": 253,
    "pattern": "^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$",
}
AUTH = [{"bearer": []}, {}]


def id_param(name: str = "instance_id") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": ID}


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def plain(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "get": {"summary": description, "responses": {"200": json_response(schema or {"type": "object"}, description)}}
    }
