"""Registry HTTP API through Flask's test client: contract shapes, every bad input, token, compat."""

from __future__ import annotations

import json
import re
import threading

import pytest

from services.common.clock import FakeClock
from services.common.settings import RegistrySettings
from services.registry.app import create_app
from services.registry.etcd_store import EtcdStore
from services.registry.store import SQLiteStore
from tests.etcd_support import unique_prefix

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(params=["sqlite", "etcd"])
def make_app(request, tmp_path):
    """Build registry apps over the SQLite store or a real etcd (the same tests run on both).

    Apps built in one test share the data (one SQLite file, one etcd prefix): a second one is a
    restarted registry.
    """
    apps = []
    prefix = unique_prefix()

    def build(**overrides):
        settings = RegistrySettings(db=str(tmp_path / "r.db"), heartbeat_interval=2.0, critical_after=3, **overrides)
        if request.param == "etcd":
            endpoints = request.getfixturevalue("etcd_server").endpoints
            store = EtcdStore(endpoints, prefix=prefix)
        else:
            store = SQLiteStore(settings.db)
        clock = FakeClock()
        app = create_app(settings, store, clock, start_background=False)
        apps.append(app)
        return app, clock

    yield build
    for app in apps:
        app.extensions["registry"].catalog.close()


@pytest.fixture
def client(make_app):
    app, _ = make_app()
    return app.test_client()


@pytest.fixture
def secured(make_app):
    app, _ = make_app(token=TOKEN)
    return app.test_client()


def register(client, headers=None, **body):
    payload = {"service_name": "echo", "host": "127.0.0.1", "port": 9001, **body}
    return client.post("/api/v1/services/register", json=payload, headers=headers or {})


def assert_error(resp, status: int, code: str) -> dict:
    body = resp.get_json()
    assert resp.status_code == status, body
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert body["error"]["details"]
    assert body["request_id"] and body["timestamp"].endswith("Z")
    return body


def test_register_answers_contract_and_is_idempotent(client):
    first = register(client, metadata={"capabilities": ["echo"]})
    assert first.status_code == 201
    data = first.get_json()["data"]
    assert data["ttl_s"] == 6.0 and data["heartbeat_interval_s"] == 2.0
    secret = {"X-Instance-Secret": data["instance_secret"]}
    again = register(client, headers=secret, metadata={"capabilities": ["echo"]})
    assert again.status_code == 200
    assert again.get_json()["data"]["instance_id"] == data["instance_id"]
    assert again.get_json()["data"]["instance_secret"] == data["instance_secret"]
    listed = client.get("/api/v1/services").get_json()["data"]["instances"]
    assert len(listed) == 1


def test_heartbeat_load_and_unknown_id(client):
    iid = register(client).get_json()["data"]["instance_id"]
    resp = client.put(f"/api/v1/services/{iid}/heartbeat", json={"status": "warning", "load": {"inflight": 3}})
    assert resp.status_code == 200
    inst = client.get(f"/api/v1/services/{iid}").get_json()["data"]
    assert inst["status"] == "warning" and inst["load"] == {"inflight": 3}
    assert client.put(f"/api/v1/services/{iid}/heartbeat").status_code == 200  # empty body is fine
    assert_error(client.put("/api/v1/services/nope/heartbeat", json={}), 404, "NOT_FOUND")


def test_maintenance_and_deregister(client):
    iid = register(client).get_json()["data"]["instance_id"]
    resp = client.put(f"/api/v1/services/{iid}/maintenance", json={"enabled": True, "reason": "upgrade"})
    assert resp.get_json()["data"]["status"] == "maintenance"
    assert client.get("/api/v1/services?status=passing").get_json()["data"]["instances"] == []
    assert client.delete(f"/api/v1/services/{iid}").status_code == 200
    assert_error(client.delete(f"/api/v1/services/{iid}"), 404, "NOT_FOUND")
    assert_error(client.get(f"/api/v1/services/{iid}"), 404, "NOT_FOUND")


def test_request_id_is_echoed(client):
    resp = client.get("/api/v1/services", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"
    assert resp.get_json()["request_id"] == "abc-123"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"host": "127.0.0.1", "port": 1}, 400, "INVALID_REQUEST"),  # missing service_name
        ({"service_name": "echo", "port": 1}, 400, "INVALID_REQUEST"),  # missing host
        ({"service_name": "echo", "host": "h"}, 400, "INVALID_REQUEST"),  # missing port
        ({"service_name": "echo", "host": "h", "port": "80"}, 400, "INVALID_REQUEST"),  # wrong type
        ({"service_name": "echo", "host": "h", "port": True}, 400, "INVALID_REQUEST"),
        ({"service_name": "echo", "host": "h", "port": 0}, 400, "INVALID_REQUEST"),  # out of range
        ({"service_name": "echo", "host": "h", "port": 65536}, 400, "INVALID_REQUEST"),
        ({"service_name": "Echo_Service", "host": "h", "port": 1}, 400, "INVALID_REQUEST"),  # bad name
        ({"service_name": "x" * 64, "host": "h", "port": 1}, 400, "INVALID_REQUEST"),
        ({"service_name": "", "host": "h", "port": 1}, 400, "INVALID_REQUEST"),
        ({"service_name": "echo", "host": "bad host!", "port": 1}, 400, "INVALID_REQUEST"),
        ({"service_name": "echo", "host": "h", "port": 1, "tags": "gpu"}, 400, "INVALID_REQUEST"),
        ({"service_name": "echo", "host": "h", "port": 1, "metadata": []}, 400, "INVALID_REQUEST"),
        ({"service_name": "echo", "host": "h", "port": 1, "metadata": {"capabilities": "x"}}, 400, "INVALID_REQUEST"),
        ({"service_name": "echo", "host": "h", "port": 1, "weight": 0}, 400, "INVALID_REQUEST"),
        ({"service_name": "echo", "host": "h", "port": 1, "status": "maintenance"}, 400, "INVALID_REQUEST"),
        ({"service_name": "echo", "host": "h", "port": 1, "base_url": "ftp://x"}, 400, "INVALID_REQUEST"),
        ({"service_name": "echo", "host": "h", "port": 1, "instance_id": "../etc"}, 400, "INVALID_REQUEST"),
        ({"service_name": "echo", "host": "h", "port": 1, "check": {"interval_s": 0}}, 400, "INVALID_REQUEST"),
        ({"service_name": "echo", "host": "h", "port": 1, "check": {"bogus": 1}}, 400, "INVALID_REQUEST"),
        ({"service_name": "echo", "host": "h", "port": 1, "metadata": {"blob": "x" * 9000}}, 413, "PAYLOAD_TOO_LARGE"),
    ],
)
def test_bad_registrations(client, body, status, code):
    assert_error(client.post("/api/v1/services/register", json=body), status, code)
    assert client.get("/api/v1/services").get_json()["data"]["instances"] == []


def test_malformed_and_non_object_json(client):
    resp = client.post("/api/v1/services/register", data="{not json", content_type="application/json")
    assert "malformed JSON" in assert_error(resp, 400, "INVALID_REQUEST")["error"]["details"]
    assert_error(client.post("/api/v1/services/register", json=[1, 2]), 400, "INVALID_REQUEST")
    assert_error(
        client.post("/api/v1/services/register", data=b"\xff\xfe", content_type="application/json"),
        400,
        "INVALID_REQUEST",
    )


def test_body_over_64kib_is_413(client):
    big = json.dumps({"service_name": "echo", "host": "h", "port": 1, "pad": "x" * 70_000})
    assert_error(
        client.post("/api/v1/services/register", data=big, content_type="application/json"), 413, "PAYLOAD_TOO_LARGE"
    )


@pytest.mark.parametrize(
    "body",
    [{"status": "dead"}, {"load": []}, {"load": {"inflight": [1]}}, {"load": {"x": True}}],
)
def test_bad_heartbeats(client, body):
    iid = register(client).get_json()["data"]["instance_id"]
    assert_error(client.put(f"/api/v1/services/{iid}/heartbeat", json=body), 400, "INVALID_REQUEST")


@pytest.mark.parametrize("body", [{}, {"enabled": "yes"}, {"enabled": True, "reason": 5}])
def test_bad_maintenance(client, body):
    iid = register(client).get_json()["data"]["instance_id"]
    assert_error(client.put(f"/api/v1/services/{iid}/maintenance", json=body), 400, "INVALID_REQUEST")


@pytest.mark.parametrize(
    "query",
    [
        "name=Bad_Name",
        "status=alive",
        "status=passing,nope",
        "index=-1",
        "index=abc",
        "wait=forever",
        "wait=601s",
        "service=echo",
        "tag=bad%20tag",
        "meta.=x",
        "capability=a%20b",
    ],
)
def test_bad_query_values(client, query):
    assert_error(client.get(f"/api/v1/services?{query}"), 400, "INVALID_REQUEST")


def test_unknown_route_and_method_are_enveloped(client):
    assert_error(client.get("/api/v1/nothing"), 404, "NOT_FOUND")
    assert_error(client.patch("/api/v1/services/register"), 405, "METHOD_NOT_ALLOWED")


def test_token_enforced_on_writes_only(secured):
    assert_error(register(secured), 401, "UNAUTHORIZED")
    assert_error(register(secured, headers={"Authorization": "Bearer wrong"}), 401, "UNAUTHORIZED")
    assert_error(register(secured, headers={"Authorization": TOKEN}), 401, "UNAUTHORIZED")  # no scheme
    iid = register(secured, headers=AUTH).get_json()["data"]["instance_id"]
    assert_error(secured.put(f"/api/v1/services/{iid}/heartbeat"), 401, "UNAUTHORIZED")
    assert_error(secured.put(f"/api/v1/services/{iid}/maintenance", json={"enabled": True}), 401, "UNAUTHORIZED")
    assert_error(secured.delete(f"/api/v1/services/{iid}"), 401, "UNAUTHORIZED")
    assert secured.get("/api/v1/services").status_code == 200  # reads stay open
    assert secured.put(f"/api/v1/services/{iid}/heartbeat", headers=AUTH).status_code == 200
    compat = secured.post("/compat/v0/api/v1/services/register", json={"service_name": "old", "host": "h", "port": 2})
    assert compat.status_code == 401 and "detail" in compat.get_json()


def test_filters_over_http(client):
    register(
        client, service_name="compass", port=1, tags=["gpu"], metadata={"capabilities": ["affinity"], "device": "cuda"}
    )
    register(client, service_name="compass-lite", port=2, metadata={"capabilities": ["affinity"], "device": "cpu"})

    def names(qs: str) -> list[str]:
        return [i["service_name"] for i in client.get(f"/api/v1/services?{qs}").get_json()["data"]["instances"]]

    assert names("capability=affinity") == ["compass", "compass-lite"]
    assert names("tag=gpu") == ["compass"]
    assert names("meta.device=cpu") == ["compass-lite"]
    assert names("name=compass") == ["compass"]
    assert names("status=passing,warning") == ["compass", "compass-lite"]
    cat = client.get("/api/v1/catalog").get_json()["data"]
    assert cat["services"]["compass"]["passing"] == 1
    assert cat["services"]["compass-lite"]["capabilities"] == ["affinity"]


def test_blocking_query_wakes_on_change(client, tmp_path):
    resp = client.get("/api/v1/services?name=echo")
    index = resp.get_json()["data"]["index"]
    assert int(resp.headers["X-Registry-Index"]) == index
    out = {}

    def watch() -> None:
        out["resp"] = client.get(f"/api/v1/services?name=echo&index={index}&wait=30s")

    watcher = threading.Thread(target=watch)
    watcher.start()
    register(client)
    watcher.join(timeout=10)
    assert not watcher.is_alive()
    data = out["resp"].get_json()["data"]
    assert data["index"] > index and len(data["instances"]) == 1


def test_blocking_query_times_out_with_same_index(make_app):
    app, _ = make_app(max_wait=0.2)
    client = app.test_client()
    index = client.get("/api/v1/services?name=echo").get_json()["data"]["index"]
    data = client.get(f"/api/v1/services?name=echo&index={index}&wait=60s").get_json()["data"]
    assert data["index"] == index


def test_full_watch_pool_answers_503_with_retry_after(make_app):
    app, _ = make_app(max_watchers=1, max_wait=30)
    client = app.test_client()
    index = client.get("/api/v1/services?name=echo").get_json()["data"]["index"]
    holder = threading.Thread(target=lambda: client.get(f"/api/v1/services?name=echo&index={index}&wait=30s"))
    holder.start()
    try:
        state = app.extensions["registry"]

        def slot_taken() -> bool:
            return state.metrics.watchers._value.get() == 1

        from tests.support import wait_until

        wait_until(slot_taken, timeout=5, what="the first watcher to hold the only slot")
        resp = client.get(f"/api/v1/services?name=echo&index={index}&wait=30s")
        assert_error(resp, 503, "OVERLOADED")
        assert int(resp.headers["Retry-After"]) >= 1
    finally:
        register(client)  # wakes the holder
        holder.join(timeout=10)


def test_prometheus_targets_lists_passing_instances_only(client):
    register(client, port=1, base_url="http://127.0.0.1:1/prefix", metadata={"device": "cpu"})
    iid = register(client, port=2).get_json()["data"]["instance_id"]
    client.put(f"/api/v1/services/{iid}/maintenance", json={"enabled": True})
    groups = client.get("/prometheus/targets").get_json()
    assert groups == [
        {
            "targets": ["127.0.0.1:1"],
            "labels": {
                "__scheme__": "http",
                "__metrics_path__": "/prefix/metrics",
                "service": "echo",
                "instance_id": groups[0]["labels"]["instance_id"],
                "version": "",
                "device": "cpu",
            },
        }
    ]


def test_metrics_and_openapi(client):
    register(client)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'registry_instances{service="echo",status="passing"} 1.0' in text
    assert "registry_http_requests_total" in text
    spec = client.get("/openapi.json").get_json()
    for path in ("/api/v1/services/register", "/api/v1/services/{instance_id}/heartbeat", "/compat/v0/api/v1/services"):
        assert path in spec["paths"]
    rules = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", r.rule) for r in client.application.url_map.iter_rules()}
    documented = set(spec["paths"])
    assert rules <= documented


def test_compat_api_shapes_and_same_store(client):
    body = {"service_name": "legacy", "host": "10.0.0.5", "port": 8000, "metadata": {"gpu": 1}, "version": "1.0"}
    first = client.post("/compat/v0/api/v1/services/register", json=body).get_json()
    again = client.post("/compat/v0/api/v1/services/register", json=body).get_json()
    assert first["service_id"] == again["service_id"]  # the old system minted a new id here
    assert first["registered_at"].endswith("+00:00")
    sid = first["service_id"]
    beat = client.post(f"/compat/v0/api/v1/services/{sid}/heartbeat").get_json()
    assert beat["message"] and beat["timestamp"].endswith("+00:00")
    listed = client.get("/compat/v0/api/v1/services?service_name=legacy&status_filter=healthy").get_json()
    assert listed["count"] == 1
    info = listed["services"][0]
    assert set(info) == {
        "service_name",
        "service_id",
        "host",
        "port",
        "base_url",
        "status",
        "metadata",
        "registered_at",
        "last_heartbeat",
        "version",
    }
    assert info["status"] == "healthy" and info["base_url"] == "http://10.0.0.5:8000"
    native = client.get(f"/api/v1/services/{sid}").get_json()["data"]
    assert native["service_name"] == "legacy"  # same store as the native API
    assert client.get("/compat/v0/api/v1/services?status_filter=unhealthy").get_json()["count"] == 0
    assert client.get(f"/compat/v0/api/v1/services/{sid}").get_json()["service_id"] == sid
    assert client.delete(f"/compat/v0/api/v1/services/{sid}").status_code == 200
    missing = client.get(f"/compat/v0/api/v1/services/{sid}")
    assert missing.status_code == 404 and missing.get_json() == {"detail": "Service not found"}
    bad = client.post("/compat/v0/api/v1/services/register", json={"service_name": "x", "host": "h", "port": 99999})
    assert bad.status_code == 400 and "detail" in bad.get_json()
    health = client.get("/compat/v0/health").get_json()
    assert health["status"] == "healthy"


def test_watchers_share_one_serialised_answer_per_index(make_app):
    app, _ = make_app()
    client = app.test_client()
    register(client)
    cache = app.extensions["registry"].watch_cache
    from services.registry.catalog import Query

    first, index, count = cache.answer(Query(name="echo"))
    again, index_again, _ = cache.answer(Query(name="echo"))
    assert again is first and index_again == index and count == 1
    register(client, port=9002)
    changed, new_index, new_count = cache.answer(Query(name="echo"))
    assert new_index > index and new_count == 2 and changed is not first


def test_heartbeat_fast_path_matches_the_flask_answer_and_hands_over_errors(make_app):
    app, _ = make_app(token=TOKEN)
    client = app.test_client()
    iid = register(client, headers=AUTH).get_json()["data"]["instance_id"]
    fast = client.put(
        f"/api/v1/services/{iid}/heartbeat",
        json={"status": "warning", "load": {"inflight": 2}},
        headers={**AUTH, "X-Request-ID": "beat-1"},
    )
    body = fast.get_json()
    assert fast.status_code == 200 and fast.headers["X-Request-ID"] == "beat-1"
    assert set(body) == {"success", "message", "data", "error", "timestamp", "request_id"}
    assert body["data"] == {"instance_id": iid, "status": "warning", "heartbeat_interval_s": 2.0}
    assert client.get(f"/api/v1/services/{iid}").get_json()["data"]["load"] == {"inflight": 2}
    # Every non-plain case reaches Flask and keeps its code; the body survives the hand-over.
    assert_error(client.put(f"/api/v1/services/{iid}/heartbeat", json={}), 401, "UNAUTHORIZED")
    bad = client.put(f"/api/v1/services/{iid}/heartbeat", json={"status": "dead"}, headers=AUTH)
    assert "status" in assert_error(bad, 400, "INVALID_REQUEST")["error"]["details"]
    assert_error(client.put(f"/api/v1/services/{iid}/heartbeat", data="{x", headers=AUTH), 400, "INVALID_REQUEST")
    # NaN or nesting past 16 levels is a 400 even in a key the heartbeat does not read, as in Flask's read_body().
    for raw in ('{"x": NaN}', '{"x": ' + "[" * 20 + "]" * 20 + "}"):
        resp = client.put(f"/api/v1/services/{iid}/heartbeat", data=raw, content_type="application/json", headers=AUTH)
        assert_error(resp, 400, "INVALID_REQUEST")
    assert_error(client.put("/api/v1/services/ghost/heartbeat", json={}, headers=AUTH), 404, "NOT_FOUND")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'registry_heartbeats_total{result="ok"} 1.0' in text
    assert 'registry_heartbeats_total{result="unknown"} 1.0' in text
