"""The worker app through Flask's test client: routes, envelope, limits, batch, metrics, spec."""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient

from services.common.envelope import ApiError, ErrorCode, ok
from services.common.settings import WorkerSettings
from services.worker.app import create_worker_app, worker_state
from services.worker.batching import MicroBatcher
from services.worker.echo import EchoModel
from services.worker.model import WorkerModel
from tests.support import wait_until

ENVELOPE_KEYS = {"success", "message", "data", "error", "timestamp", "request_id"}


def settings(**overrides: Any) -> WorkerSettings:
    base = WorkerSettings(
        registry_urls=[], max_inflight=4, max_body_bytes=4096, max_batch_items=8, rate_limit_per_min=0
    )
    for key, value in overrides.items():
        setattr(base, key, value)
    return base


class ScriptedModel(WorkerModel):
    """Answers from the payload: raises what ``raise`` names, returns what ``return`` holds."""

    service_name = "scripted"
    version = "2.0.0"

    def __init__(self, task_types: list[str] | None = None) -> None:
        self.capabilities = ["testing"]
        self.models = ["scripted-1"]
        self.task_types = task_types
        self.is_ready = True

    def ready(self) -> bool:
        return self.is_ready

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        kind = payload.get("raise")
        if kind == "value":
            raise ValueError("bad number")
        if kind == "sequence":
            raise ApiError(ErrorCode.INVALID_SEQUENCE, "not a protein")
        if "return" in payload:
            return payload["return"]
        return {"answer": payload.get("x", 0) * 2}

    def blueprint(self) -> Blueprint:
        bp = Blueprint("scripted", __name__)

        @bp.get("/things/<thing_id>")
        def get_thing(thing_id: str) -> Any:
            """Fetch one thing."""
            return ok({"thing": thing_id})

        @bp.delete("/things/<thing_id>")
        def delete_thing(thing_id: str) -> Any:
            """Forget one thing."""
            return ok({"deleted": thing_id})

        return bp


class BlockingModel(WorkerModel):
    """Holds every request until the test releases it, so in-flight counts are exact."""

    service_name = "blocking"

    def __init__(self) -> None:
        self.capabilities = ["testing"]
        self.models = ["blocking-1"]
        self.release = threading.Event()

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        assert self.release.wait(10), "test never released the request"
        return {"done": True}


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
def app(model: ScriptedModel) -> Flask:
    return create_worker_app(model, settings())


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def assert_error(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == ENVELOPE_KEYS
    assert body["success"] is False
    assert body["error"]["code"] == code
    return body


@pytest.mark.parametrize("path", ["/health", "/health/live", "/health/ready", "/model/info"])
def test_probe_routes_answer_in_the_envelope(client: FlaskClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 200
    body = resp.get_json()
    assert set(body) == ENVELOPE_KEYS
    assert body["success"] is True and body["error"] is None
    assert body["timestamp"].endswith("Z")


def test_health_reports_the_contract_fields(client: FlaskClient) -> None:
    data = client.get("/health").get_json()["data"]
    assert data["status"] == "healthy"
    assert data["model"] == "scripted" and data["version"] == "2.0.0"
    assert data["uptime_s"] >= 0 and data["memory_mb"] > 0
    assert data["gpu_available"] is False


def test_model_info_lists_model_and_runtime_limits(client: FlaskClient) -> None:
    data = client.get("/model/info").get_json()["data"]
    assert data["name"] == "scripted"
    assert data["models"] == ["scripted-1"] and data["capabilities"] == ["testing"]
    assert data["runtime"] == {
        "max_inflight": 4,
        "max_body_bytes": 4096,
        "max_batch_items": 8,
        "rate_limit_per_min": 0,
        "rate_limit_key": "issued client token, else peer address",
        "max_request_cost": 0,
        "device": "cpu",
    }


def test_predict_returns_the_models_answer(client: FlaskClient) -> None:
    resp = client.post("/predict", json={"x": 21})
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["success"] is True and body["data"] == {"answer": 42}


def test_request_id_is_echoed_in_header_and_body(client: FlaskClient) -> None:
    resp = client.post("/predict", json={"x": 1}, headers={"X-Request-ID": "req-abc.1"})
    assert resp.headers["X-Request-ID"] == "req-abc.1"
    assert resp.get_json()["request_id"] == "req-abc.1"
    minted = client.get("/health")
    assert minted.headers["X-Request-ID"] == minted.get_json()["request_id"]


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"'])
def test_malformed_or_non_object_json_is_invalid_request(client: FlaskClient, body: bytes) -> None:
    resp = client.post("/predict", data=body, content_type="application/json")
    assert_error(resp, 400, "INVALID_REQUEST")


def test_body_over_the_limit_is_413(client: FlaskClient) -> None:
    resp = client.post("/predict", data=b'{"x": "' + b"a" * 5000 + b'"}', content_type="application/json")
    assert_error(resp, 413, "PAYLOAD_TOO_LARGE")


def test_model_errors_map_to_codes(client: FlaskClient) -> None:
    body = assert_error(client.post("/predict", json={"raise": "value"}), 500, "PREDICTION_FAILED")
    assert "ValueError: bad number" in body["error"]["details"]
    assert_error(client.post("/predict", json={"raise": "sequence"}), 400, "INVALID_SEQUENCE")
    assert_error(client.post("/predict", json={"return": [1, 2]}), 500, "INTERNAL_ERROR")


def test_task_type_outside_the_declared_ones_is_rejected() -> None:
    client = create_worker_app(ScriptedModel(task_types=["score"]), settings()).test_client()
    assert client.post("/predict", json={"task_type": "score", "x": 1}).status_code == 200
    body = assert_error(client.post("/predict", json={"task_type": "train"}), 400, "INVALID_REQUEST")
    assert "score" in body["error"]["details"]


def test_unknown_route_and_wrong_method_use_the_envelope(client: FlaskClient) -> None:
    assert_error(client.get("/nope"), 404, "NOT_FOUND")
    assert_error(client.get("/predict"), 405, "METHOD_NOT_ALLOWED")


def test_not_loaded_model_is_503_model_not_loaded(model: ScriptedModel) -> None:
    app = create_worker_app(model, settings(), loaded=False)
    client = app.test_client()
    resp = client.get("/health/ready")
    assert_error(resp, 503, "MODEL_NOT_LOADED")
    assert int(resp.headers["Retry-After"]) >= 1
    assert_error(client.post("/predict", json={}), 503, "MODEL_NOT_LOADED")
    assert client.get("/health/live").status_code == 200
    assert client.get("/health").get_json()["data"]["status"] == "unhealthy"
    worker_state(app).loaded.set()
    assert client.get("/health/ready").status_code == 200


def test_model_that_reports_not_ready_fails_readiness(model: ScriptedModel, client: FlaskClient) -> None:
    model.is_ready = False
    assert_error(client.get("/health/ready"), 503, "MODEL_NOT_LOADED")


def test_draining_refuses_work_but_answers_probes(app: Flask, client: FlaskClient) -> None:
    worker_state(app).draining.set()
    ready = client.get("/health/ready")
    assert_error(ready, 503, "OVERLOADED")
    resp = client.post("/predict", json={"x": 1})
    assert_error(resp, 503, "OVERLOADED")
    assert "Retry-After" in resp.headers
    assert_error(client.get("/api/v1/things/1"), 503, "OVERLOADED")
    assert client.get("/health").get_json()["data"]["draining"] is True
    assert client.get("/metrics").status_code == 200


def test_inflight_limit_answers_503_overloaded_with_retry_after() -> None:
    model = BlockingModel()
    app = create_worker_app(model, settings(max_inflight=2))
    state = worker_state(app)
    results: list[int] = []

    def call() -> None:
        results.append(app.test_client().post("/predict", json={}).status_code)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: state.limiter.inflight == 2, what="two requests in flight")
        resp = app.test_client().post("/predict", json={})
        body = assert_error(resp, 503, "OVERLOADED")
        assert "limit 2" in body["error"]["details"]
        assert int(resp.headers["Retry-After"]) >= 1
        assert app.test_client().get("/health/ready").status_code == 200  # probes are not work
    finally:
        model.release.set()
        for thread in threads:
            thread.join(10)
    assert results == [200, 200]
    assert state.limiter.inflight == 0
    assert app.test_client().post("/predict", json={}).status_code == 200


def test_inflight_slot_is_released_when_the_model_raises(app: Flask, client: FlaskClient) -> None:
    for _ in range(6):  # more than max_inflight=4 failures in a row
        client.post("/predict", json={"raise": "value"})
    assert worker_state(app).limiter.inflight == 0
    assert client.post("/predict", json={"x": 1}).status_code == 200


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_is_per_client_with_retry_after(model: ScriptedModel) -> None:
    clock = FakeTime()
    client = create_worker_app(model, settings(), rate_limit_per_min=2, clock=clock).test_client()
    alice = {"X-Client-ID": "alice"}
    assert client.post("/predict", json={}, headers=alice).status_code == 200
    assert client.post("/predict", json={}, headers=alice).status_code == 200
    limited = client.post("/predict", json={}, headers=alice)
    assert_error(limited, 429, "RATE_LIMITED")
    assert limited.headers["Retry-After"] == "30"  # one token per 30 s at 2/min
    # Without an issued token the peer address is the client: a new id or a made-up token changes nothing.
    assert client.post("/predict", json={}, headers={"X-Client-ID": "bob"}).status_code == 429
    assert client.post("/predict", json={}, headers={**alice, "Authorization": "Bearer t1"}).status_code == 429
    other_peer = client.post("/predict", json={}, environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert other_peer.status_code == 200
    assert client.get("/health").status_code == 200  # probes are never limited
    clock.now += 30
    assert client.post("/predict", json={}, headers=alice).status_code == 200


def test_rate_limit_off_by_default_and_on_from_the_kind() -> None:
    model = ScriptedModel()
    model.rate_limit_per_min = 1
    client = create_worker_app(model, settings()).test_client()
    assert client.post("/predict", json={}).status_code == 200
    assert client.post("/predict", json={}).status_code == 429
    assert client.get("/model/info").get_json()["data"]["runtime"]["rate_limit_per_min"] == 1
    off = create_worker_app(model, settings(), rate_limit_per_min=0).test_client()
    assert all(off.post("/predict", json={}).status_code == 200 for _ in range(3))


def test_batch_reports_each_item_on_its_own() -> None:
    client = create_worker_app(ScriptedModel(task_types=["score"]), settings()).test_client()
    items = [{"x": 2}, {"raise": "value"}, "not an object", {"task_type": "train"}, {"raise": "sequence"}]
    resp = client.post("/predict/batch", json={"items": items})
    assert resp.status_code == 200
    data = resp.get_json()["data"]
    assert (data["count"], data["succeeded"], data["failed"]) == (5, 1, 4)
    results = data["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert results[0] == {"index": 0, "success": True, "data": {"answer": 4}, "error": None}
    assert [r["error"]["code"] for r in results[1:]] == [
        "PREDICTION_FAILED",
        "INVALID_REQUEST",
        "INVALID_REQUEST",
        "INVALID_SEQUENCE",
    ]


@pytest.mark.parametrize("body", [{}, {"items": []}, {"items": {"x": 1}}, {"items": [{}] * 9}])
def test_batch_shape_and_size_are_checked(client: FlaskClient, body: dict[str, Any]) -> None:
    assert_error(client.post("/predict/batch", json=body), 400, "INVALID_REQUEST")


def test_kind_blueprint_is_mounted_under_api_v1(client: FlaskClient) -> None:
    resp = client.get("/api/v1/things/7")
    assert resp.status_code == 200 and resp.get_json()["data"] == {"thing": "7"}


def test_multipart_files_reach_the_model_as_uploaded_files() -> None:
    client = create_worker_app(EchoModel(), settings()).test_client()
    data = {"name": "complex-1", "protein": (io.BytesIO(b"ATOM  1"), "p.pdb")}
    resp = client.post("/predict", data=data, content_type="multipart/form-data")
    assert resp.status_code == 200
    assert resp.get_json()["data"]["echo"] == {"name": "complex-1", "protein": {"filename": "p.pdb", "size": 7}}


def test_metrics_count_requests_by_route_and_status(client: FlaskClient) -> None:
    client.post("/predict", json={"x": 1})
    client.post("/predict", data=b"{", content_type="application/json")
    client.get("/api/v1/things/1")
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.content_type.startswith("text/plain")
    text = resp.get_data(as_text=True)
    assert 'worker_requests_total{method="POST",route="/predict",status="200"} 1.0' in text
    assert 'worker_requests_total{method="POST",route="/predict",status="400"} 1.0' in text
    assert 'worker_requests_total{method="GET",route="/api/v1/things/<thing_id>",status="200"} 1.0' in text
    assert "worker_request_duration_seconds_bucket" in text
    assert "worker_inflight_requests 0.0" in text
    assert 'worker_info{service="scripted",version="2.0.0"} 1.0' in text


def test_two_apps_keep_separate_metrics() -> None:
    first = create_worker_app(ScriptedModel(), settings()).test_client()
    second = create_worker_app(ScriptedModel(), settings()).test_client()
    first.post("/predict", json={})
    assert 'route="/predict"' not in second.get("/metrics").get_data(as_text=True)


def test_openapi_documents_runtime_and_kind_routes(client: FlaskClient) -> None:
    resp = client.get("/openapi.json")
    assert resp.status_code == 200
    spec = resp.get_json()
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    for path in ["/health", "/health/live", "/health/ready", "/metrics", "/model/info", "/openapi.json"]:
        assert "get" in paths[path]
    assert "post" in paths["/predict"] and "post" in paths["/predict/batch"]
    thing = paths["/api/v1/things/{thing_id}"]["get"]
    assert thing["summary"] == "Fetch one thing."
    assert thing["parameters"][0]["name"] == "thing_id"
    # a second rule on the same path (DELETE beside GET) is documented too, with its own summary
    assert paths["/api/v1/things/{thing_id}"]["delete"]["summary"] == "Forget one thing."
    assert "Envelope" in spec["components"]["schemas"]


def test_misdeclared_model_fails_at_construction() -> None:
    model = ScriptedModel()
    model.service_name = "Bad Name"
    with pytest.raises(TypeError, match="service_name"):
        create_worker_app(model, settings())
    model = ScriptedModel()
    model.capabilities = "echo"  # type: ignore[assignment]
    with pytest.raises(TypeError, match="capabilities"):
        create_worker_app(model, settings())


class BatchedModel(WorkerModel):
    """Answers through a one-item-per-pass micro-batcher whose passes wait for the test."""

    service_name = "batched"

    def __init__(self) -> None:
        self.capabilities = ["testing"]
        self.models = ["batched-1"]
        self.release = threading.Event()
        self.batcher: MicroBatcher[int, int] = MicroBatcher(self._run, max_batch=1, max_wait_s=0)

    def _run(self, key: Any, items: Any) -> list[int]:
        self.release.wait(10)
        return list(items)

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"x": self.batcher.submit("k", payload["x"])}

    def queued_items(self) -> int:
        return self.batcher.queued


def test_heartbeat_queued_counts_items_waiting_in_the_batcher() -> None:
    model = BatchedModel()
    state = worker_state(create_worker_app(model, settings()))
    state.queued = lambda: 1  # one request waiting for a server thread
    futures = model.batcher.submit_many([("k", i) for i in range(4)])
    try:
        wait_until(lambda: model.batcher.queued == 3, timeout=5, what="one item in the pass, three queued")
        assert state.load_snapshot()["queued"] == 1 + 3
    finally:
        model.release.set()
        assert [f.result(timeout=5).value for f in futures] == [0, 1, 2, 3]
        model.batcher.close()
    assert state.load_snapshot()["queued"] == 1
