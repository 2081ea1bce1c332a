"""The registry's short load history: sampled from what heartbeats carry, bounded, served at /api/v1/history."""

from __future__ import annotations

import time
from typing import Any

from services.common.settings import RegistrySettings
from services.registry.app import create_app
from services.registry.history import LoadHistory
from services.registry.store import SQLiteStore


def register(client: Any, name: str, port: int) -> str:
    body = {"service_name": name, "host": "127.0.0.1", "port": port}
    resp = client.post("/api/v1/services/register", json=body)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["data"]["instance_id"]


def test_history_records_heartbeat_load_per_instance_and_filters(tmp_path: Any) -> None:
    settings = RegistrySettings(db=str(tmp_path / "r.db"))
    app = create_app(settings, SQLiteStore(settings.db), start_background=False)
    client = app.test_client()
    a, b = register(client, "alpha", 9001), register(client, "beta", 9002)
    hist: LoadHistory = app.extensions["registry_history"]
    catalog = app.extensions["registry"].catalog
    for inflight in (1, 3):
        beat = client.put(f"/api/v1/services/{a}/heartbeat", json={"load": {"inflight": inflight, "cpu_percent": 50.0}})
        assert beat.status_code == 200, beat.get_json()
        hist.record(catalog.snapshot())

    data = client.get("/api/v1/history?minutes=5").get_json()["data"]
    points = data["instances"][a]["points"]
    assert [p["inflight"] for p in points] == [1, 3] and points[0]["cpu_percent"] == 50.0
    assert points[0]["status"] == "passing" and data["instances"][a]["service"] == "alpha"
    only_beta = client.get("/api/v1/history?service=beta").get_json()["data"]["instances"]
    assert set(only_beta) == {b}
    assert client.get("/api/v1/history?minutes=abc").status_code == 400
    assert client.get("/api/v1/history?minutes=600").status_code == 400
    catalog.close()


def test_history_drops_samples_past_its_window() -> None:
    class Inst:
        instance_id, service_name, status, load = "i-1", "svc", "passing", {"inflight": 2, "note": "text", "x": True}

    hist = LoadHistory(interval_s=10, window_s=60)
    now = time.time()
    for age in (120, 30, 0):
        hist.record([Inst()], now=now - age)
    assert len(hist.samples) == 2, "the sample older than the window is gone"
    [point, _] = hist.query(10)["instances"]["i-1"]["points"]
    assert point["inflight"] == 2 and "note" not in point and "x" not in point, "only numbers are kept"
