"""What the registry stores is bounded (issue 18, items 2, 3, 8, 10), on both stores.

Before: metadata nested thousands deep was stored and then broke the listing for every client
(surviving restarts); deep bodies were 500s; NaN was stored and listed as invalid JSON; a check
could carry a query string and run every 50 ms; made-up HTTP methods became metric labels
forever; and one socket spelled 127.1, 2130706433, 0x7f000001 or ::ffff:127.0.0.1 made four rows.
"""

from __future__ import annotations

import json

import pytest

from tests.unit.test_registry_api import assert_error, make_app  # noqa: F401 - make_app is a fixture

REGISTER = "/api/v1/services/register"
BODY = {"service_name": "echo", "host": "10.0.0.7", "port": 9001}


@pytest.fixture
def client(make_app):  # noqa: F811
    app, _ = make_app()
    return app.test_client()


def nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


def raw_post(client, path: str, text: str):
    return client.post(path, data=text, content_type="application/json")


@pytest.mark.parametrize("depth", [15, 40, 5000])
def test_deep_metadata_is_refused_and_the_listing_survives(client, depth: int):
    text = json.dumps({**BODY, "metadata": {"capabilities": ["echo"]}})[:-2] + ', "deep": ' + "[" * depth
    text += "]" * depth + "}}"
    assert_error(raw_post(client, REGISTER, text), 400, "INVALID_REQUEST")
    assert client.get("/api/v1/services").status_code == 200
    assert client.get("/api/v1/services").get_json()["data"]["instances"] == []


def test_metadata_within_the_depth_bound_is_stored(client):
    resp = client.post(REGISTER, json={**BODY, "metadata": {"deep": nested(13)}})
    assert resp.status_code == 201, resp.get_json()
    listed = client.get("/api/v1/services").get_json()["data"]["instances"][0]
    assert listed["metadata"]["deep"] == nested(13)


@pytest.mark.parametrize(
    "path",
    [
        REGISTER,
        "/api/v1/services/echo-1/heartbeat",
        "/api/v1/services/echo-1/maintenance",
        "/compat/v0/api/v1/services/register",
    ],
)
def test_recursion_in_any_body_is_a_400_never_a_500(client, path: str):
    text = "[" * 30_000 + "]" * 30_000  # far past the recursion limit, inside the 64 KiB body limit
    body = '{"a": ' + text + "}"
    call = client.put if path.endswith(("heartbeat", "maintenance")) else client.post
    resp = call(path, data=body, content_type="application/json")
    assert resp.status_code == 400, resp.get_data(as_text=True)[:300]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(client, number: str):
    text = json.dumps({**BODY, "metadata": {"x": 0}}).replace("0}", number + "}")
    assert_error(raw_post(client, REGISTER, text), 400, "INVALID_REQUEST")
    iid = client.post(REGISTER, json=BODY).get_json()["data"]["instance_id"]
    beat = client.put(
        f"/api/v1/services/{iid}/heartbeat", data='{"load": {"cpu": ' + number + "}}", content_type="application/json"
    )
    assert_error(beat, 400, "INVALID_REQUEST")
    inst = client.get(f"/api/v1/services/{iid}").get_json()["data"]
    assert inst["load"] == {}


@pytest.mark.parametrize(
    "check",
    [
        {"path": "/health/ready?next=http://169.254.169.254/"},
        {"path": "/health#frag"},
        {"path": "/@other-host/x"},
        {"path": "/a b"},
        {"interval_s": 0.05},
        {"interval_s": 0.5},
        {"timeout_s": 120},
    ],
)
def test_active_checks_are_a_plain_path_at_most_once_a_second(client, check: dict):
    assert_error(client.post(REGISTER, json={**BODY, "check": check}), 400, "INVALID_REQUEST")


def test_the_check_probes_the_instances_own_host_and_port(make_app):  # noqa: F811
    app, _ = make_app()
    client = app.test_client()
    body = {**BODY, "base_url": "http://10.0.0.7:9001/prefix", "check": {"path": "/health/ready", "interval_s": 1}}
    client.post(REGISTER, json=body)
    elsewhere = {**BODY, "port": 9002, "base_url": "http://169.254.169.254:80", "check": {"interval_s": 1}}
    client.post(REGISTER, json=elsewhere)
    urls = sorted(url for _, url, _ in app.extensions["registry"].catalog.due_checks())
    assert urls == ["http://10.0.0.7:9001/prefix/health/ready", "http://10.0.0.7:9002/health/ready"]


@pytest.mark.parametrize("spelling", ["127.1", "2130706433", "0x7f000001", "::ffff:127.0.0.1", "0177.0.0.1"])
def test_one_socket_is_one_row_however_it_is_spelled(client, spelling: str):
    first = client.post(REGISTER, json={**BODY, "host": "127.0.0.1"})
    secret = {"X-Instance-Secret": first.get_json()["data"]["instance_secret"]}
    # Without the secret the other spelling is the same live id, so it is a conflict, not a new row.
    assert_error(client.post(REGISTER, json={**BODY, "host": spelling}), 409, "CONFLICT")
    again = client.post(REGISTER, json={**BODY, "host": spelling}, headers=secret)
    assert again.status_code == 200
    rows = client.get("/api/v1/services").get_json()["data"]["instances"]
    assert [(r["host"], r["base_url"]) for r in rows] == [("127.0.0.1", "http://127.0.0.1:9001")]


def test_a_number_that_is_no_address_is_refused(client):
    assert_error(client.post(REGISTER, json={**BODY, "host": "1.2.3.999"}), 400, "INVALID_REQUEST")
    assert_error(client.post(REGISTER, json={**BODY, "host": "4294967296"}), 400, "INVALID_REQUEST")


def test_unknown_methods_and_paths_get_fixed_metric_labels(client):
    for i in range(5):
        client.open(f"/nowhere/{i}", method=f"BREW{i}")
        client.open("/api/v1/services", method=f"X{i}")
    text = client.get("/metrics").get_data(as_text=True)
    assert "BREW" not in text and 'method="X' not in text and "/nowhere" not in text
    assert 'code="404",method="other",route="unmatched"} 5.0' in text
    assert 'code="405",method="other",route="unmatched"} 5.0' in text
