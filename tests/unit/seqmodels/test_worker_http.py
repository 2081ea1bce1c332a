"""The sequence API on the real worker app (Flask test client) around a model without weights."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from seqmodels.sequences import PROTEIN, Alphabet, SeqRequest, opt_bool
from seqmodels.settings import SeqSettings
from seqmodels.worker import SequenceModel
from services.common.envelope import ApiError, ErrorCode
from services.common.settings import WorkerSettings
from services.worker.app import create_worker_app


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ReverseModel(SequenceModel):
    """Answers the reversed sequence; remembers the size of every pass."""

    service_name = "reverser"
    version = "1.0"
    tasks = ("reverse", "count")
    task_aliases = {"sequence-reversal": "reverse"}  # noqa: RUF012

    def __init__(self, settings: SeqSettings | None = None) -> None:
        super().__init__(settings or SeqSettings(max_length=50, batch_wait_ms=1))
        self.capabilities = ["sequence-reversal"]
        self.models = ["reverser-1"]
        self.passes: list[int] = []

    def alphabet(self, task_type: str) -> Alphabet:
        return PROTEIN

    def load_model(self) -> None:
        pass

    def prepare(self, request: SeqRequest) -> SeqRequest:
        opt_bool(request.options, "fail", False)
        return request

    def run(self, requests: Sequence[SeqRequest]):
        self.passes.append(len(requests))
        return [
            ApiError(ErrorCode.PREDICTION_FAILED, "asked to fail")
            if r.options.get("fail")
            else {"reversed": r.sequence[::-1]}
            if r.task_type == "reverse"
            else {"count": len(r.sequence)}
            for r in requests
        ]


@pytest.fixture
def model() -> ReverseModel:
    m = ReverseModel()
    m.load()
    return m


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(model, clock):
    app = create_worker_app(model, WorkerSettings(max_batch_items=100), clock=clock)
    return app.test_client()


def error_code(resp) -> str:
    return resp.get_json()["error"]["code"]


def test_predict_answers_with_the_model_task_and_length(client) -> None:
    resp = client.post("/predict", json={"sequence": "mkv aw", "task_type": "sequence-reversal"})
    assert resp.status_code == 200
    assert resp.get_json()["data"] == {"reversed": "WAVKM", "model": "reverser-1", "task_type": "reverse", "length": 5}
    assert client.post("/predict", json={"sequence": "MKV"}).get_json()["data"]["task_type"] == "reverse"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"sequence": "MKVZ"}, 400, "INVALID_SEQUENCE"),
        ({"sequence": ""}, 400, "INVALID_SEQUENCE"),
        ({}, 400, "INVALID_SEQUENCE"),
        ({"sequence": "M" * 51}, 400, "SEQUENCE_TOO_LONG"),
        ({"sequence": "MKV", "task_type": "fold"}, 400, "INVALID_REQUEST"),
        ({"sequence": "MKV", "options": {"fail": "no"}}, 400, "INVALID_REQUEST"),
        ({"sequence": "MKV", "options": {"fail": True}}, 500, "PREDICTION_FAILED"),
    ],
)
def test_bad_requests_get_their_codes(client, body, status, code) -> None:
    resp = client.post("/predict", json=body)
    assert (resp.status_code, error_code(resp)) == (status, code)


def test_batch_of_sequences_answers_each_and_shares_passes(client, model) -> None:
    resp = client.post("/predict/batch", json={"sequences": ["MKV", "MK1", "", "AC", "M" * 60], "task_type": "reverse"})
    assert resp.status_code == 200
    data = resp.get_json()["data"]
    assert (data["count"], data["succeeded"], data["failed"]) == (5, 2, 3)
    results = data["results"]
    assert results[0]["data"]["reversed"] == "VKM" and results[3]["data"]["reversed"] == "CA"
    assert [r["error"]["code"] for r in (results[1], results[2], results[4])] == [
        "INVALID_SEQUENCE",
        "INVALID_SEQUENCE",
        "SEQUENCE_TOO_LONG",
    ]
    assert model.passes == [2], "the valid sequences of one batch share a single pass"


def test_batch_limits_and_shapes(client) -> None:
    too_many = client.post("/predict/batch", json={"sequences": ["MK"] * 101}, headers={"X-Request-ID": "rid-1"})
    assert (too_many.status_code, error_code(too_many)) == (400, "INVALID_REQUEST")
    assert too_many.headers["X-Request-ID"] == "rid-1" and too_many.get_json()["request_id"] == "rid-1"
    assert client.post("/predict/batch", json={"sequences": ["MK"] * 100}).status_code == 200
    for bad in ({"sequences": []}, {"sequences": "MKV"}):
        resp = client.post("/predict/batch", json=bad)
        assert (resp.status_code, error_code(resp)) == (400, "INVALID_REQUEST")
    items = client.post("/predict/batch", json={"items": [{"sequence": "MK", "task_type": "count"}]})
    assert items.get_json()["data"]["results"][0]["data"]["count"] == 2, "the runtime's items form still works"
    broken = client.post("/predict/batch", data="{nope", content_type="application/json")
    assert error_code(broken) == "INVALID_REQUEST"


def test_model_not_loaded_is_503(model) -> None:
    cold = ReverseModel()  # load() never ran
    resp = create_worker_app(cold, WorkerSettings()).test_client().post("/predict", json={"sequence": "MK"})
    assert (resp.status_code, error_code(resp)) == (503, "MODEL_NOT_LOADED") and resp.headers["Retry-After"]
    loading = create_worker_app(model, WorkerSettings(), loaded=False).test_client()
    assert error_code(loading.post("/predict/batch", json={"sequences": ["MK"]})) == "MODEL_NOT_LOADED"


def test_a_burst_over_the_rate_limit_is_429_with_retry_after(client, clock) -> None:
    headers = {"X-Client-ID": "burst"}
    codes = [client.post("/predict", json={"sequence": "MK"}, headers=headers).status_code for _ in range(101)]
    assert codes[:100] == [200] * 100 and codes[100] == 429
    limited = client.post("/predict", json={"sequence": "MK"}, headers=headers)
    assert error_code(limited) == "RATE_LIMITED" and float(limited.headers["Retry-After"]) >= 1
    assert client.post("/predict", json={"sequence": "MK"}, headers={"X-Client-ID": "other"}).status_code == 429
    other = client.post("/predict", json={"sequence": "MK"}, environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert other.status_code == 200, "the limit is per peer address without an issued token"
    assert client.get("/model/info").status_code == 200, "probes are never rate limited"
    clock.now += 60.0
    assert client.post("/predict", json={"sequence": "MK"}, headers=headers).status_code == 200


def test_model_info_lists_names_task_types_alphabet_and_limits(client) -> None:
    info = client.get("/model/info").get_json()["data"]
    assert (info["name"], info["version"], info["models"]) == ("reverser", "1.0", ["reverser-1"])
    assert info["task_types"] == ["reverse", "count"] and info["default_task_type"] == "reverse"
    assert info["task_type_aliases"] == {"sequence-reversal": "reverse"}
    assert info["input_alphabet"]["reverse"]["letters"] == "ACDEFGHIKLMNPQRSTVWY"
    assert info["limits"]["max_sequence_length"] == {"reverse": 50, "count": 50}
    assert info["limits"]["max_batch_sequences"] == 100 and info["runtime"]["rate_limit_per_min"] == 100
    assert info["dynamic_batching"]["enabled"] is True


def test_metrics_are_labelled_by_task_type(client) -> None:
    client.post("/predict", json={"sequence": "MKV", "task_type": "count"})
    client.post("/predict", json={"sequence": "MKV1", "task_type": "reverse"})
    client.post("/predict", json={"sequence": "MKV", "task_type": "no-such-task"})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'seqmodel_sequences_total{outcome="ok",service="reverser",task_type="count"} 1.0' in text
    assert 'seqmodel_sequences_total{outcome="INVALID_SEQUENCE",service="reverser",task_type="reverse"} 1.0' in text
    assert "no-such-task" not in text, "labels never carry the client's free text"
    assert 'seqmodel_residues_total{service="reverser",task_type="count"} 3.0' in text
    assert 'seqmodel_batch_size_count{service="reverser",task_type="count"} 1.0' in text
    assert "worker_requests_total" in text, "the runtime's own metrics are still there"
    assert text.count("# HELP seqmodel_sequences_total") == 1
