"""FlashDock settings: the only place that reads the environment, so pages and tests agree on it."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_REGISTRY_URL = "http://127.0.0.1:8500"


@dataclass(frozen=True)
class Settings:
    """Where the registry is and how long any one call may hold a page (the issue: never > 1 s)."""

    registry_url: str = DEFAULT_REGISTRY_URL
    token: str = ""
    # Short timeouts keep every page responsive; long work (batch, uploads) shows progress instead.
    registry_timeout_s: float = 0.8
    scrape_timeout_s: float = 0.5
    read_deadline_s: float = 1.0  # a worker read a page makes while rendering (jobs, datasets, models)
    predict_deadline_s: float = 30.0
    # One try of a prediction: a hung instance costs this, then the next instance or the fallback.
    predict_try_timeout_s: float = 10.0
    monitor_refresh_s: float = 5.0


def load() -> Settings:
    """Settings from ``FLASHDOCK_REGISTRY_URL`` (else ``REGISTRY_URL``) and ``REGISTRY_TOKEN``."""
    url = os.environ.get("FLASHDOCK_REGISTRY_URL") or os.environ.get("REGISTRY_URL") or DEFAULT_REGISTRY_URL
    refresh = float(os.environ.get("FLASHDOCK_MONITOR_REFRESH_S", "5") or 5)
    # Never refresh faster than every 2 s: one scrape per worker per refresh stays far below 100/min.
    return Settings(
        registry_url=url.rstrip("/"), token=os.environ.get("REGISTRY_TOKEN", ""), monitor_refresh_s=max(2.0, refresh)
    )
