"""What the registry's route modules share: the per-app state and the request body limit.

Kept apart from the app factory (``app.py``) so the native API (``api.py``) and the
compatibility API (``compat.py``) read it without importing the factory, or each other.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from flask import current_app

from services.common.settings import RegistrySettings
from services.registry.catalog import Catalog
from services.registry.health import ActiveChecker, HealthSweeper
from services.registry.metrics import RegistryMetrics
from services.registry.watch import WatchCache

MAX_BODY_BYTES = 64 * 1024


@dataclass
class RegistryState:
    """Everything the routes need, kept on ``app.extensions['registry']``."""

    settings: RegistrySettings
    catalog: Catalog
    metrics: RegistryMetrics
    sweeper: HealthSweeper
    checker: ActiveChecker
    watch_slots: threading.BoundedSemaphore
    started: float
    rng: random.Random
    watch_cache: WatchCache

    def start(self) -> None:
        self.sweeper.start()
        self.checker.start()

    def stop(self) -> None:
        self.checker.stop()
        self.sweeper.stop()
        self.catalog.close()


def state() -> RegistryState:
    """The state of the app serving the current request."""
    return current_app.extensions["registry"]
