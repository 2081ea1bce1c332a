"""The one HTTP client of the registry API: every call to ``/api/v1/services`` goes through here.

The worker agent (register, heartbeat, maintenance, deregister), the discovery cache
(:class:`~services.client.registry_client.RegistryClient`: list and blocking queries), FlashDock
(maintenance, reachability) and the benchmarks share its rules, so they cannot drift apart:
several registry URLs tried in turn from the last one that answered, the token on writes only,
short timeouts, and the one envelope parser (:mod:`services.common.envelope_read`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import requests

from services.client.errors import ClientError, RegistryUnavailable
from services.common.envelope_read import error_text, response_json
from services.common.instance import Instance

log = logging.getLogger(__name__)

T = TypeVar("T")

SERVICES_PATH = "/api/v1/services"
# The per-instance secret a registration answers; the writes to that instance carry it.
SECRET_HEADER = "X-Instance-Secret"
# Answers to a write worth trying the next registry URL for (it may be restarting or behind a proxy).
GATEWAY_STATUSES = frozenset({502, 503, 504})


class Skip(Exception):
    """Raised by a reader given to :meth:`RegistryApi.send`: this registry's answer is no use; try the next."""


def normalize_urls(urls: str | Sequence[str], *, allow_empty: bool = False) -> list[str]:
    """``"http://a:1,b:2"`` or a list (items may hold commas) → clean URLs, order kept.

    ``host:port`` gains ``http://``; trailing slashes, blanks and duplicates go. No URL at all is a
    ``ValueError`` unless ``allow_empty`` (a worker may run standalone).
    """
    items = [urls] if isinstance(urls, str) else list(urls)
    out: list[str] = []
    for item in items:
        for part in item.split(","):
            url = part.strip().rstrip("/")
            if url and "://" not in url:
                url = f"http://{url}"
            if url and url not in out:
                out.append(url)
    if not out and not allow_empty:
        raise ValueError("at least one registry URL is needed")
    return out


class RegistryApi:
    """Calls to one or more registries (replicas of one catalog), failing over between them.

    :param urls: registry base URLs, tried in order; a comma-separated string works too.
    :param token: sent as ``Authorization: Bearer`` on writes (reads are open): a worker token for a
        worker, the operator token for an operator's tools (drain any instance).
    :param timeout_s: timeout of one call to one registry (a blocking query adds its wait).
    :param session: a ``requests.Session`` to use (and not close); by default one of its own.
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        token: str = "",
        timeout_s: float = 3.0,
        session: requests.Session | None = None,
    ) -> None:
        self.urls = normalize_urls(urls)
        self.timeout_s = timeout_s
        self.session = session or requests.Session()
        self._owns_session = session is None
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._current = 0  # the registry that answered last; every call starts there

    @property
    def url(self) -> str:
        """The registry URL currently preferred."""
        return self.urls[self._current]

    def close(self) -> None:
        if self._owns_session:
            self.session.close()

    def send(
        self,
        method: str,
        path: str,
        read: Callable[[requests.Response, str], T],
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        timeout: float | tuple[float, float] | None = None,
        session: requests.Session | None = None,
        auth: bool = False,
        headers: dict[str, str] | None = None,
    ) -> T:
        """``read(response, registry_url)`` of the first registry whose answer it accepts.

        A registry that cannot be reached, or whose answer ``read`` rejects with :class:`Skip`,
        is passed over for the next one; any other exception of ``read`` ends the call (the
        registry understood and refused). Raises :class:`RegistryUnavailable` naming every
        registry and why when none answered; the next call then starts at the next registry.
        """
        errors: list[str] = []
        start = self._current
        sent = {**(self._auth if auth else {}), **(headers or {})} or None
        for step in range(len(self.urls)):
            slot = (start + step) % len(self.urls)
            url = self.urls[slot]
            try:
                resp = (session or self.session).request(
                    method,
                    url + path,
                    json=json,
                    params=params,
                    headers=sent,
                    timeout=self.timeout_s if timeout is None else timeout,
                )
            except requests.RequestException as exc:
                log.debug("registry %s %s%s failed: %s", method, url, path, exc)
                errors.append(f"{url}: {type(exc).__name__}")
                continue
            try:
                result = read(resp, url)
            except Skip as exc:
                errors.append(f"{url}: {exc}")
                continue
            if slot != self._current:
                log.info("registry client now uses %s", url)
                self._current = slot
            return result
        self._current = (start + 1) % len(self.urls)
        raise RegistryUnavailable("no registry answered: " + "; ".join(errors))

    # -- writes (the worker agent, FlashDock's drain button) -----------------------------------

    def write(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        secret: str = "",
        params: dict[str, str] | None = None,
    ) -> requests.Response | None:
        """A call that changes the registry, token (and instance ``secret``) attached, for the caller to judge.

        The first answer that is not a gateway error (502/503/504) is returned; when every
        registry failed, the last gateway answer, or None when none answered at all.
        """
        gateway: list[requests.Response] = []

        def read(resp: requests.Response, _url: str) -> requests.Response:
            if resp.status_code in GATEWAY_STATUSES:
                gateway.append(resp)
                raise Skip(f"HTTP {resp.status_code}")
            return resp

        headers = {SECRET_HEADER: secret} if secret else None
        try:
            return self.send(method, path, read, json=body, params=params, auth=True, headers=headers)
        except RegistryUnavailable:
            return gateway[-1] if gateway else None

    def register(self, body: dict[str, Any], *, secret: str = "", take_over: bool = False) -> requests.Response | None:
        """Register; ``secret`` proves a re-registration is the instance's own, ``take_over`` (operator
        token only) replaces a live instance of another registrant."""
        params = {"take_over": "true"} if take_over else None
        return self.write("POST", f"{SERVICES_PATH}/register", body, secret=secret, params=params)

    def heartbeat(self, instance_id: str, body: dict[str, Any], *, secret: str = "") -> requests.Response | None:
        return self.write("PUT", f"{SERVICES_PATH}/{instance_id}/heartbeat", body, secret=secret)

    def set_maintenance(
        self, instance_id: str, enabled: bool, reason: str, *, secret: str = ""
    ) -> requests.Response | None:
        """Drain on or off: the instance's own ``secret``, or (FlashDock's button) the operator token."""
        body = {"enabled": enabled, "reason": reason}
        return self.write("PUT", f"{SERVICES_PATH}/{instance_id}/maintenance", body, secret=secret)

    def deregister(self, instance_id: str, *, secret: str = "") -> requests.Response | None:
        return self.write("DELETE", f"{SERVICES_PATH}/{instance_id}", secret=secret)

    # -- reads ----------------------------------------------------------------------------------

    def ping(self) -> str:
        """The URL of a registry that answers ``/health`` at all; :class:`RegistryUnavailable` when none does."""
        return self.send("GET", "/health", lambda _resp, url: url)

    def list_instances(
        self,
        params: dict[str, str],
        *,
        index: int | None = None,
        wait_s: float = 30.0,
        session: requests.Session | None = None,
    ) -> tuple[list[Instance], int, str]:
        """``(instances, index, registry_url)`` of one query; a blocking one when ``index`` is given.

        Overloaded (429), failing (5xx) and garbled answers fail over to the next registry; a
        refused query (4xx) raises :class:`ClientError` at once: no other registry would differ.
        """
        query = dict(params)
        total = self.timeout_s
        if index is not None:
            query.update(index=str(index), wait=f"{wait_s:g}s")
            total = self.timeout_s + wait_s * (1 + 1 / 16)  # the registry adds up to wait/16 jitter

        def read(resp: requests.Response, url: str) -> tuple[list[Instance], int, str]:
            if resp.status_code >= 500 or resp.status_code == 429:
                raise Skip(f"HTTP {resp.status_code}")
            if resp.status_code >= 400:
                raise ClientError(f"registry {url} refused the query {query}: {error_text(resp)}")
            body = response_json(resp)
            try:
                data = body["data"]
                return [Instance.from_dict(item) for item in data["instances"]], int(data["index"]), url
            except (KeyError, TypeError, ValueError) as exc:
                raise Skip(f"malformed answer ({exc!r})") from None

        return self.send("GET", SERVICES_PATH, read, params=query, timeout=(self.timeout_s, total), session=session)
