"""Settings of the COMPASS package, read from the environment (the only module here that reads it)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The shared data folder (``COMPASS_DATA_DIR``, default ``../shared/data`` beside the checkout)."""
    return Path(os.environ.get("COMPASS_DATA_DIR", str(REPO_ROOT.parent / "shared" / "data")))


def cache_dir() -> Path:
    """Where featurised tensors are cached (``COMPASS_CACHE_DIR``, default ``.cache/compass`` in the repo)."""
    return Path(os.environ.get("COMPASS_CACHE_DIR", str(REPO_ROOT / ".cache" / "compass")))


def weights_dir() -> Path:
    """Shipped checkpoints (``COMPASS_WEIGHTS_DIR``, default ``compass/weights``)."""
    return Path(os.environ.get("COMPASS_WEIGHTS_DIR", str(REPO_ROOT / "compass" / "weights")))
