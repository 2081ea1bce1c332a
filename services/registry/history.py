"""A short history of the load every heartbeat already carries, for dashboards without a Prometheus.

Every ``interval_s`` a sampler thread copies each instance's status and numeric load (inflight,
queued, cpu_percent, rss_mb, gpu_mem_mb, ...) out of the catalog into a ring buffer that holds
``window_s`` (an hour by default). ``GET /api/v1/history?minutes=60[&service=S]`` answers it per
instance. Memory stays bounded: instances × window / interval samples, the oldest dropped first,
and at most ``max_instances`` instances per sample. Nothing is persisted: a restart starts a new
history (Prometheus is the durable store when one is configured).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request

from services.common.envelope import ApiError, ErrorCode, ok

INTERVAL_S = 10.0
WINDOW_S = 3600.0
MAX_INSTANCES = 2000


@dataclass
class LoadHistory:
    """Samples ``(unix time, {instance_id: {service, status, load...}})``, oldest first."""

    interval_s: float = INTERVAL_S
    window_s: float = WINDOW_S
    max_instances: int = MAX_INSTANCES
    samples: deque[tuple[float, dict[str, dict[str, Any]]]] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    def record(self, instances: list[Any], now: float | None = None) -> None:
        """One sample of ``instances`` (the catalog's :class:`Instance` copies)."""
        now = time.time() if now is None else now
        sample: dict[str, dict[str, Any]] = {}
        for inst in instances[: self.max_instances]:
            numbers = (inst.load or {}).items()
            load = {k: v for k, v in numbers if isinstance(v, int | float) and not isinstance(v, bool)}
            sample[inst.instance_id] = {"service": inst.service_name, "status": inst.status, **load}
        with self._lock:
            self.samples.append((now, sample))
            while self.samples and now - self.samples[0][0] > self.window_s:
                self.samples.popleft()

    def query(self, minutes: float, service: str | None = None) -> dict[str, Any]:
        """Per instance: ``{service, points: [{t, status, inflight, ...}]}`` over the last ``minutes``."""
        since = time.time() - minutes * 60
        out: dict[str, dict[str, Any]] = {}
        with self._lock:
            samples = [s for s in self.samples if s[0] >= since]
        for t, sample in samples:
            for iid, row in sample.items():
                if service and row["service"] != service:
                    continue
                entry = out.setdefault(iid, {"service": row["service"], "points": []})
                entry["points"].append({"t": round(t, 3), **{k: v for k, v in row.items() if k != "service"}})
        return {"interval_s": self.interval_s, "window_s": self.window_s, "instances": out}

    def start(self, snapshot: Any) -> None:
        """Sample ``snapshot()`` every interval on a daemon thread until :meth:`stop`."""

        def loop() -> None:
            while not self._stop.wait(self.interval_s):
                try:
                    self.record(snapshot())
                except Exception:  # a store hiccup must never end the history
                    continue

        self.record(snapshot())
        threading.Thread(target=loop, name="registry-history", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()


history_api = Blueprint("history", __name__)


@history_api.get("/history")
def get_history() -> Response:
    hist: LoadHistory = current_app.extensions["registry_history"]
    try:
        minutes = float(request.args.get("minutes", "60"))
    except ValueError:
        raise ApiError(ErrorCode.INVALID_REQUEST, "minutes must be a number") from None
    if not 0 < minutes <= hist.window_s / 60:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"minutes must be in (0, {hist.window_s / 60:g}]")
    return ok(hist.query(minutes, request.args.get("service") or None))


def install_history(app: Flask, snapshot: Any, start: bool = True, interval_s: float = INTERVAL_S) -> LoadHistory:
    """Keep a :class:`LoadHistory` of ``snapshot()`` and serve it at ``/api/v1/history``."""
    hist = LoadHistory(interval_s=interval_s)
    app.extensions["registry_history"] = hist
    app.register_blueprint(history_api, url_prefix="/api/v1")
    if start:
        hist.start(snapshot)
    return hist


# The route's OpenAPI entry (services.registry.openapi adds it to the spec).
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/history": {
        "get": {
            "operationId": "loadHistory",
            "summary": "Recent load and status per instance, sampled from heartbeats (bounded window, not persisted)",
            "parameters": [
                {"name": "minutes", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 60}},
                {"name": "service", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {
                    "description": "per instance: service and points [{t, status, inflight, queued, ...}]",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "400": {"description": "bad minutes", "content": {"application/json": {"schema": {"type": "object"}}}},
            },
        }
    }
}
