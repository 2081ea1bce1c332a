"""The component schemas of the registry's OpenAPI document: instances, registrations, services, compat bodies."""

from __future__ import annotations

from typing import Any

from services.common.envelope import envelope_schema
from services.common.instance import MIN_CHECK_INTERVAL_S
from services.registry.openapi.blocks import HEALTH, HOST, ID, NAME, STATUS, TAG, ref


def schemas() -> dict[str, Any]:
    return {
        "Envelope": envelope_schema({"nullable": True}, {"type": "string"}),
        "ErrorEnvelope": {
            "allOf": [
                ref("Envelope"),
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
                "instance_id": {**ID, "nullable": True},
                "service_name": NAME,
                "host": HOST,
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "base_url": {
                    "type": "string",
                    "pattern": "^https?://[A-Za-z0-9.-]+(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~/-]*)?$",
                    "maxLength": 512,
                    "nullable": True,
                },
                "tags": {"type": "array", "maxItems": 32, "items": TAG, "nullable": True},
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
                "status": HEALTH,
                "load": {"allOf": [ref("Load")], "nullable": True},
                "check": {"allOf": [ref("Check")], "nullable": True},
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
                "status": {**HEALTH, "nullable": True},
                "load": {"allOf": [ref("Load")], "nullable": True},
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
                "status": STATUS,
                "health": HEALTH,
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
                "service_name": NAME,
                "host": HOST,
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
