"""Node beats (issue 20) through the API, on both stores: one beat renews a node's instances.

Each test runs on SQLite and on a real etcd (``make_app``); the clock is a FakeClock, so the TTL
sweep is driven by hand. The process-level failure semantics (agent kill -9) are in
tests/integration/test_node_agents.py.
"""

from __future__ import annotations

import pytest

from tests.unit.test_registry_api import AUTH, TOKEN, assert_error, make_app  # noqa: F401 - make_app is a fixture

REGISTER = "/api/v1/services/register"
NODE = "host-a"
SECRET = "node-secret-of-host-a-0123456789"
AS_NODE = {"X-Node": NODE, "X-Node-Secret": SECRET}
BEAT = f"/api/v1/nodes/{NODE}/heartbeat"


def register(client, port: int, headers=None) -> str:
    body = {"service_name": "echo", "host": "10.0.0.7", "port": port}
    resp = client.post(REGISTER, json=body, headers=headers or {})
    assert resp.status_code in (200, 201), resp.get_json()
    return resp.get_json()["data"]["instance_id"]


def status_of(client, iid: str) -> str | None:
    resp = client.get(f"/api/v1/services/{iid}")
    return resp.get_json()["data"]["status"] if resp.status_code == 200 else None


def beat(client, *items, full=False, headers=AS_NODE):
    body = {"instances": [i if isinstance(i, dict) else {"instance_id": i} for i in items], "full": full}
    return client.put(BEAT, json=body, headers=headers)


@pytest.fixture
def node_app(make_app):  # noqa: F811
    app, clock = make_app(deregister_after=60.0)
    return app, app.test_client(), clock


def test_one_beat_renews_each_listed_instance_and_names_the_unknown(node_app):
    app, client, clock = node_app
    a, b = register(client, 9001, AS_NODE), register(client, 9002, AS_NODE)
    alone = register(client, 9003)  # a worker started alone: not the node's to renew
    clock.advance(5.0)  # TTL is 6 s
    resp = beat(client, {"instance_id": a, "status": "passing", "load": {"inflight": 3}}, b, alone, "ghost-1")
    assert resp.status_code == 200, resp.get_json()
    data = resp.get_json()["data"]
    assert data["renewed"] == 2 and sorted(data["unknown"]) == sorted([alone, "ghost-1"]) and data["removed"] == []
    assert client.get(f"/api/v1/services/{a}").get_json()["data"]["load"] == {"inflight": 3}
    clock.advance(5.0)
    app.extensions["registry"].catalog.sweep()
    assert (status_of(client, a), status_of(client, b), status_of(client, alone)) == ("passing", "passing", "critical")


def test_partial_beat_renews_the_others_and_full_beat_removes_the_omitted(node_app):
    app, client, clock = node_app
    a, b = register(client, 9001, AS_NODE), register(client, 9002, AS_NODE)
    index = client.get("/api/v1/services").get_json()["data"]["index"]
    clock.advance(5.0)
    assert beat(client, {"instance_id": a, "status": "warning"}).status_code == 200  # only the changed one
    after = client.get("/api/v1/services").get_json()["data"]["index"]
    assert after > index  # a status change wakes blocking queries, as a per-instance heartbeat does
    clock.advance(5.0)
    app.extensions["registry"].catalog.sweep()
    assert (status_of(client, a), status_of(client, b)) == ("warning", "passing")  # b was renewed too
    resp = beat(client, a, full=True)
    assert resp.get_json()["data"]["removed"] == [b]
    assert status_of(client, b) is None and status_of(client, a) == "warning"
    assert client.get(f"/api/v1/nodes/{NODE}").get_json()["data"]["instances"] == [a]


def test_a_silent_node_turns_its_instances_critical_on_the_lone_worker_schedule(node_app):
    app, client, clock = node_app
    a = register(client, 9001, AS_NODE)
    clock.advance(5.0)
    assert beat(client, a).status_code == 200
    clock.advance(5.9)
    app.extensions["registry"].catalog.sweep()
    assert status_of(client, a) == "passing"
    clock.advance(0.2)  # TTL since the last beat
    app.extensions["registry"].catalog.sweep()
    assert status_of(client, a) == "critical"
    clock.advance(5.0)
    resp = beat(client, a)  # the agent is back: its beat revives the instance
    assert resp.status_code == 200 and status_of(client, a) == "passing"


def test_the_node_secret_guards_the_node_and_only_its_instances(node_app):
    _, client, clock = node_app
    a = register(client, 9001, AS_NODE)
    other = {"X-Node": "host-b", "X-Node-Secret": "node-secret-of-host-b-0123456789"}
    b = register(client, 9002, other)
    assert_error(beat(client, a, headers={"X-Node": NODE, "X-Node-Secret": "x" * 32}), 409, "CONFLICT")
    assert_error(beat(client, a, headers={}), 401, "UNAUTHORIZED")
    assert_error(beat(client, a, headers={"X-Node": NODE, "X-Node-Secret": "short"}), 401, "UNAUTHORIZED")
    assert_error(beat(client, a, headers=other), 401, "UNAUTHORIZED")  # host-b's secret for host-a's path
    # host-a cannot renew (or remove) host-b's instance by naming it.
    clock.advance(5.0)
    data = beat(client, a, b, full=True).get_json()["data"]
    assert data["unknown"] == [b] and data["removed"] == []
    assert status_of(client, b) == "passing"
    # A node registration cannot steal a live instance of another registrant either.
    body = {"service_name": "echo", "host": "10.0.0.7", "port": 9002}
    assert_error(client.post(REGISTER, json=body, headers=AS_NODE), 409, "CONFLICT")


def test_a_worker_re_registering_through_its_node_moves_onto_it(node_app):
    _, client, _ = node_app
    body = {"service_name": "echo", "host": "10.0.0.7", "port": 9001}
    first = client.post(REGISTER, json=body)
    iid, secret = first.get_json()["data"]["instance_id"], first.get_json()["data"]["instance_secret"]
    assert beat(client, iid).get_json()["data"]["unknown"] == [iid]
    again = client.post(REGISTER, json=body, headers={**AS_NODE, "X-Instance-Secret": secret})
    assert again.status_code == 200
    assert beat(client, iid).get_json()["data"]["unknown"] == []
    # Deregistering one of a node's instances leaves the others (and, on etcd, the node's lease).
    other = register(client, 9002, AS_NODE)
    assert client.delete(f"/api/v1/services/{iid}", headers={"X-Instance-Secret": secret}).status_code == 200
    assert beat(client, other).get_json()["data"]["renewed"] == 1 and status_of(client, other) == "passing"


@pytest.mark.parametrize(
    "body",
    [
        {"instances": "a"},
        {"instances": [{"instance_id": "a b"}]},
        {"instances": [{"instance_id": "a"}, {"instance_id": "a"}]},
        {"instances": [{"instance_id": "a", "status": "maintenance"}]},
        {"instances": [], "full": "yes"},
    ],
)
def test_bad_beats_get_a_400(node_app, body):
    _, client, _ = node_app
    assert_error(client.put(BEAT, json=body, headers=AS_NODE), 400, "INVALID_REQUEST")


def test_a_claimed_node_survives_a_registry_restart(make_app):  # noqa: F811
    app, _ = make_app()
    client = app.test_client()
    a = register(client, 9001, AS_NODE)
    app.extensions["registry"].catalog.close()
    restarted, _ = make_app()
    client = restarted.test_client()
    assert beat(client, a).get_json()["data"]["renewed"] == 1
    assert_error(beat(client, a, headers={"X-Node": NODE, "X-Node-Secret": "y" * 32}), 409, "CONFLICT")


def test_two_replicas_claiming_one_node_at_once_agree(make_app, request):  # noqa: F811
    """Two workers of one node registering through two replicas at the same moment (etcd: both claim)."""
    import threading

    first, _ = make_app()
    second, _ = make_app()  # SQLite: a restarted registry on the same file; etcd: a second replica
    errors: list[int] = []
    barrier = threading.Barrier(8)

    def one(k: int) -> None:
        client = (first if k % 2 else second).test_client()
        body = {"service_name": "echo", "host": "10.0.0.7", "port": 9100 + k}
        barrier.wait()
        resp = client.post(REGISTER, json=body, headers={"X-Node": "host-z", "X-Node-Secret": "z" * 32})
        if resp.status_code not in (200, 201):
            errors.append(resp.status_code)

    if "sqlite" in request.node.callspec.id:
        pytest.skip("one SQLite registry per file: no concurrent replicas")
    threads = [threading.Thread(target=one, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []


# ----- the WSGI fast path (services/registry/fastpath.py) answers the plain beat without Flask ----

NODE_ROUTE = 'method="PUT",route="/api/v1/nodes/<node>/heartbeat"'  # prometheus_client sorts the labels


def metric(client, name: str) -> float:
    """One sample of /metrics (0 when absent), e.g. ``registry_heartbeats_total{result="node"}``."""
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
def fast_app(make_app):  # noqa: F811
    """A node app with a token, a count of the requests that reached Flask, and a Flask-only switch."""
    app, clock = make_app(deregister_after=60.0, token=TOKEN)
    fast = app.wsgi_app
    flask_app, reached = fast.app, []

    def counting(environ, start_response):
        reached.append(environ["PATH_INFO"])
        return flask_app(environ, start_response)

    fast.app = counting

    class Paths:
        def flask_only(self, call):
            app.wsgi_app = counting
            try:
                return call()
            finally:
                app.wsgi_app = fast

    return app, app.test_client(), clock, reached, Paths()


AS_AGENT = {**AUTH, **AS_NODE}
HOST_B = {"X-Node": "host-b", "X-Node-Secret": "node-secret-of-host-b-0123456789"}


def comparable(resp) -> tuple[int, str, dict]:
    body = resp.get_json()
    assert body["timestamp"].endswith("Z") and resp.headers["X-Request-ID"] == body["request_id"]
    return resp.status_code, resp.headers["Content-Type"], {k: v for k, v in body.items() if k != "timestamp"}


def test_the_fast_path_answers_a_plain_beat_exactly_as_flask_does(fast_app):
    app, client, clock, reached, paths = fast_app
    a, b = register(client, 9001, AS_AGENT), register(client, 9002, AS_AGENT)
    clock.advance(5.0)
    body = {"instances": [{"instance_id": a, "status": "warning", "load": {"inflight": 3}}, {"instance_id": "ghost"}]}
    headers = {**AS_AGENT, "X-Request-ID": "node-beat-1"}
    reached.clear()
    fast = client.put(BEAT, json=body, headers=headers)
    assert reached == [], "the plain beat reached Flask"
    slow = paths.flask_only(lambda: client.put(BEAT, json=body, headers=headers))
    assert reached == [BEAT]
    assert comparable(fast) == comparable(slow)
    assert fast.get_json()["data"] == {
        "node": NODE,
        "heartbeat_interval_s": 2.0,
        "ttl_s": app.extensions["registry"].settings.ttl_s,
        "deregister_after_s": 60.0,
        "renewed": 2,
        "unknown": ["ghost"],
        "removed": [],
    }
    assert fast.get_json()["message"] == "2 instance(s) renewed"
    assert client.get(f"/api/v1/services/{a}").get_json()["data"]["load"] == {"inflight": 3}
    assert status_of(client, a) == "warning"
    # Both paths count alike: two node beats, two unknown ids, two 200s on the node route.
    assert metric(client, 'registry_heartbeats_total{result="node"}') == 2
    assert metric(client, 'registry_heartbeats_total{result="unknown"}') == 2
    assert metric(client, f'registry_http_requests_total{{code="200",{NODE_ROUTE}}}') == 2
    assert metric(client, 'registry_http_request_duration_seconds_count{route="/api/v1/nodes/<node>/heartbeat"}') == 2
    # A full beat removes the omitted instance on the fast path too; an empty body is a plain beat.
    reached.clear()
    full = client.put(BEAT, json={"instances": [{"instance_id": a}], "full": True}, headers=AS_AGENT)
    assert client.put(BEAT, headers=AS_AGENT).get_json()["data"]["renewed"] == 1
    assert reached == []
    assert full.get_json()["data"]["removed"] == [b] and status_of(client, b) is None
    assert metric(client, 'registry_deregistrations_total{reason="node"}') == 1
    # An unclaimed node is claimed by its first beat, as Flask's caller() claims it.
    other = {**AUTH, "X-Node": "host-new", "X-Node-Secret": "node-secret-of-host-new-0123456"}
    reached.clear()
    fresh = client.put("/api/v1/nodes/host-new/heartbeat", json={}, headers=other)
    assert fresh.status_code == 200 and fresh.get_json()["data"]["renewed"] == 0 and reached == []
    assert_error(
        client.put("/api/v1/nodes/host-new/heartbeat", json={}, headers={**other, "X-Node-Secret": "w" * 32}),
        409,
        "CONFLICT",
    )


@pytest.mark.parametrize(
    ("headers", "body", "query", "status", "code"),
    [
        ({**AS_NODE}, {}, "", 401, "UNAUTHORIZED"),  # no token
        ({**AS_NODE, "Authorization": "Bearer wrong"}, {}, "", 401, "UNAUTHORIZED"),
        (AUTH, {}, "", 401, "UNAUTHORIZED"),  # no X-Node
        ({**AUTH, "X-Node": NODE, "X-Node-Secret": "short"}, {}, "", 401, "UNAUTHORIZED"),
        ({**AUTH, **HOST_B}, {}, "", 401, "UNAUTHORIZED"),  # another node's headers
        ({**AUTH, "X-Node": NODE, "X-Node-Secret": "x" * 32}, {}, "", 409, "CONFLICT"),  # another secret
        ({**AS_AGENT, "X-Instance-Secret": "not a secret"}, {}, "", 400, "INVALID_REQUEST"),
        (AS_AGENT, {}, "?take_over=maybe", 400, "INVALID_REQUEST"),
        (AS_AGENT, {"instances": [{"instance_id": "a b"}]}, "", 400, "INVALID_REQUEST"),
        (AS_AGENT, {"instances": [], "full": "yes"}, "", 400, "INVALID_REQUEST"),
        (AS_AGENT, '{"instances": [], "x": NaN}', "", 400, "INVALID_REQUEST"),  # NaN anywhere, as read_body()
        (AS_AGENT, '{"instances": [], "x": ' + "[" * 20 + "]" * 20 + "}", "", 400, "INVALID_REQUEST"),  # too deep
        (AS_AGENT, "{x", "", 400, "INVALID_REQUEST"),
        (AS_AGENT, "[]", "", 400, "INVALID_REQUEST"),
        (AS_AGENT, {"instances": [{"instance_id": f"i-{k}"} for k in range(1025)]}, "", 413, "PAYLOAD_TOO_LARGE"),
        (AS_AGENT, {"instances": [], "pad": "x" * 70_000}, "", 413, "PAYLOAD_TOO_LARGE"),
    ],
)
def test_every_bad_beat_reaches_flask_and_keeps_its_envelope(fast_app, headers, body, query, status, code):
    _, client, _, reached, _ = fast_app
    register(client, 9001, AS_AGENT)
    reached.clear()
    kwargs = {"data": body, "content_type": "application/json"} if isinstance(body, str) else {"json": body}
    assert_error(client.put(BEAT + query, headers=headers, **kwargs), status, code)
    assert reached == [BEAT], "the bad beat was not handed to Flask"


def test_a_beat_whose_node_went_meanwhile_is_the_same_404_on_both_paths(fast_app, monkeypatch):
    """The node's lease ran out during the beat (etcd): the fast path answers Flask's 404 itself."""
    app, client, _, reached, paths = fast_app
    register(client, 9001, AS_AGENT)
    monkeypatch.setattr(app.extensions["registry"].catalog, "node_heartbeat", lambda *args: None)
    headers = {**AS_AGENT, "X-Request-ID": "node-beat-404"}
    reached.clear()
    fast = client.put(BEAT, json={}, headers=headers)
    assert reached == []
    slow = paths.flask_only(lambda: client.put(BEAT, json={}, headers=headers))
    assert_error(fast, 404, "NOT_FOUND")
    assert comparable(fast) == comparable(slow)
    assert metric(client, f'registry_http_requests_total{{code="404",{NODE_ROUTE}}}') == 2
    assert metric(client, 'registry_heartbeats_total{result="node"}') == 0


def test_a_store_failure_in_the_beat_is_handed_to_flask(fast_app, monkeypatch):
    app, client, _, reached, _ = fast_app
    register(client, 9001, AS_AGENT)
    from services.registry.store import StoreUnavailable

    def down(*args):
        raise StoreUnavailable("etcd is unreachable")

    monkeypatch.setattr(app.extensions["registry"].catalog, "node_heartbeat", down)
    reached.clear()
    resp = client.put(BEAT, json={}, headers=AS_AGENT)
    assert resp.status_code == 503 and resp.get_json()["success"] is False
    assert reached == [BEAT]
