"""Admission by cost in the runtime (issue 18): 413 past the per-request budget, 429 past the client's."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from services.common.settings import WorkerSettings
from services.worker.admission import CostBudget, charge
from services.worker.app import create_worker_app
from services.worker.model import WorkerModel
from tests.support import wait_until


class CostlyModel(WorkerModel):
    """Each body says its cost; ``hold`` blocks the request until the test lets it go."""

    service_name = "costly"
    capabilities = ["testing"]  # noqa: RUF012
    models = ["costly-1"]  # noqa: RUF012
    max_request_cost = 100.0
    max_client_cost = 150.0
    cost_unit = "widgets"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.holding = 0

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        charge(payload["cost"], "this thing")
        if payload.get("hold"):
            self.holding += 1
            self.gate.wait(timeout=10)
        return {"ok": True}


def _settings(tmp_path) -> WorkerSettings:
    tokens = tmp_path / "tokens"
    from services.common.client_tokens import token_hash

    tokens.write_text(f"a:{token_hash('token-a')}\nb:{token_hash('token-b')}\n")
    return WorkerSettings(registry_urls=[], max_inflight=8, client_tokens_file=str(tokens))


def test_a_request_over_its_budget_is_413_with_the_reason(tmp_path) -> None:
    client = create_worker_app(CostlyModel(), _settings(tmp_path)).test_client()
    resp = client.post("/predict", json={"cost": 101})
    assert resp.status_code == 413 and resp.get_json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    details = resp.get_json()["error"]["details"]
    assert "101 widgets" in details and "at most 100" in details
    assert client.post("/predict", json={"cost": 100}).status_code == 200
    info = client.get("/model/info").get_json()["data"]["runtime"]
    assert (info["max_request_cost"], info["max_client_cost"], info["cost_unit"]) == (100, 150, "widgets")


def test_a_client_with_too_much_in_flight_gets_429_and_others_do_not(tmp_path) -> None:
    model = CostlyModel()
    client = create_worker_app(model, _settings(tmp_path)).test_client()
    a = {"Authorization": "Bearer token-a"}
    held = threading.Thread(target=lambda: client.post("/predict", json={"cost": 100, "hold": True}, headers=a))
    held.start()
    wait_until(lambda: model.holding == 1, what="the first request to be in flight")
    refused = client.post("/predict", json={"cost": 60}, headers=a)
    assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "RATE_LIMITED"
    assert "in flight" in refused.get_json()["error"]["details"] and float(refused.headers["Retry-After"]) >= 1
    assert client.post("/predict", json={"cost": 50}, headers=a).status_code == 200  # 150 fits
    assert client.post("/predict", json={"cost": 100}, headers={"Authorization": "Bearer token-b"}).status_code == 200
    model.gate.set()
    held.join(timeout=10)
    assert client.post("/predict", json={"cost": 100}, headers=a).status_code == 200  # given back


def test_budgets_are_checked_and_charge_is_a_no_op_outside_a_request() -> None:
    charge(10**9)  # a model used as a library pays nothing
    with pytest.raises(ValueError):
        CostBudget(100, 50, "x")
