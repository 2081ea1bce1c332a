"""Streamable HTTP MCP on the gateway's own port: the SDK's ASGI app, called from a Flask view.

The gateway runs on the worker runtime (waitress, WSGI), so the SDK's Starlette app runs on an
asyncio loop in a thread of its own and each ``/api/v1/mcp`` request is handed to it whole. The
app is built **stateless with JSON answers** (``stateless_http=True, json_response=True``): every
POST is a complete JSON-RPC exchange with no session to remember, which is what a gateway behind a
balancer needs (any replica may get the next request), and it makes each answer one body. The
view sits behind the runtime's drain, in-flight and rate-limit guards like every other route.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import Any

from flask import Response, request
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from services.common.envelope import ApiError, ErrorCode

log = logging.getLogger(__name__)

MCP_PATH = "/api/v1/mcp"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection"})


class McpHttpBridge:
    """One ASGI app on one event-loop thread; :meth:`view` is the Flask view that feeds it."""

    def __init__(self, server: MCPServer, *, host: str, timeout_s: float) -> None:
        # A loopback bind keeps the SDK's DNS-rebinding protection; a routable bind serves other
        # machines, whose Host headers the SDK cannot know in advance.
        security = None if host in _LOOPBACK else TransportSecuritySettings(enable_dns_rebinding_protection=False)
        self.app = server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            json_response=True,
            stateless_http=True,
            transport_security=security,
            host=host,
        )
        self._manager = server.session_manager
        self.timeout_s = timeout_s
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mcp-http", daemon=True)

    def start(self) -> McpHttpBridge:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the MCP session manager did not start")
        return self

    def close(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with self._manager.run():  # the task group stateless requests run in
            self._ready.set()
            await self._stop.wait()

    def view(self) -> Response:
        """The Flask view of ``/api/v1/mcp``: the request, whole, through the ASGI app."""
        body = request.get_data(cache=False)  # Flask's body limit applies (413 in the envelope)
        scope = _scope(request.environ)
        future = asyncio.run_coroutine_threadsafe(_call(self.app, scope, body), self._loop)
        try:
            status, headers, chunks = future.result(self.timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ApiError(ErrorCode.OVERLOADED, f"MCP call took over {self.timeout_s:g}s", retry_after=2) from None
        kept = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]
        return Response(b"".join(chunks), status=status, headers=kept)


def _scope(environ: dict[str, Any]) -> dict[str, Any]:
    """The ASGI HTTP scope of a WSGI request (PEP 3333 → ASGI 3)."""
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.append((key[5:].replace("_", "-").lower().encode("latin-1"), str(value).encode("latin-1")))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers.append((key.replace("_", "-").lower().encode("latin-1"), str(value).encode("latin-1")))
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": environ.get("SERVER_PROTOCOL", "HTTP/1.1").split("/")[-1],
        "method": environ["REQUEST_METHOD"],
        "scheme": environ.get("wsgi.url_scheme", "http"),
        "path": path,
        "raw_path": path.encode("latin-1"),
        "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
        "root_path": "",
        "headers": headers,
        "client": (environ.get("REMOTE_ADDR", ""), int(environ.get("REMOTE_PORT") or 0)),
        "server": (environ.get("SERVER_NAME", ""), int(environ.get("SERVER_PORT") or 0)),
    }


async def _call(
    app: Callable[..., Any], scope: dict[str, Any], body: bytes
) -> tuple[int, list[tuple[str, str]], list[bytes]]:
    """Run one request through ``app``; the whole answer (JSON mode never streams)."""
    status = 500
    headers: list[tuple[str, str]] = []
    chunks: list[bytes] = []
    sent = False
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            headers.extend((k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                done.set()

    await app(scope, receive, send)
    done.set()
    return status, headers, chunks
