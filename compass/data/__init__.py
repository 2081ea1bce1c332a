"""Structure I/O, pocket cropping, featurisation, data roots, caches and leak-free splits."""

from compass.data.dataset import LoadedRoot, SurvivalReport, load_cache, load_root, save_cache
from compass.data.featurize import featurize_files, featurize_texts
from compass.data.graph import ComplexGraph, ComplexRecord, FeatureSettings
from compass.data.roots import LayoutError, list_records
from compass.data.structures import StructureError

__all__ = [
    "ComplexGraph",
    "ComplexRecord",
    "FeatureSettings",
    "LayoutError",
    "LoadedRoot",
    "StructureError",
    "SurvivalReport",
    "featurize_files",
    "featurize_texts",
    "list_records",
    "load_cache",
    "load_root",
    "save_cache",
]
