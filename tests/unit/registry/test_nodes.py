"""Node beats (issue 20) through the API, on both stores: one beat renews a node's instances.

Each test runs on SQLite and on a real etcd (``make_app``); the clock is a FakeClock, so the TTL
sweep is driven by hand. The process-level failure semantics (agent kill -9) are in
tests/integration/test_node_agents.py.
"""

from __future__ import annotations

import pytest

from tests.unit.test_registry_api import assert_error, make_app  # noqa: F401 - make_app is a fixture

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
