"""RegistryClient with `responses`: failover, cache, blocking-query watcher, stale data, no leaked threads."""

from __future__ import annotations

import json
import random
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from services.client import ClientError, RegistryClient, RegistryUnavailable
from services.client.registry_api import normalize_urls
from services.common.clock import FakeClock
from services.common.instance import Instance
from tests.support import wait_until

URL_A, URL_B = "http://reg-a.test", "http://reg-b.test"


def inst(service: str, n: int, caps: tuple[str, ...] = ()) -> dict:
    return Instance(
        f"{service}-{n}", service, "h", 80 + n, f"http://h:{80 + n}", metadata={"capabilities": list(caps)}
    ).to_dict()


def listing(instances: list[dict], index: int) -> dict:
    return {"success": True, "data": {"instances": instances, "index": index}}


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def no_leaked_watchers():
    # Only this test's watchers: clients cached by other tests in the session (FlashDock's) may live on.
    before = {t for t in threading.enumerate() if t.name.startswith("registry-watch")}
    yield
    wait_until(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("registry-watch") and t not in before],
        timeout=5,
        what="watcher threads to end",
    )


def test_urls_are_normalised() -> None:
    assert normalize_urls(["http://a:1/, b:2", "http://a:1"]) == ["http://a:1", "http://b:2"]
    with pytest.raises(ValueError):
        normalize_urls("")


def test_fails_over_to_the_next_registry_and_prefers_it_afterwards(mock) -> None:
    mock.add("GET", f"{URL_A}/api/v1/services", body=requests.ConnectionError("down"))
    mock.add("GET", f"{URL_B}/api/v1/services", json=listing([inst("echo", 0)], 3))
    client = RegistryClient([URL_A, URL_B], watch=False, max_age_s=0)
    snap = client.instances(name="echo")
    assert (snap.source, snap.index, len(snap.instances), snap.stale) == (URL_B, 3, 1, False)
    client.refresh(name="echo")
    assert [c.request.url.split("/api")[0] for c in mock.calls] == [URL_A, URL_B, URL_B]


def test_nothing_cached_and_every_registry_down_raises(mock) -> None:
    for url in (URL_A, URL_B):
        mock.add("GET", f"{url}/api/v1/services", body=requests.ConnectionError("down"))
    with pytest.raises(RegistryUnavailable) as err:
        RegistryClient([URL_A, URL_B], watch=False).instances(name="echo")
    assert URL_A in str(err.value) and URL_B in str(err.value)


def test_a_refused_query_is_a_client_error_not_an_outage(mock) -> None:
    body = {"success": False, "error": {"code": "INVALID_REQUEST", "details": "bad capability"}}
    mock.add("GET", f"{URL_A}/api/v1/services", json=body, status=400)
    with pytest.raises(ClientError, match="bad capability") as err:
        RegistryClient([URL_A, URL_B], watch=False).instances(capability="x")
    assert not isinstance(err.value, RegistryUnavailable) and len(mock.calls) == 1


def test_cache_serves_until_max_age_then_turns_stale_when_the_registry_is_gone(mock, caplog) -> None:
    clock = FakeClock()
    mock.add("GET", f"{URL_A}/api/v1/services", json=listing([inst("echo", 0)], 3))
    client = RegistryClient(URL_A, watch=False, max_age_s=1.0, clock=clock)
    client.instances(name="echo")
    client.instances(name="echo")
    assert len(mock.calls) == 1, "a fresh entry is served from the cache"
    mock.replace("GET", f"{URL_A}/api/v1/services", body=requests.ConnectionError("down"))
    clock.advance(2)
    snap = client.instances(name="echo")
    assert snap.stale and "no registry answered" in snap.error and snap.age_s == pytest.approx(2.0)
    assert [i.instance_id for i in snap.instances] == ["echo-0"]
    assert "marked stale" in caplog.text
    calls = len(mock.calls)
    assert client.instances(name="echo").stale and len(mock.calls) == calls, "a dead registry is not asked per call"
    clock.advance(1.5)
    assert client.instances(name="echo").age_s == pytest.approx(3.5) and len(mock.calls) == calls + 1


def test_lookup_by_name_then_by_capability(mock) -> None:
    def answer(request):
        query = parse_qs(urlsplit(request.url).query)
        items = [inst("compass", 0, ("affinity",))]
        if "name" in query:
            items = [i for i in items if i["service_name"] == query["name"][0]]
        if "capability" in query:
            items = [i for i in items if query["capability"][0] in i["metadata"]["capabilities"]]
        return 200, {}, json.dumps(listing(items, 4))

    mock.add_callback("GET", f"{URL_A}/api/v1/services", callback=answer)
    client = RegistryClient(URL_A, watch=False)
    assert [i.service_name for i in client.lookup("compass").instances] == ["compass"]
    assert [i.service_name for i in client.lookup("affinity").instances] == ["compass"]
    assert client.lookup("nothing").instances == ()


def test_watcher_holds_a_blocking_query_and_updates_the_cache(mock, no_leaked_watchers) -> None:
    release = threading.Event()
    seen_waits: list[dict] = []

    def answer(request):
        query = parse_qs(urlsplit(request.url).query)
        if "index" not in query:
            return 200, {}, json.dumps(listing([inst("echo", 0)], 5))
        seen_waits.append(query)
        if query["index"] == ["5"] and release.wait(5):
            return 200, {}, json.dumps(listing([inst("echo", 0), inst("echo", 1)], 6))
        release.wait(0.2)  # the registry's wait running out with no change
        return 200, {}, json.dumps(listing([inst("echo", 0), inst("echo", 1)], 6))

    mock.add_callback("GET", f"{URL_A}/api/v1/services", callback=answer)
    client = RegistryClient(URL_A, wait_s=1.0, rng=random.Random(0))
    try:
        assert len(client.instances(name="echo").instances) == 1
        wait_until(lambda: seen_waits, timeout=5, what="the blocking query")
        assert seen_waits[0]["wait"] == ["1s"] and seen_waits[0]["name"] == ["echo"]
        release.set()
        wait_until(lambda: len(client.instances(name="echo").instances) == 2, timeout=5, what="the watch update")
        assert client.instances(name="echo").index == 6
    finally:
        client.close()


def test_watcher_marks_stale_while_every_registry_is_down_and_recovers(mock, no_leaked_watchers, caplog) -> None:
    state = {"down": False, "index": 5}

    def answer(request):
        if state["down"]:
            raise requests.ConnectionError("refused")
        query = parse_qs(urlsplit(request.url).query)
        if query.get("index") == [str(state["index"])]:
            threading.Event().wait(0.05)
        return 200, {}, json.dumps(listing([inst("echo", 0)], state["index"]))

    for url in (URL_A, URL_B):
        mock.add_callback("GET", f"{url}/api/v1/services", callback=answer)
    client = RegistryClient([URL_A, URL_B], wait_s=0.1, backoff_base_s=0.01, backoff_cap_s=0.05)
    try:
        client.instances(name="echo")
        state["down"] = True
        snap = wait_until(lambda: client.instances(name="echo").stale and client.instances(name="echo"), timeout=5)
        assert [i.instance_id for i in snap.instances] == ["echo-0"] and URL_B in snap.error
        assert client.stale
        state.update(down=False, index=9)
        wait_until(lambda: client.instances(name="echo").index == 9, timeout=5, what="recovery")
        assert not client.instances(name="echo").stale and not client.stale
        assert "reachable again" in caplog.text
    finally:
        client.close()


def test_check_probes_at_most_once_per_max_age_and_any_answer_counts(mock) -> None:
    """A UI asks on every render: one /health per interval, good answers and failures alike remembered."""
    clock = FakeClock()
    mock.add("GET", f"{URL_A}/health", body=requests.ConnectionError("down"))

    def probes() -> int:
        return sum(c.request.url.endswith("/health") for c in mock.calls)

    client = RegistryClient(URL_A, watch=False, clock=clock)
    assert client.cached() is None
    assert "no registry answered" in client.check(3.0)
    assert "no registry answered" in client.check(3.0) and probes() == 1
    mock.add("GET", f"{URL_A}/api/v1/services", json=listing([inst("echo", 0)], 1))
    client.instances()  # a good query is an answer too
    assert client.check(3.0) == "" and probes() == 1
    assert [i.instance_id for i in client.cached().instances] == ["echo-0"]
    clock.advance(3.0)
    mock.replace("GET", f"{URL_A}/health", json={"success": True})
    assert client.check(3.0) == "" and probes() == 2
    client.close()


def test_set_maintenance_says_why_the_registry_refused(mock) -> None:
    path = f"{URL_A}/api/v1/services/echo-0/maintenance"
    mock.add("PUT", path, status=401, json={"success": False, "error": {"code": "UNAUTHORIZED", "details": "no"}})
    client = RegistryClient(URL_A, watch=False)
    with pytest.raises(ClientError, match="refused the token"):
        client.set_maintenance("echo-0", True, "drain")
    client.close()
