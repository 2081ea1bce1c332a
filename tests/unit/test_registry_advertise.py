"""The registry refuses a loopback address from a worker on another machine, with a clear 400."""

from __future__ import annotations

import pytest

from services.common.clock import FakeClock
from services.common.settings import RegistrySettings
from services.registry.app import create_app
from services.registry.store import SQLiteStore
from tests.support import own_ipv4

AFAR = "198.51.100.7"  # TEST-NET-2: never an address of the machine running the tests


@pytest.fixture
def app(tmp_path):
    settings = RegistrySettings(db=str(tmp_path / "r.db"), heartbeat_interval=2.0, critical_after=3)
    return create_app(settings, SQLiteStore(settings.db), FakeClock(), start_background=False)


def client_from(app, remote: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = remote  # every request seems to come from ``remote``
    return client


def register(client, **body):
    payload = {"service_name": "echo", "host": "127.0.0.1", "port": 9001, **body}
    return client.post("/api/v1/services/register", json=payload)


def listed(app) -> list[dict]:
    return app.test_client().get("/api/v1/services").get_json()["data"]["instances"]


# Every spelling of loopback (and the wildcard, which reaches the caller's own machine): before
# issue 18, 127.1, 2130706433, 0x7f000001 and 0177.0.0.1 passed as "host names" and dodged the rule.
@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.0.1.1", "::1", "localhost", "127.1", "2130706433", "0x7f000001", "0177.0.0.1",
     "::ffff:127.0.0.1", "0.0.0.0", "0"],
)  # fmt: skip
def test_loopback_from_another_machine_is_refused_with_the_fix_in_the_message(app, host: str) -> None:
    resp = register(client_from(app, AFAR), host=host)
    body = resp.get_json()
    assert resp.status_code == 400, body
    assert body["success"] is False and body["error"]["code"] == "INVALID_REQUEST"
    details = body["error"]["details"]
    assert "loopback" in details and "--advertise-host" in details and AFAR in details
    assert listed(app) == []


@pytest.mark.parametrize("url_host", ["127.0.0.1", "0x7f000001", "2130706433", "[::ffff:127.0.0.1]"])
def test_a_loopback_base_url_is_refused_too(app, url_host: str) -> None:
    resp = register(client_from(app, AFAR), host="10.0.0.5", base_url=f"http://{url_host}:9001")
    assert resp.status_code == 400
    assert "base_url" in resp.get_json()["error"]["details"]


def test_a_routable_address_from_another_machine_is_accepted(app) -> None:
    resp = register(client_from(app, AFAR), host="10.0.0.5")
    assert resp.status_code == 201, resp.get_json()
    assert [i["base_url"] for i in listed(app)] == ["http://10.0.0.5:9001"]


@pytest.mark.parametrize("remote", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_loopback_is_fine_when_the_worker_is_on_this_machine(app, remote: str) -> None:
    assert register(client_from(app, remote)).status_code == 201


def test_a_request_from_one_of_this_machines_own_addresses_counts_as_local(app) -> None:
    own = own_ipv4()
    if own is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    assert register(client_from(app, own)).status_code == 201


def test_compat_register_applies_the_same_rule_in_the_old_shape(app) -> None:
    far = client_from(app, AFAR)
    body = {"service_name": "old", "host": "localhost", "port": 7000}
    resp = far.post("/compat/v0/api/v1/services/register", json=body)
    assert resp.status_code == 400
    assert "--advertise-host" in resp.get_json()["detail"]
    ok = far.post("/compat/v0/api/v1/services/register", json={**body, "host": "10.0.0.6"})
    assert ok.status_code == 200 and ok.get_json()["service_id"]
    assert [i["host"] for i in listed(app)] == ["10.0.0.6"]
