"""COMPASS models: the ViSNet GNN, the pure-torch radius graph, and the one checkpoint format.

Names are imported on first use, so ``compass.model.lite`` (the CPU fallback) never pays for
torch_geometric, and compass-lite's scikit-learn/skops are imported only by that module.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CheckpointError": "compass.model.checkpoint",
    "CompassPredictor": "compass.model.checkpoint",
    "Predictor": "compass.model.checkpoint",
    "load_checkpoint": "compass.model.checkpoint",
    "model_id": "compass.model.checkpoint",
    "read_meta": "compass.model.checkpoint",
    "save_checkpoint": "compass.model.checkpoint",
    "radius_graph": "compass.model.radius",
    "CompassViSNet": "compass.model.visnet",
    "ViSNetConfig": "compass.model.visnet",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'compass.model' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
