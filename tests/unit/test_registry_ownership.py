"""Instance ownership (issue 18, item 1) through the API, on both stores: who may change which row.

Before: anyone who could write (everyone without a token, every worker with the shared one)
re-registered a live worker's id at another address, and the real worker's heartbeats kept the
hijacked row alive; a stranger's drain stuck. These tests fail on that code.
"""

from __future__ import annotations

import pytest

from tests.unit.test_registry_api import assert_error, make_app  # noqa: F401 - make_app is a fixture

OPERATOR = {"Authorization": "Bearer operator-token"}
WORKER = {"Authorization": "Bearer worker-token"}
TOKENS = {"operator_token": "operator-token", "worker_token": "worker-token"}
REGISTER = "/api/v1/services/register"
BODY = {"service_name": "echo", "host": "10.0.0.7", "port": 9001}


def secret_of(resp) -> dict[str, str]:
    assert resp.status_code in (200, 201), resp.get_json()
    return {"X-Instance-Secret": resp.get_json()["data"]["instance_secret"]}


@pytest.fixture
def split(make_app):  # noqa: F811
    app, clock = make_app(**TOKENS)
    return app.test_client(), clock


def test_a_live_id_cannot_be_hijacked_by_another_worker(split):
    client, _ = split
    first = client.post(REGISTER, json=BODY, headers=WORKER)
    assert first.status_code == 201
    owner = secret_of(first)
    iid = first.get_json()["data"]["instance_id"]
    hijack = {**BODY, "instance_id": iid, "host": "10.6.6.6", "base_url": "http://10.6.6.6:9001"}
    assert_error(client.post(REGISTER, json=hijack, headers=WORKER), 409, "CONFLICT")
    assert_error(client.post(REGISTER, json=BODY, headers=WORKER), 409, "CONFLICT")  # same id, no secret
    wrong = {**WORKER, "X-Instance-Secret": "not-the-secret"}
    assert_error(client.post(REGISTER, json=BODY, headers=wrong), 409, "CONFLICT")
    # A worker token cannot take over either; only the operator can.
    assert_error(client.post(REGISTER + "?take_over=true", json=hijack, headers=WORKER), 409, "CONFLICT")
    inst = client.get(f"/api/v1/services/{iid}").get_json()["data"]
    assert inst["host"] == "10.0.0.7"
    # The registrant itself (a restarted worker with its secret) replaces its own row.
    again = client.post(REGISTER, json={**BODY, "version": "2"}, headers={**WORKER, **owner})
    assert again.status_code == 200 and secret_of(again) == owner
    assert client.get(f"/api/v1/services/{iid}").get_json()["data"]["version"] == "2"


def test_heartbeat_drain_and_removal_need_the_secret_or_the_operator(split):
    client, _ = split
    owner = secret_of(client.post(REGISTER, json=BODY, headers=WORKER))
    iid = client.get("/api/v1/services").get_json()["data"]["instances"][0]["instance_id"]
    stranger_body = {**BODY, "port": 9002}
    stranger = secret_of(client.post(REGISTER, json=stranger_body, headers=WORKER))
    for method, path, body in (
        ("put", f"/api/v1/services/{iid}/heartbeat", {"status": "passing"}),
        ("put", f"/api/v1/services/{iid}/maintenance", {"enabled": True, "reason": "mine now"}),
        ("delete", f"/api/v1/services/{iid}", None),
    ):
        call = getattr(client, method)
        assert_error(call(path, json=body, headers=WORKER), 401, "UNAUTHORIZED")  # no secret
        assert_error(call(path, json=body, headers={**WORKER, **stranger}), 401, "UNAUTHORIZED")  # another's
        assert_error(call(path, json=body, headers={**OPERATOR, **stranger}), 401, "UNAUTHORIZED")  # wrong secret
    assert client.get(f"/api/v1/services/{iid}").get_json()["data"]["status"] == "passing"
    assert client.put(f"/api/v1/services/{iid}/heartbeat", json={}, headers={**WORKER, **owner}).status_code == 200
    drained = client.put(f"/api/v1/services/{iid}/maintenance", json={"enabled": True}, headers=OPERATOR)
    assert drained.status_code == 200 and drained.get_json()["data"]["status"] == "maintenance"
    back = client.put(f"/api/v1/services/{iid}/maintenance", json={"enabled": False}, headers={**WORKER, **owner})
    assert back.get_json()["data"]["status"] == "passing"
    assert client.delete(f"/api/v1/services/{iid}", headers={**WORKER, **owner}).status_code == 200


def test_operator_takeover_cuts_off_the_old_registrants_heartbeats(split):
    client, _ = split
    first = client.post(REGISTER, json=BODY, headers=WORKER)
    old = secret_of(first)
    iid = first.get_json()["data"]["instance_id"]
    moved = {**BODY, "instance_id": iid, "host": "10.0.0.8", "base_url": "http://10.0.0.8:9001"}
    assert_error(client.post(REGISTER, json=moved, headers=OPERATOR), 409, "CONFLICT")  # said explicitly only
    taken = client.post(REGISTER + "?take_over=true", json=moved, headers=OPERATOR)
    assert taken.status_code == 200
    new = secret_of(taken)
    assert new != old
    # The old worker's beats no longer keep the row alive: it is told so (401), the new owner's pass.
    assert_error(client.put(f"/api/v1/services/{iid}/heartbeat", headers={**WORKER, **old}), 401, "UNAUTHORIZED")
    assert client.put(f"/api/v1/services/{iid}/heartbeat", headers={**WORKER, **new}).status_code == 200
    assert_error(client.post(REGISTER + "?take_over=maybe", json=moved, headers=OPERATOR), 400, "INVALID_REQUEST")


def test_a_silent_row_is_free_after_its_ttl(split):
    client, clock = split
    client.post(REGISTER, json=BODY, headers=WORKER)
    clock.advance(5.0)  # TTL is 6 s
    assert_error(client.post(REGISTER, json=BODY, headers=WORKER), 409, "CONFLICT")
    clock.advance(1.5)  # silent past the TTL: its process is presumed dead, like a lease run out
    again = client.post(REGISTER, json=BODY, headers=WORKER)
    assert again.status_code == 200 and secret_of(again)


def test_another_id_at_a_live_address_is_refused(split):
    client, _ = split
    owner = secret_of(client.post(REGISTER, json=BODY, headers=WORKER))
    squat = {**BODY, "instance_id": "squatter"}
    assert_error(client.post(REGISTER, json=squat, headers=WORKER), 409, "CONFLICT")
    # With the address's secret (the same worker under a new id) it replaces the old row.
    moved = client.post(REGISTER, json=squat, headers={**WORKER, **owner})
    assert moved.status_code == 201
    assert [i["instance_id"] for i in client.get("/api/v1/services").get_json()["data"]["instances"]] == ["squatter"]


def test_tokens_are_roles(split):
    client, _ = split
    assert_error(client.post(REGISTER, json=BODY), 401, "UNAUTHORIZED")
    assert_error(client.post(REGISTER, json=BODY, headers={"Authorization": "Bearer nope"}), 401, "UNAUTHORIZED")
    assert client.post(REGISTER, json=BODY, headers=OPERATOR).status_code == 201  # an operator may register too


def test_compat_rows_share_one_owner_and_never_touch_native_rows(split):
    client, _ = split
    base = "/compat/v0/api/v1/services"
    sid = client.post(f"{base}/register", json={**BODY, "port": 9100}, headers=WORKER).get_json()["service_id"]
    assert client.post(f"{base}/{sid}/heartbeat", json={}, headers=WORKER).status_code == 200
    again = client.post(f"{base}/register", json={**BODY, "port": 9100}, headers=WORKER)
    assert again.status_code == 200 and again.get_json()["service_id"] == sid  # stable id, replaced
    native = client.post(REGISTER, json=BODY, headers=WORKER).get_json()["data"]["instance_id"]
    assert client.post(f"{base}/register", json=BODY, headers=WORKER).status_code == 409
    assert client.post(f"{base}/{native}/heartbeat", json={}, headers=WORKER).status_code == 401
    assert client.delete(f"{base}/{native}", headers=WORKER).status_code == 401
    assert client.delete(f"{base}/{native}", headers=OPERATOR).status_code == 200
    assert client.delete(f"{base}/{sid}", headers=WORKER).status_code == 200


def test_without_tokens_everyone_is_an_operator_but_a_collision_is_still_refused(make_app):  # noqa: F811
    app, _ = make_app()
    client = app.test_client()
    first = client.post(REGISTER, json=BODY)
    iid = first.get_json()["data"]["instance_id"]
    assert_error(client.post(REGISTER, json={**BODY, "base_url": "http://10.6.6.6:1"}), 409, "CONFLICT")
    assert client.put(f"/api/v1/services/{iid}/maintenance", json={"enabled": True}).status_code == 200
    assert client.post(REGISTER + "?take_over=1", json=BODY).status_code == 200


def test_one_shared_token_keeps_working_for_workers_and_the_drain_button(make_app):  # noqa: F811
    app, _ = make_app(token="shared")
    client = app.test_client()
    auth = {"Authorization": "Bearer shared"}
    iid = client.post(REGISTER, json=BODY, headers=auth).get_json()["data"]["instance_id"]
    assert client.put(f"/api/v1/services/{iid}/heartbeat", headers=auth).status_code == 200
    assert client.put(f"/api/v1/services/{iid}/maintenance", json={"enabled": True}, headers=auth).status_code == 200


def test_ownership_survives_a_restart(make_app):  # noqa: F811
    app, _ = make_app(**TOKENS)
    owner = secret_of(app.test_client().post(REGISTER, json=BODY, headers=WORKER))
    restarted = make_app(**TOKENS)[0].test_client()  # same SQLite file / etcd prefix
    assert len(restarted.get("/api/v1/services").get_json()["data"]["instances"]) == 1
    assert_error(restarted.post(REGISTER, json=BODY, headers=WORKER), 409, "CONFLICT")
    assert restarted.post(REGISTER, json=BODY, headers={**WORKER, **owner}).status_code == 200


@pytest.mark.parametrize("secret", ["", "has space", "x" * 257, "semi;colon"])
def test_a_malformed_secret_is_a_400(split, secret: str):
    client, _ = split
    assert_error(
        client.post(REGISTER, json=BODY, headers={**WORKER, "X-Instance-Secret": secret}), 400, "INVALID_REQUEST"
    )
