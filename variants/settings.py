"""Settings of the variants package (``VARIANTS_*``): the one place it reads the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import click

from services.common.cli import env_settings, setting


def _config_home() -> str:
    return str(Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "compass-variants")


@dataclass
class VariantSettings:
    """Where plugins, runs and caches live; what the worker accepts."""

    workdir: str = setting(
        "", "working directory (plugins, runs, caches); overrides the saved one", env="VARIANTS_WORKDIR"
    )
    config_dir: str = setting(
        _config_home(), "where `variants.workdir --set` saves the working directory", env="VARIANTS_CONFIG_DIR"
    )
    state_dir: str = setting("variants-state", "the worker's store, jobs, runs and models", env="VARIANTS_STATE_DIR")
    max_variants: int = setting(
        10_000, "variants per /predict call", env="VARIANTS_MAX_VARIANTS", type=click.IntRange(min=1)
    )
    max_design: int = setting(
        1000, "ranked variants a /design call may return", env="VARIANTS_MAX_DESIGN", type=click.IntRange(min=1)
    )
    max_library: int = setting(
        200_000,
        "in-silico library size a /design call may score",
        env="VARIANTS_MAX_LIBRARY",
        type=click.IntRange(min=1),
    )
    max_upload_bytes: int = setting(
        64 << 20, "largest mutation table upload", env="VARIANTS_MAX_UPLOAD_BYTES", type=click.IntRange(min=1)
    )
    stop_grace_s: float = setting(
        20.0, "seconds a stopped training job gets before SIGKILL", env="VARIANTS_STOP_GRACE_S"
    )
    api_token: str = setting(
        "", "bearer token for mutating calls (default: the worker token)", env="VARIANTS_API_TOKEN"
    )


def variant_settings() -> VariantSettings:
    return env_settings(VariantSettings)


def saved_workdir_file(settings: VariantSettings | None = None) -> Path:
    return Path((settings or variant_settings()).config_dir) / "workdir"


def current_workdir(settings: VariantSettings | None = None) -> Path | None:
    """``$VARIANTS_WORKDIR``, else the directory saved by ``variants.workdir --set``, else None."""
    settings = settings or variant_settings()
    if settings.workdir:
        return Path(settings.workdir)
    saved = saved_workdir_file(settings)
    if saved.is_file():
        text = saved.read_text().strip()
        return Path(text) if text else None
    return None


def cache_dir(workdir: Path | None) -> Path:
    """Embedding and score caches: ``<workdir>/cache``, else under the config directory."""
    return (workdir / "cache") if workdir else Path(variant_settings().config_dir) / "cache"
