"""Router rules with `responses`: retries, idempotence, budget, ejection, panic, fallback, deadline, stale cache.

A deterministic balancer (always the first candidate by id) makes "which instance fails first"
part of the test instead of a seed; balancers themselves are tested in test_client_balancers.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from http.client import RemoteDisconnected

import pytest
import requests
import responses
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from services.client import (
    AllAttemptsFailed,
    DeadlineExceeded,
    EjectionPolicy,
    NoInstanceAvailable,
    RegistryClient,
    RequestFailed,
    RetryPolicy,
    Router,
    StaticDiscovery,
)
from services.client.transport import classify_exception
from services.common.clock import FakeClock
from services.common.instance import Instance
from tests.support import free_port


class First:
    """Always the first candidate by id: tests decide which instance is tried first."""

    name = "first"

    def choose(self, instances, loads):
        return sorted(instances, key=lambda i: i.instance_id)[0]


def inst(service: str, n: int, status: str = "passing") -> Instance:
    return Instance(
        f"{service}-{n}",
        service,
        f"{service}-{n}.test",
        80,
        f"http://{service}-{n}.test",
        status=status,
        maintenance=status == "maintenance",
        metadata={"models": [f"{service}-model"], "capabilities": ["affinity"]},
    )


def ok_body(**data) -> dict:
    return {"success": True, "message": "ok", "data": data, "error": None, "request_id": "x"}


def err_body(code: str) -> dict:
    return {"success": False, "message": code, "data": None, "error": {"code": code, "details": code.lower()}}


def refused() -> Exception:
    return requests.ConnectionError(
        MaxRetryError(None, "/", NewConnectionError(None, "[Errno 111] Connection refused"))
    )


def connection_lost() -> Exception:
    return requests.ConnectionError(ProtocolError("Connection aborted.", RemoteDisconnected("closed without response")))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def make_router(instances, clock: FakeClock, **kwargs) -> Router:
    kwargs.setdefault("balancer", First())
    kwargs.setdefault("ejection", EjectionPolicy(consecutive_failures=100, eject_on_refused=False))
    return Router(StaticDiscovery(instances), clock=clock, rng=random.Random(0), sleep=clock.advance, **kwargs)


def add(mock, method: str, url: str, status: int = 200, body=None, exc: Exception | None = None) -> None:
    if exc is not None:
        mock.add(method, url, body=exc)
    else:
        mock.add(method, url, json=body if body is not None else ok_body(answer=url), status=status)


def hits(mock, prefix: str) -> int:
    return sum(1 for c in mock.calls if c.request.url.startswith(prefix))


def test_result_says_who_served_and_the_request_carries_client_and_request_ids(mock, clock) -> None:
    add(mock, "POST", "http://echo-0.test/predict", body=ok_body(model="echo-v2", y=1))
    router = make_router([inst("echo", 0)], clock, client_id="tester")
    result = router.call("echo", "POST", "/predict", json={"x": 1}, request_id="rid-1")
    assert (result.service, result.instance, result.model, result.attempts) == ("echo", "echo-0", "echo-v2", 1)
    assert not result.fallback_used and not result.stale and result.data == {"model": "echo-v2", "y": 1}
    sent = mock.calls[0].request
    assert sent.headers["X-Client-ID"] == "tester" and sent.headers["X-Request-ID"] == "rid-1"
    assert router.loads.inflight("echo-0") == 0


def test_a_capability_resolves_and_the_model_defaults_to_the_instance_metadata(mock, clock) -> None:
    add(mock, "GET", "http://compass-0.test/model/info", body=ok_body())
    result = make_router([inst("compass", 0)], clock).call("affinity", "GET", "/model/info")
    assert (result.service, result.model) == ("compass", "compass-model")


def test_refused_connection_retries_a_post_elsewhere_and_ejects_the_dead_instance(mock, clock) -> None:
    add(mock, "POST", "http://echo-0.test/api/v1/jobs", exc=refused())
    add(mock, "POST", "http://echo-1.test/api/v1/jobs")
    router = make_router([inst("echo", 0), inst("echo", 1)], clock, ejection=EjectionPolicy())
    first = router.call("echo", "POST", "/api/v1/jobs", json={})
    assert (first.instance, first.attempts) == ("echo-1", 2)
    assert [a.outcome for a in first.tried] == ["refused", "ok"]
    second = router.call("echo", "POST", "/api/v1/jobs", json={})
    assert second.attempts == 1, "the refusing instance was ejected"
    assert hits(mock, "http://echo-0.test") == 1


@pytest.mark.parametrize(
    ("status", "code"),
    [(503, "OVERLOADED"), (503, "MODEL_NOT_LOADED"), (429, "RATE_LIMITED"), (502, None), (504, None)],
)
def test_answers_that_prove_the_request_did_not_run_retry_even_a_post(mock, clock, status, code) -> None:
    add(mock, "POST", "http://echo-0.test/api/v1/jobs", status=status, body=err_body(code or "BAD_GATEWAY"))
    add(mock, "POST", "http://echo-1.test/api/v1/jobs")
    result = make_router([inst("echo", 0), inst("echo", 1)], clock).call("echo", "POST", "/api/v1/jobs", json={})
    assert (result.instance, result.attempts) == ("echo-1", 2)


@pytest.mark.parametrize(
    ("failure", "outcome"),
    [
        ({"status": 500, "body": err_body("INTERNAL_ERROR")}, "http-500"),
        ({"exc": connection_lost()}, "connection-lost"),
        ({"exc": requests.ReadTimeout("read timed out")}, "read-timeout"),
    ],
)
def test_a_post_that_may_have_run_is_never_retried(mock, clock, failure, outcome) -> None:
    add(mock, "POST", "http://echo-0.test/api/v1/jobs", **failure)
    add(mock, "POST", "http://echo-1.test/api/v1/jobs")
    add(mock, "POST", "http://echo-lite-0.test/api/v1/jobs")
    router = make_router([inst("echo", 0), inst("echo", 1), inst("echo-lite", 0)], clock)
    with pytest.raises(AllAttemptsFailed) as err:
        router.call("echo", "POST", "/api/v1/jobs", json={}, fallbacks=["echo-lite"])
    assert err.value.reason == "not idempotent"
    assert [a.outcome for a in err.value.attempts] == [outcome]
    assert len(mock.calls) == 1, "neither another instance nor the fallback may run it again"
    assert "echo-0" in str(err.value)


@pytest.mark.parametrize(("method", "path"), [("GET", "/x"), ("PUT", "/x"), ("DELETE", "/x"), ("POST", "/predict")])
def test_idempotent_calls_are_retried_after_reaching_a_worker(mock, clock, method, path) -> None:
    add(mock, method, f"http://echo-0.test{path}", status=500, body=err_body("PREDICTION_FAILED"))
    add(mock, method, f"http://echo-1.test{path}")
    result = make_router([inst("echo", 0), inst("echo", 1)], clock).call("echo", method, path)
    assert (result.instance, result.attempts) == ("echo-1", 2)


def test_idempotence_can_be_declared_either_way(mock, clock) -> None:
    add(mock, "POST", "http://echo-0.test/predict", exc=connection_lost())
    add(mock, "POST", "http://echo-0.test/api/v1/jobs", exc=connection_lost())
    add(mock, "POST", "http://echo-1.test/api/v1/jobs")
    router = make_router([inst("echo", 0), inst("echo", 1)], clock)
    with pytest.raises(AllAttemptsFailed):
        router.call("echo", "POST", "/predict", json={}, idempotent=False)
    assert router.call("echo", "POST", "/api/v1/jobs", json={}, idempotent=True).attempts == 2


def test_never_the_same_instance_twice(mock, clock) -> None:
    for n in range(3):
        add(mock, "GET", f"http://echo-{n}.test/x", status=500, body=err_body("INTERNAL_ERROR"))
    router = make_router([inst("echo", n) for n in range(3)], clock, retry=RetryPolicy(max_attempts=10))
    with pytest.raises(AllAttemptsFailed) as err:
        router.call("echo", "GET", "/x")
    assert [a.instance_id for a in err.value.attempts] == ["echo-0", "echo-1", "echo-2"]
    assert err.value.reason == "attempts exhausted"


def test_a_client_error_is_final_and_does_not_count_against_the_instance(mock, clock) -> None:
    add(mock, "POST", "http://echo-0.test/predict", status=400, body=err_body("INVALID_REQUEST"))
    router = make_router(
        [inst("echo", 0), inst("echo-lite", 0)], clock, ejection=EjectionPolicy(consecutive_failures=1)
    )
    with pytest.raises(RequestFailed) as err:
        router.call("echo", "POST", "/predict", json={}, fallbacks=["echo-lite"])
    assert (err.value.status, err.value.code) == (400, "INVALID_REQUEST")
    assert len(mock.calls) == 1 and not router.outliers.is_ejected("echo-0")


def test_the_retry_budget_allows_the_minimum_then_stops_retries(mock, clock) -> None:
    fleet = [inst("echo", n) for n in range(10)]
    for n in range(10):
        add(mock, "GET", f"http://echo-{n}.test/x", status=503, body=err_body("OVERLOADED"))
    router = make_router(fleet, clock, retry=RetryPolicy(max_attempts=10, budget_min=3, budget_ratio=0.2))
    with pytest.raises(AllAttemptsFailed) as err:
        router.call("echo", "GET", "/x")
    assert err.value.reason == "retry budget exhausted"
    assert len(mock.calls) == 4, "one try plus the minimum of 3 retries"
    with pytest.raises(AllAttemptsFailed):
        router.call("echo", "GET", "/x")
    assert len(mock.calls) == 5, "no retry left in the window"


def test_a_spent_retry_budget_still_lets_the_fallback_serve(mock, clock) -> None:
    """The moment a fleet dies, before the registry says so: every call fails on a primary first."""
    for n in range(2):
        add(mock, "POST", f"http://echo-{n}.test/predict", status=503, body=err_body("OVERLOADED"))
    add(mock, "POST", "http://echo-lite-0.test/predict", body={"ok": True})
    router = make_router(
        [inst("echo", 0), inst("echo", 1), inst("echo-lite", 0)],
        clock,
        retry=RetryPolicy(max_attempts=3, budget_min=3, budget_ratio=0.2),
    )
    results = [router.call("echo", "POST", "/predict", json={}, fallbacks=["echo-lite"]) for _ in range(20)]
    assert {(r.service, r.fallback_used) for r in results} == {("echo-lite", True)}
    tries = [r.attempts for r in results]
    assert tries[:3] == [3, 3, 3], "both primaries, then the fallback, while the budget lasts"
    assert set(tries[3:15]) == {2}, "one primary try, no retry left, then the fallback's first try"
    retries = sum(t - 2 for t in tries)  # every call made one primary try and one fallback try
    assert retries == router.budget.allowance() == 4, "20 % of 20 requests; the fallback hops spent nothing"


def test_the_retry_budget_grows_with_traffic(mock, clock) -> None:
    add(mock, "GET", "http://echo-0.test/ok")
    add(mock, "GET", "http://echo-0.test/x", status=503, body=err_body("OVERLOADED"))
    add(mock, "GET", "http://echo-1.test/x")
    router = make_router([inst("echo", 0), inst("echo", 1)], clock)
    for _ in range(50):
        router.call("echo", "GET", "/ok")
    results = [router.call("echo", "GET", "/x").attempts for _ in range(10)]
    assert results == [2] * 10, "50 requests buy 20% = 10 retries"


def test_consecutive_failures_eject_and_the_ejection_expires(mock, clock) -> None:
    add(mock, "GET", "http://echo-0.test/x", status=500, body=err_body("INTERNAL_ERROR"))
    add(mock, "GET", "http://echo-1.test/x")
    router = make_router(
        [inst("echo", 0), inst("echo", 1)], clock, ejection=EjectionPolicy(consecutive_failures=2, base_s=10)
    )
    assert [router.call("echo", "GET", "/x").attempts for _ in range(3)] == [2, 2, 1]
    clock.advance(10.5)
    assert [router.call("echo", "GET", "/x").attempts for _ in range(3)] == [2, 2, 1], "back, then ejected again"
    assert router.outliers.ejection_ends_in("echo-0") == pytest.approx(20.0, abs=0.1), "for twice as long"


def test_overloaded_is_load_not_ill_health_so_it_never_ejects(mock, clock) -> None:
    add(mock, "GET", "http://echo-0.test/busy", status=503, body=err_body("OVERLOADED"))
    add(mock, "GET", "http://echo-0.test/broken", status=503, body=err_body("MODEL_NOT_LOADED"))
    add(mock, "GET", "http://echo-1.test/busy")
    add(mock, "GET", "http://echo-1.test/broken")
    router = make_router([inst("echo", 0), inst("echo", 1)], clock, ejection=EjectionPolicy(consecutive_failures=1))
    router.call("echo", "GET", "/busy")
    assert not router.outliers.is_ejected("echo-0")
    router.call("echo", "GET", "/broken")
    assert router.outliers.is_ejected("echo-0")


def test_an_instance_this_client_already_fills_to_its_max_inflight_is_skipped(mock, clock) -> None:
    full, free = inst("echo", 0), inst("echo", 1)
    full.load = {"max_inflight": 2}
    add(mock, "GET", "http://echo-0.test/x", status=503, body=err_body("OVERLOADED"))
    add(mock, "GET", "http://echo-1.test/x")
    router = make_router([full, free], clock)
    with router.loads.track("echo-0"), router.loads.track("echo-0"):
        assert router.call("echo", "GET", "/x").attempts == 1
    assert hits(mock, "http://echo-0.test") == 0
    with router.loads.track("echo-0"), router.loads.track("echo-1"):
        assert router.call("echo", "GET", "/x").attempts == 2, "below capacity: the balancer's (first) pick"


def test_panic_mode_uses_critical_instances_but_never_draining_ones(mock, clock) -> None:
    fleet = [inst("echo", 0), inst("echo", 1, "maintenance"), inst("echo", 2, "critical"), inst("echo", 3, "critical")]
    add(mock, "GET", "http://echo-0.test/x", status=500, body=err_body("INTERNAL_ERROR"))
    add(mock, "GET", "http://echo-1.test/x")
    add(mock, "GET", "http://echo-2.test/x", exc=refused())
    add(mock, "GET", "http://echo-3.test/x")
    result = make_router(fleet, clock).call("echo", "GET", "/x")
    assert (result.instance, result.panic, result.attempts) == ("echo-3", True, 3)
    assert hits(mock, "http://echo-1.test") == 0


def test_no_panic_while_half_is_healthy_so_critical_ones_are_left_alone(mock, clock) -> None:
    fleet = [inst("echo", 0), inst("echo", 1), inst("echo", 2, "critical")]
    for n in range(3):
        add(mock, "GET", f"http://echo-{n}.test/x", status=500, body=err_body("INTERNAL_ERROR"))
    with pytest.raises(AllAttemptsFailed) as err:
        make_router(fleet, clock).call("echo", "GET", "/x")
    assert [a.instance_id for a in err.value.attempts] == ["echo-0", "echo-1"]


def test_fallback_when_the_primary_has_no_instance(mock, clock) -> None:
    add(mock, "POST", "http://compass-lite-0.test/predict")
    fleet = [inst("compass", 0, "maintenance"), inst("compass-lite", 0)]
    router = make_router(fleet, clock, fallbacks={"compass": ["compass-lite"]})
    result = router.call("compass", "POST", "/predict", json={})
    assert (result.service, result.fallback_used, result.model, result.attempts) == (
        "compass-lite",
        True,
        "compass-lite-model",
        1,
    )
    assert [a.outcome for a in result.tried] == ["no-instance", "ok"]


def test_fallback_when_the_primary_exhausts_its_attempts(mock, clock) -> None:
    for n in range(2):
        add(mock, "POST", f"http://compass-{n}.test/predict", status=503, body=err_body("OVERLOADED"))
    add(mock, "POST", "http://compass-lite-0.test/predict")
    fleet = [inst("compass", 0), inst("compass", 1), inst("compass-lite", 0)]
    result = make_router(fleet, clock).call("compass", "POST", "/predict", json={}, fallbacks=["compass-lite"])
    assert (result.service, result.fallback_used, result.attempts) == ("compass-lite", True, 3)


def test_a_healthy_primary_is_used_and_the_fallback_left_alone(mock, clock) -> None:
    add(mock, "POST", "http://compass-0.test/predict")
    fleet = [inst("compass", 0), inst("compass-lite", 0)]
    result = make_router(fleet, clock).call("compass", "POST", "/predict", json={}, fallbacks=["compass-lite"])
    assert (result.service, result.fallback_used) == ("compass", False)


def test_an_all_critical_primary_is_only_a_last_resort_behind_a_healthy_fallback(mock, clock) -> None:
    add(mock, "POST", "http://compass-0.test/predict")
    add(mock, "POST", "http://compass-lite-0.test/predict", status=503, body=err_body("OVERLOADED"))
    fleet = [inst("compass", 0, "critical"), inst("compass-lite", 0)]
    result = make_router(fleet, clock).call("compass", "POST", "/predict", json={}, fallbacks=["compass-lite"])
    assert (result.service, result.panic, result.attempts) == ("compass", True, 2)
    assert [a.service for a in result.tried] == ["compass-lite", "compass"]


def test_nothing_to_pick_names_every_service_and_why(mock, clock) -> None:
    fleet = [inst("compass", 0, "maintenance"), inst("compass", 1, "maintenance")]
    with pytest.raises(NoInstanceAvailable) as err:
        make_router(fleet, clock).call("compass", "POST", "/predict", json={}, fallbacks=["compass-lite"])
    assert err.value.services == ["compass", "compass-lite"]
    text = str(err.value)
    assert "2 maintenance" in text and "compass-lite" in text and "no instances registered" in text
    assert len(mock.calls) == 0


def test_every_try_has_a_timeout_within_the_deadline(mock, clock) -> None:
    def slow_then_timeout(request):
        clock.advance(1.5)
        raise requests.ReadTimeout("read timed out")

    mock.add_callback("GET", "http://echo-0.test/x", callback=slow_then_timeout)
    add(mock, "GET", "http://echo-1.test/x")
    router = make_router(
        [inst("echo", 0), inst("echo", 1)], clock, connect_timeout_s=1.0, retry=RetryPolicy(backoff_base_s=0)
    )
    result = router.call("echo", "GET", "/x", deadline=2.0)
    assert result.attempts == 2
    timeouts = [c.request.req_kwargs["timeout"] for c in mock.calls]
    assert timeouts[0] == (1.0, 2.0)
    assert timeouts[1] == (pytest.approx(0.5), pytest.approx(0.5))


def test_deadline_exceeded_names_what_was_tried(mock, clock) -> None:
    def hang(request):
        clock.advance(5.0)
        raise requests.ReadTimeout("read timed out")

    mock.add_callback("GET", "http://echo-0.test/x", callback=hang)
    add(mock, "GET", "http://echo-1.test/x")
    with pytest.raises(DeadlineExceeded) as err:
        make_router([inst("echo", 0), inst("echo", 1)], clock).call("echo", "GET", "/x", deadline=3.0)
    assert [a.outcome for a in err.value.attempts] == ["read-timeout"]
    assert "echo-0" in str(err.value) and hits(mock, "http://echo-1.test") == 0


def test_the_default_deadline_applies_and_must_be_positive(mock, clock) -> None:
    add(mock, "GET", "http://echo-0.test/x")
    router = make_router([inst("echo", 0)], clock, deadline_s=7.0)
    router.call("echo", "GET", "/x")
    assert mock.calls[0].request.req_kwargs["timeout"] == (2.0, 7.0)
    with pytest.raises(ValueError):
        router.call("echo", "GET", "/x", deadline=0)


def test_uploaded_files_are_sent_again_on_a_retry(mock, clock) -> None:
    add(mock, "POST", "http://compass-0.test/predict", status=503, body=err_body("OVERLOADED"))
    add(mock, "POST", "http://compass-1.test/predict")
    router = make_router([inst("compass", 0), inst("compass", 1)], clock)
    files = {"protein": ("p.pdb", io.BytesIO(b"ATOM  1 CA"), "chemical/x-pdb"), "ligand": io.BytesIO(b"SDF")}
    assert router.call("compass", "POST", "/predict", files=files).attempts == 2
    bodies = [c.request.body for c in mock.calls]
    assert all(b"ATOM  1 CA" in body and b"SDF" in body for body in bodies)


def test_stale_cache_keeps_traffic_flowing_and_says_so(mock, clock) -> None:
    listing = {"success": True, "data": {"instances": [inst("echo", 0).to_dict()], "index": 5}}
    mock.add("GET", "http://reg.test/api/v1/services", json=listing)
    add(mock, "GET", "http://echo-0.test/x")
    registry = RegistryClient("http://reg.test", watch=False, max_age_s=0.0, clock=clock)
    router = make_router([], clock)
    router.discovery = registry
    assert not router.call("echo", "GET", "/x").stale
    mock.replace("GET", "http://reg.test/api/v1/services", body=requests.ConnectionError("registry down"))
    clock.advance(1)
    result = router.call("echo", "GET", "/x")
    assert result.stale and result.instance == "echo-0"
    assert registry.stale


def test_no_registry_and_no_cache_is_no_instance(mock, clock) -> None:
    mock.add("GET", "http://reg.test/api/v1/services", body=requests.ConnectionError("registry down"))
    router = Router(RegistryClient("http://reg.test", watch=False), clock=clock)
    with pytest.raises(NoInstanceAvailable) as err:
        router.call("echo", "GET", "/x")
    assert "no-registry" in str(err.value)


def test_a_real_refused_connection_is_classified_as_not_reached() -> None:
    port = free_port()
    with pytest.raises(requests.ConnectionError) as err:
        requests.get(f"http://127.0.0.1:{port}/", timeout=2)
    failure = classify_exception(err.value)
    assert (failure.outcome, failure.reached, failure.refused) == ("refused", False, True)


def test_router_from_settings_needs_a_registry() -> None:
    from services.common.settings import ClientSettings

    with pytest.raises(ValueError, match="REGISTRY_URL"):
        Router.from_settings(ClientSettings(registry_urls=[]))
    router = Router.from_settings(ClientSettings(registry_urls=["http://reg.test"], balancer="round_robin"))
    try:
        assert router.balancer.name == "round_robin" and router.fallbacks == {"compass": ["compass-lite"]}
    finally:
        router.close()


Callback = Callable[..., object]
