"""The paths of the replaced system's API under ``/compat/v0``: its bodies, its ``{detail}`` errors."""

from __future__ import annotations

from typing import Any

from services.registry.openapi.blocks import AUTH, NAME, id_param, json_response, plain, query, ref


def compat_paths() -> dict[str, Any]:
    detail = {
        code: json_response(ref("Detail"), text)
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
        "/compat/v0/health": plain("compat liveness"),
        f"{base}/register": {
            "post": {
                "summary": "compat register",
                "security": AUTH,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("CompatRegistration")}},
                },
                "responses": {
                    "200": json_response({"type": "object", "required": ["service_id"]}, "registered"),
                    **detail,
                },
            }
        },
        f"{base}/{{service_id}}/heartbeat": {
            "post": {
                "summary": "compat heartbeat",
                "security": AUTH,
                "parameters": [id_param("service_id")],
                "responses": {"200": json_response({"type": "object"}, "ok"), **detail},
            }
        },
        f"{base}/{{service_id}}": {
            "get": {
                "summary": "compat get",
                "parameters": [id_param("service_id")],
                "responses": {"200": json_response(ref("ServiceInfo"), "one"), **detail},
            },
            "delete": {
                "summary": "compat deregister",
                "security": AUTH,
                "parameters": [id_param("service_id")],
                "responses": {"200": json_response({"type": "object"}, "ok"), **detail},
            },
        },
        base: {
            "get": {
                "summary": "compat discover",
                "parameters": [
                    query("service_name", NAME, "service name"),
                    query("status_filter", {"type": "string", "enum": ["healthy", "unhealthy", "unknown"]}, "state"),
                ],
                "responses": {
                    "200": json_response({"type": "object", "required": ["services", "count"]}, "services"),
                    **detail,
                },
            }
        },
    }
