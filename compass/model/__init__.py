"""COMPASS models: the ViSNet GNN, the pure-torch radius graph, and the one checkpoint format.

Names are imported on first use, so ``compass.model.lite`` (the CPU fallback) never pays for
torch_geometric, and compass-lite's scikit-learn/skops are imported only by that module.
"""

from __future__ import annotations

from compass.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "compass.model.checkpoint": ("CheckpointError", "Predictor", "load_checkpoint", "model_id"),
        "compass.model.visnet_checkpoint": ("CompassPredictor", "read_meta", "save_checkpoint"),
        "compass.model.radius": ("radius_graph",),
        "compass.model.visnet": ("CompassViSNet", "ViSNetConfig"),
    },
)
