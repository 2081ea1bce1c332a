"""Router: call a service or capability by name; land on a healthy instance; survive failures.

One call walks the fallback chain (``compass`` → ``compass-lite``). For each service it picks
candidates (:mod:`~services.client.selection`), lets the balancer choose one, and sends the
request with a timeout bounded by the call's deadline. A failed try moves to *another*
instance when the failure proves the request did not run, or when the call is idempotent;
each retry spends from a shared budget. The first try on a fallback is not a retry: it goes to
other instances, at most once per link of the chain, so a spent budget ends the primary's
tries and the chain goes on (otherwise the fallback would fail exactly when it is needed, the
moment a fleet dies and before the registry has said so). A service whose instances are all unhealthy is kept
as a last resort behind the rest of the chain (panic mode), so a healthy fallback wins over a
probably-dead primary.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import requests

from services.client.balancers import DEFAULT_BALANCER, Balancer, make_balancer
from services.client.call import CallResult, CallState, census
from services.client.discovery import Discovery, Snapshot
from services.client.errors import AllAttemptsFailed, ClientError, NoInstanceAvailable, RequestFailed
from services.client.load import LoadTracker
from services.client.policy import EjectionPolicy, RetryBudget, RetryPolicy
from services.client.registry_client import RegistryClient
from services.client.selection import DEFAULT_PANIC_THRESHOLD, OutlierDetector, Selection, below_capacity, select
from services.client.transport import (
    Failure,
    classify_exception,
    classify_response,
    is_idempotent,
    make_session,
    replayable_files,
)
from services.common.cli import env_settings
from services.common.clock import Clock, SystemClock
from services.common.envelope_read import error_fields, response_json
from services.common.instance import Instance
from services.common.settings import ClientSettings

log = logging.getLogger(__name__)


class Router:
    """Routes calls over instances found by ``discovery``; thread-safe, share one per process.

    :param discovery: a :class:`~services.client.discovery.Discovery`, or registry URL(s) for a
        :class:`RegistryClient` the Router then owns.
    :param balancer: a name (``p2c``, ``least_connections``, ``round_robin``, ``random``) or a Balancer.
    :param fallbacks: per service or capability, the services to try after it.
    :param preferences: per capability, the services to pick its instances from first, in order
        (``{"protein-embedding": ["hf", "antiberty"]}``: an ``hf`` worker when one is usable, else
        ``antiberty``, else any other worker with the capability). Not a fallback: the answer still
        comes from the capability asked for.
    :param deadline_s: default deadline of a call (retries and fallbacks included).
    :param try_timeout_s: longest one try may wait for its answer (Envoy's per-try timeout);
        None = the rest of the deadline. A try that times out counts as failed: an idempotent
        call goes on to another instance or the fallback, so one hung instance costs this much,
        not the whole deadline.
    :param sleep: how to pause between retries (tests pass a fake clock's ``advance``).
    """

    def __init__(
        self,
        discovery: Discovery | str | Sequence[str],
        *,
        balancer: str | Balancer = DEFAULT_BALANCER,
        retry: RetryPolicy | None = None,
        ejection: EjectionPolicy | None = None,
        fallbacks: Mapping[str, Sequence[str]] | None = None,
        preferences: Mapping[str, Sequence[str]] | None = None,
        deadline_s: float = 30.0,
        connect_timeout_s: float = 2.0,
        try_timeout_s: float | None = None,
        panic_threshold: float = DEFAULT_PANIC_THRESHOLD,
        client_id: str | None = None,
        client_token: str | None = None,
        session: requests.Session | None = None,
        pool_maxsize: int = 64,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if deadline_s <= 0 or connect_timeout_s <= 0 or (try_timeout_s is not None and try_timeout_s <= 0):
            raise ValueError("deadline_s, connect_timeout_s and try_timeout_s must be positive")
        self._owns_discovery = isinstance(discovery, (str, list, tuple))
        self.discovery: Discovery = RegistryClient(discovery) if self._owns_discovery else discovery  # type: ignore[arg-type]
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self.balancer = make_balancer(balancer, self._rng) if isinstance(balancer, str) else balancer
        self.retry = retry or RetryPolicy()
        self.budget = RetryBudget(self.retry, self._clock)
        self.outliers = OutlierDetector(ejection, self._clock)
        self.loads = LoadTracker(self._clock)
        self.fallbacks = {k: list(v) for k, v in (fallbacks or {}).items()}
        self.preferences = {k: list(v) for k, v in (preferences or {}).items()}
        self.deadline_s = deadline_s
        self.connect_timeout_s = connect_timeout_s
        self.try_timeout_s = try_timeout_s
        self.panic_threshold = panic_threshold
        self.client_id = client_id or f"router-{socket.gethostname()}-{os.getpid()}"
        # Who calls: the sub-client's name and the issued client token a worker's limits count on.
        bearer = {"Authorization": f"Bearer {client_token}"} if client_token else {}
        self.identity: dict[str, str] = {"X-Client-ID": self.client_id, **bearer}
        self._session = session or make_session(pool_maxsize)
        self._owns_session = session is None
        self._sleep = sleep

    @classmethod
    def from_settings(
        cls, settings: ClientSettings | None = None, *, discovery: Discovery | None = None, **overrides: Any
    ) -> Router:
        """A Router configured from the environment (``REGISTRY_URL``, ``CLIENT_*``); keywords win."""
        s = settings or env_settings(ClientSettings)
        owned = discovery is None
        if discovery is None:
            if not s.registry_urls:
                raise ValueError("no registry: set REGISTRY_URL or pass discovery=")
            discovery = RegistryClient(s.registry_urls, wait_s=s.watch_wait_s)
        kwargs: dict[str, Any] = {
            "balancer": s.balancer,
            "retry": RetryPolicy(max_attempts=s.max_attempts),
            "fallbacks": s.fallbacks,
            "deadline_s": s.deadline_s,
            "connect_timeout_s": s.connect_timeout_s,
            "try_timeout_s": s.try_timeout_s or None,
            "client_id": s.client_id or None,
            "client_token": s.client_token or None,
            **overrides,
        }
        router = cls(discovery, **kwargs)
        router._owns_discovery = owned
        return router

    def close(self) -> None:
        if self._owns_session:
            self._session.close()
        if self._owns_discovery and hasattr(self.discovery, "close"):
            self.discovery.close()  # type: ignore[attr-defined]

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calls ----------------------------------------------------------------------------------

    def predict(self, target: str, payload: Mapping[str, Any], **kwargs: Any) -> CallResult:
        """``POST /predict`` with ``payload`` as JSON (idempotent, so retried on failure)."""
        return self.call(target, "POST", "/predict", json=dict(payload), **kwargs)

    def call(
        self,
        target: str,
        method: str = "GET",
        path: str = "/",
        *,
        json: Any = None,
        data: Any = None,
        files: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        fallbacks: Sequence[str] | None = None,
        deadline: float | None = None,
        try_timeout: float | None = None,
        idempotent: bool | None = None,
        request_id: str | None = None,
    ) -> CallResult:
        """Send ``method path`` to an instance of ``target`` (a service name or a capability).

        :param fallbacks: services to try, in order, when ``target`` has no usable instance or
            runs out of attempts; None uses the Router's configured chain, ``[]`` none.
        :param deadline: seconds for the whole call; every try's timeout stays within it.
        :param try_timeout: seconds one try may wait for its answer; None = the Router's setting.
        :param idempotent: whether a try that may have run can be repeated elsewhere; None =
            GET/PUT/DELETE and the ``/predict`` routes.
        :raises RequestFailed: a worker refused the request (4xx); not retried.
        :raises NoInstanceAvailable: nothing in the chain could be picked.
        :raises AllAttemptsFailed: tries failed and no further try was possible or allowed.
        :raises DeadlineExceeded: the deadline passed first.
        """
        method = method.upper()
        path = path if path.startswith("/") else "/" + path
        budget_s = self.deadline_s if deadline is None else deadline
        if budget_s <= 0:
            raise ValueError("deadline must be positive")
        per_try = self.try_timeout_s if try_timeout is None else try_timeout
        if per_try is not None and per_try <= 0:
            raise ValueError("try_timeout must be positive")
        now = self._clock.monotonic()
        rid = request_id or uuid.uuid4().hex
        hdrs = {**self.identity, **(headers or {}), "X-Request-ID": rid}
        call = CallState(
            target=target,
            method=method,
            path=path,
            idempotent=is_idempotent(method, path, idempotent),
            request_id=rid,
            started=now,
            ends=now + budget_s,
            try_timeout_s=per_try,
            kwargs={"json": json, "data": data, "files": replayable_files(files), "params": params, "headers": hdrs},
        )
        chain = [target, *(self.fallbacks.get(target, ()) if fallbacks is None else fallbacks)]
        chain = list(dict.fromkeys(chain))
        links = [(service, prefer) for service in chain for prefer in (*self.preferences.get(service, ()), None)]
        self.budget.record_request()
        last_resort: list[tuple[str, str | None]] = []
        for service, prefer in links:
            snap = self._lookup(call, service, prefer)
            if snap is None or (prefer is not None and not snap.instances):
                continue
            sel = self._select(snap, call)
            if sel.healthy == 0 and sel.usable > 0 and (service, prefer) != links[-1]:
                last_resort.append((service, prefer))  # only unhealthy ones: try the rest of the chain first
                continue
            result = self._try_service(call, service, snap, prefer)
            if result is not None:
                return result
        for service, prefer in last_resort:
            snap = self._lookup(call, service, prefer)
            result = self._try_service(call, service, snap, prefer) if snap is not None else None
            if result is not None:
                return result
        if call.tries == 0:
            raise NoInstanceAvailable(
                f"no usable instance of {' → '.join(chain)}", target=target, services=chain, attempts=call.attempts
            )
        if call.budget_spent:
            raise AllAttemptsFailed(
                f"{method} {path}: retry budget exhausted ({self.retry.budget_ratio:.0%} of recent requests, "
                f"minimum {self.retry.budget_min}; {call.tries} tries over {' → '.join(chain)})",
                target=target,
                attempts=call.attempts,
                reason="retry budget exhausted",
            )
        raise AllAttemptsFailed(
            f"{method} {path} failed on every instance tried ({call.tries} tries over {' → '.join(chain)})",
            target=target,
            attempts=call.attempts,
            reason="attempts exhausted",
        )

    def fetch(self, base_url: str, path: str, *, timeout: float) -> bytes:
        """GET ``path`` from one instance already chosen (a ``/metrics`` scrape, a download): no pick, no retry.

        Raises :class:`RequestFailed` for an error status, :class:`ClientError` when there is no answer.
        """
        try:
            resp = self._session.get(base_url + path, timeout=timeout, headers=self.identity)
        except requests.RequestException as exc:
            raise ClientError(f"GET {base_url}{path}: {classify_exception(exc).outcome}") from exc
        if not resp.ok:
            code, details = error_fields(response_json(resp))
            what = f"GET {base_url}{path} refused: HTTP {resp.status_code}"
            raise RequestFailed(what, target=base_url, status=resp.status_code, code=code, details=details)
        return resp.content

    # -- internals ------------------------------------------------------------------------------

    def _lookup(self, call: CallState, service: str, prefer: str | None = None) -> Snapshot | None:
        """The instances of ``service`` (a name or capability), only those of service ``prefer`` if given."""
        try:
            snap = self.discovery.lookup(service)
        except ClientError as exc:  # no registry and nothing cached: this link of the chain is out
            if prefer is None:
                call.record(service, None, "no-registry", details=str(exc))
            return None
        if prefer is None:
            return snap
        return replace(snap, instances=tuple(i for i in snap.instances if i.service_name == prefer))

    def _select(self, snap: Snapshot, call: CallState) -> Selection:
        ids = [i.instance_id for i in snap.instances]
        return select(snap.instances, self.outliers.ejected(ids), call.tried, self.panic_threshold)

    def _try_service(
        self, call: CallState, service: str, snap: Snapshot, prefer: str | None = None
    ) -> CallResult | None:
        """Up to ``max_attempts`` tries on distinct instances of ``service``; None when they ran out."""
        for attempt in range(self.retry.max_attempts):
            if attempt:
                refreshed = self._lookup(call, service, prefer)  # cheap: a cache read; picks up removals
                snap = refreshed or snap
            sel = self._select(snap, call)
            if sel.empty:
                if attempt == 0:
                    call.record(service, None, "no-instance", details=census(snap))
                return None
            if attempt and not self._before_retry(call):
                return None  # no retry left: the next link of the chain gets its first try
            inst = self.balancer.choose(below_capacity(sel.candidates, self.loads.inflight), self.loads)
            result = self._send(call, service, inst, snap, sel.panic)
            if result is not None:
                return result
        return None

    def _before_retry(self, call: CallState) -> bool:
        """Spend one retry from the budget and back off; False (noted on the call) when it is spent."""
        if not self.budget.try_spend():
            call.budget_spent = True
            return False
        pause = self.retry.backoff_s(call.tries, self._rng)
        if self._clock.monotonic() + pause >= call.ends:
            raise call.deadline_error(self._clock.monotonic())
        if pause > 0:
            self._sleep(pause)
        return True

    def _send(self, call: CallState, service: str, inst: Instance, snap: Snapshot, panic: bool) -> CallResult | None:
        """One try on ``inst``: a result, None to try elsewhere, or raise when nothing more may be tried."""
        read_timeout = call.begin_try(inst.instance_id, self._clock.monotonic())
        pool = [i.instance_id for i in snap.instances]
        t0 = time.perf_counter()
        with self.loads.track(inst.instance_id):  # counted before the request, released in finally
            try:
                resp = self._session.request(
                    call.method,
                    inst.base_url + call.path,
                    timeout=(min(self.connect_timeout_s, read_timeout), read_timeout),
                    **call.kwargs,
                )
            except requests.RequestException as exc:
                failure = classify_exception(exc)
                elapsed = time.perf_counter() - t0
                if failure.outcome == "read-timeout":
                    self.loads.observe(inst.instance_id, elapsed)  # a peak: steer away from it
                self.outliers.record_failure(inst.instance_id, pool, refused=failure.refused)
                return self._failed(call, service, inst, failure, None, None, elapsed)
        elapsed = time.perf_counter() - t0
        body = response_json(resp)
        code, details = error_fields(body)
        failure = classify_response(resp, body)
        if failure is not None:
            # A rate limit is about this client and OVERLOADED about load (the balancer's business),
            # not about the instance's health: neither counts towards ejection.
            if resp.status_code != 429 and code != "OVERLOADED":
                self.outliers.record_failure(inst.instance_id, pool)
            if failure.reached:  # a quick 503 refusal must not make an instance look fast
                self.loads.observe(inst.instance_id, elapsed)
            return self._failed(call, service, inst, failure, resp.status_code, code, elapsed)
        self.loads.observe(inst.instance_id, elapsed)
        self.outliers.record_success(inst.instance_id)  # a 4xx too: the instance did its job
        outcome = "ok" if resp.ok else f"http-{resp.status_code}"
        call.record(
            service, inst, outcome, status=resp.status_code, code=code, details=details, elapsed_s=elapsed, reached=True
        )
        if not resp.ok:
            raise RequestFailed(
                f"{call.method} {call.path} refused by {inst.instance_id}: HTTP {resp.status_code} {code or ''} "
                f"{details}".strip(),
                target=call.target,
                attempts=call.attempts,
                status=resp.status_code,
                code=code,
                details=details,
                body=body,
            )
        return call.result(service, inst, snap, panic, resp.status_code, body, self._clock.monotonic())

    def _failed(
        self,
        call: CallState,
        service: str,
        inst: Instance,
        failure: Failure,
        status: int | None,
        code: str | None,
        elapsed: float,
    ) -> None:
        call.record(
            service,
            inst,
            failure.outcome,
            status=status,
            code=code,
            details=failure.details,
            elapsed_s=elapsed,
            reached=failure.reached,
        )
        log.debug("try %d of %s %s on %s failed: %s", call.tries, call.method, call.path, inst.instance_id, failure)
        if self._clock.monotonic() >= call.ends:
            raise call.deadline_error(self._clock.monotonic())
        if failure.reached and not call.idempotent:
            raise AllAttemptsFailed(
                f"{call.method} {call.path} may have run on {inst.instance_id} ({failure.outcome}) and is not "
                "idempotent: not retried",
                target=call.target,
                attempts=call.attempts,
                reason="not idempotent",
            )
        return None
