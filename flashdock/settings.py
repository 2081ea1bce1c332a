"""FlashDock settings: the only place that reads the environment, so pages and tests agree on it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_REGISTRY_URL = "http://127.0.0.1:8500"


@dataclass(frozen=True)
class Settings:
    """Where the registry is, how long any one call may hold a page (never > 1 s), and who may log in."""

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
    # Login (see flashdock.auth): a password hash (pbkdf2_sha256$...) or a plain password hashed at start,
    # or the header a trusted reverse proxy sets to the user it authenticated. All empty: no login.
    password_hash: str = ""
    password: str = ""
    trusted_user_header: str = ""
    prometheus_url: str = ""

    @property
    def login_required(self) -> bool:
        return bool(self.password_hash or self.password or self.trusted_user_header)


def _secret(name: str) -> str:
    """``NAME`` from the environment, else the content of the file ``NAME_FILE`` (never from argv: ``ps`` shows it)."""
    value = os.environ.get(name, "")
    path = os.environ.get(f"{name}_FILE", "")
    if not value and path:
        value = Path(path).read_text().strip()
    return value


def load() -> Settings:
    """Settings from ``FLASHDOCK_*`` variables (``REGISTRY_URL`` and ``REGISTRY_TOKEN`` as fallbacks)."""
    url = os.environ.get("FLASHDOCK_REGISTRY_URL") or os.environ.get("REGISTRY_URL") or DEFAULT_REGISTRY_URL
    refresh = float(os.environ.get("FLASHDOCK_MONITOR_REFRESH_S", "5") or 5)
    # Never refresh faster than every 2 s: one scrape per worker per refresh stays far below 100/min.
    return Settings(
        registry_url=url.rstrip("/"),
        token=_secret("REGISTRY_TOKEN"),
        monitor_refresh_s=max(2.0, refresh),
        password_hash=_secret("FLASHDOCK_PASSWORD_HASH"),
        password=_secret("FLASHDOCK_PASSWORD"),
        trusted_user_header=os.environ.get("FLASHDOCK_TRUSTED_USER_HEADER", "").strip(),
        prometheus_url=os.environ.get("FLASHDOCK_PROMETHEUS_URL", "").rstrip("/"),
    )
