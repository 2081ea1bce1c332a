"""One checkpoint format for both models, loaded from the file alone and without pickle.

- ``compass`` (ViSNet): a single ``.safetensors`` file. Its metadata holds one key, ``"compass"``,
  whose value is JSON: ``kind``, ``format``, ``arch`` (the whole :class:`ViSNetConfig`),
  ``feature_settings``, ``plan``, ``data_hash``, ``metrics``, ``code_version`` and ``created``,
  plus ``weights_sha256`` (a digest of every tensor, so a file edited after saving is refused).
- ``compass-lite``: a ``.skops`` file written and read by :mod:`compass.model.lite_format`.

This module holds what both share (the :class:`Predictor` protocol, errors, loading by suffix);
the ViSNet side, which needs torch, is :mod:`compass.model.visnet_checkpoint`, imported only
when a ``.safetensors`` file is written or read.

The system we replace rebuilt the model from default settings at inference time; here the
architecture comes only from the checkpoint, and a missing or unknown key is an error.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from compass.data.graph import ComplexGraph, FeatureSettings

FORMAT_VERSION = 1
META_KEY = "compass"
COMPASS_SUFFIX = ".safetensors"
LITE_SUFFIX = ".skops"
# Fields added later whose default means "absent" (FeatureSettings.pair_cutoffs: no pair features).
OPTIONAL_FIELDS = frozenset({"pair_cutoffs"})


class CheckpointError(ValueError):
    """The file is not a readable COMPASS checkpoint (wrong type, corrupted, edited, incomplete)."""


@runtime_checkable
class Predictor(Protocol):
    """What serving and evaluation need from a loaded model of either kind."""

    kind: str
    meta: dict[str, Any]
    feature_settings: FeatureSettings

    def predict(self, graphs: list[ComplexGraph], batch_size: int = 32) -> np.ndarray: ...


def load_checkpoint(path: str | Path, device: str = "cpu") -> Predictor:
    """A :class:`Predictor` for either model kind, chosen by the file suffix."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    if path.suffix == LITE_SUFFIX:
        # lazy: scikit-learn/skops only when needed
        from compass.model.lite_format import UntrustedModelError, load_lite

        try:
            return load_lite(path)
        except UntrustedModelError as exc:
            raise CheckpointError(str(exc)) from exc
    if path.suffix != COMPASS_SUFFIX:
        raise CheckpointError(f"{path}: unknown checkpoint type (expected {COMPASS_SUFFIX} or {LITE_SUFFIX})")
    from compass.model.visnet_checkpoint import CompassPredictor, load_compass_model

    model, meta = load_compass_model(path)
    return CompassPredictor(model, meta, device=device)


def model_id(path: str | Path) -> str:
    """First 12 hex digits of the file's sha256: a content id, stable across copies and renames."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]
