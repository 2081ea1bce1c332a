"""OpenAPI 3.0 description of every registry route (served at /openapi.json, fuzzed by schemathesis).

Assembled from modules named for what they hold: :mod:`.blocks` (shared shapes, responses, parameters),
:mod:`.schemas` (component schemas), :mod:`.native` and :mod:`.compat` (the two APIs' paths); the history
and node routes bring their own entries.
"""

from __future__ import annotations

from typing import Any

from services.registry import history, nodes
from services.registry.openapi.blocks import plain
from services.registry.openapi.compat import compat_paths
from services.registry.openapi.native import native_paths
from services.registry.openapi.schemas import schemas


def build_spec(version: str) -> dict[str, Any]:
    """The whole document: probes under both prefixes, then the native, history, node and compat paths."""
    paths: dict[str, Any] = {}
    for prefix in ("", "/api/v1"):
        paths[f"{prefix}/health"] = plain("liveness")
        paths[f"{prefix}/openapi.json"] = plain("this document")
        paths[f"{prefix}/prometheus/targets"] = plain("Prometheus HTTP service discovery", {"type": "array"})
        paths[f"{prefix}/metrics"] = {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {"description": "text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}
                },
            }
        }
    paths.update(native_paths())
    paths.update(history.OPENAPI_PATHS)
    paths.update(nodes.OPENAPI_PATHS)
    paths.update(compat_paths())
    return {
        "openapi": "3.0.3",
        "info": {"title": "COMPASS mesh registry", "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
