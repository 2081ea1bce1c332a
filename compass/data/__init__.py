"""Structure I/O, pocket cropping, featurisation, data roots, caches and leak-free splits.

Names are imported on first use: a worker that featurises one upload never imports the cache
layer (torch) that training reads data roots through.
"""

from __future__ import annotations

from compass.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "compass.data.dataset": ("LoadedRoot", "SurvivalReport", "load_cache", "load_root", "save_cache"),
        "compass.data.featurize": ("featurize_files", "featurize_texts"),
        "compass.data.graph": ("ComplexGraph", "ComplexRecord", "FeatureSettings"),
        "compass.data.roots": ("LayoutError", "list_records"),
        "compass.data.structures": ("StructureError",),
    },
)
