"""What the registry's route modules share: the per-app state and the request body limit.

Kept apart from the app factory (``app.py``) so the native API (``api.py``) and the
compatibility API (``compat.py``) read it without importing the factory, or each other.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from functools import cached_property

from flask import current_app, request

from services.common.auth import Credentials
from services.common.envelope import ApiError, ErrorCode
from services.common.settings import RegistrySettings
from services.registry.catalog import Catalog
from services.registry.health import ActiveChecker, HealthSweeper
from services.registry.metrics import RegistryMetrics
from services.registry.nodes import node_claim
from services.registry.ownership import NATIVE, SECRET_HEADER, SECRET_RE, Caller
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

    @cached_property
    def credentials(self) -> Credentials:
        s = self.settings
        return Credentials(operator=s.operator_token, worker=s.worker_token, shared=s.token)

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


_FLAGS = {"true": True, "1": True, "false": False, "0": False}


def caller(via: str = NATIVE) -> Caller:
    """Who sends the current write: its token's role (401 without one), its instance secret, ``take_over``,
    and the node it proved with ``X-Node``/``X-Node-Secret`` (:mod:`services.registry.nodes`)."""
    role = state().credentials.require(request.headers.get("Authorization", ""))
    take_over = request.args.get("take_over", "false").lower()
    if take_over not in _FLAGS:
        raise ApiError(ErrorCode.INVALID_REQUEST, "take_over must be true or false")
    secret = request.headers.get(SECRET_HEADER)
    if secret is not None and not SECRET_RE.match(secret):
        raise ApiError(ErrorCode.INVALID_REQUEST, f"{SECRET_HEADER} must be the value a registration answered")
    secret = secret or ""
    node = ""
    claimed = node_claim(request.headers) if via == NATIVE else None
    if claimed is not None:  # a node agent, or a worker it launched: claim or prove the node
        node, node_secret = claimed
        state().catalog.claim_node(node, node_secret, Caller(role, via=via, take_over=_FLAGS[take_over]))
    return Caller(role, secret, via, _FLAGS[take_over], node)
