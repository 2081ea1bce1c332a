"""The registry's HTTP server: gevent's WSGI server with timeouts and a cap per client address.

Without them an idle or half-sent connection was held forever, and enough of them (one host is
enough) locked every worker out. Three guards, none of which can cut a blocking query that is
legitimately waiting (a waiting query is inside the application, where no socket timeout runs):

- **idle timeout**: a kept-alive connection must start its next request within ``idle_timeout``;
- **header timeout**: once the first byte of a request arrived, its request line and headers must
  all arrive within ``header_timeout`` (one deadline, so trickling a byte at a time does not
  extend it); after that, each read of the body and each write of the answer gets that long;
- **connections per client address**: past ``client_connection_limit`` open connections from one
  address, a new one is answered 429 RATE_LIMITED (in the envelope, with ``Retry-After``) and
  closed. A load test from one host raises it (``--client-connection-limit``, 0 = no cap).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections import Counter
from typing import Any

import gevent
from gevent.pywsgi import WSGIHandler, WSGIServer

from services.common.addresses import canonical_host
from services.common.clock import iso_utc, utc_now
from services.common.envelope import new_request_id

log = logging.getLogger("services.registry.http")

_TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class _HeadTimeout(TimeoutError):
    """The request line and headers did not arrive in time (a socket timeout to gevent's handler)."""


class GuardedHandler(WSGIHandler):
    """gevent's handler with TCP_NODELAY, the idle timeout and the header deadline."""

    server: RegistryServer

    def __init__(self, sock: socket.socket, address: Any, server: RegistryServer, rfile: Any = None) -> None:
        # Small JSON answers must not wait for Nagle + delayed ACK (40 ms stalls without this).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().__init__(sock, address, server, rfile)
        self._head_timer: gevent.Timeout | None = None

    def read_requestline(self) -> str:
        self.socket.settimeout(self.server.idle_timeout or None)
        try:
            if not self.rfile.peek(1):  # the client closed the connection
                return ""
        except OSError:  # idle past the timeout (or reset): close quietly
            return ""
        self._head_timer = gevent.Timeout.start_new(self.server.header_timeout, _HeadTimeout())
        return super().read_requestline()

    def read_request(self, raw_requestline: str) -> Any:
        try:
            return super().read_request(raw_requestline)
        finally:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            # The body and the answer: each read or write gets this long (a waiting query does none).
            self.socket.settimeout(self.server.header_timeout or None)

    def _handle_client_error(self, ex: BaseException) -> Any:
        if isinstance(ex, TimeoutError):
            log.info("request head from %s not received within %.1fs", self.client_address, self.server.header_timeout)
            return ("408", _TIMEOUT_RESPONSE)
        return super()._handle_client_error(ex)

    def handle(self) -> None:
        try:
            super().handle()
        finally:
            if self._head_timer is not None:  # the head read ended in an error
                self._head_timer.cancel()


class RegistryServer(WSGIServer):
    """One process, one greenlet per connection; counts connections per client address."""

    handler_class = GuardedHandler

    def __init__(
        self,
        listener: Any,
        application: Any,
        *,
        header_timeout: float,
        idle_timeout: float,
        client_connection_limit: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(listener, application, **kwargs)
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.client_connection_limit = client_connection_limit
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def handle(self, sock: socket.socket, address: Any) -> None:
        client = _client_key(address)
        with self._lock:
            refused = 0 < self.client_connection_limit <= self._open[client]
            if not refused:
                self._open[client] += 1
        if refused:
            _refuse(sock, client, self.client_connection_limit)
            return
        try:
            super().handle(sock, address)
        finally:
            with self._lock:
                self._open[client] -= 1
                if self._open[client] <= 0:
                    del self._open[client]


def _client_key(address: Any) -> str:
    host = address[0] if isinstance(address, tuple) and address else str(address)
    try:
        return canonical_host(str(host))
    except ValueError:
        return str(host)


def _refuse(sock: socket.socket, client: str, limit: int) -> None:
    """429 in the envelope and close; the request (if it came at once) is read first so the client sees it."""
    details = f"{client} already holds {limit} connections to the registry (--client-connection-limit)"
    body = json.dumps(
        {
            "success": False,
            "message": details,
            "data": None,
            "error": {"code": "RATE_LIMITED", "details": details},
            "timestamp": iso_utc(utc_now()),
            "request_id": new_request_id(),
        }
    ).encode()
    head = (
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
        f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    try:
        sock.settimeout(0.5)
        with contextlib.suppress(OSError):
            sock.recv(65536)
        sock.sendall(head + body)
    except OSError:
        pass
    finally:
        sock.close()
    log.warning("refused a connection: %s", details)
