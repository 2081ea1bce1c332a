"""A small HTTP/1.1 keep-alive client on ``asyncio.Protocol`` (callbacks, no coroutine per request).

Content-Length and chunked bodies, a fixed pool of persistent connections, requests queued FIFO
when every connection is busy.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

Callback = Callable[[int, bytes, BaseException | None, float], None]

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _TRAILER, _UNTIL_CLOSE = range(6)


def http_request(method: str, path: str, host: str, body: bytes = b"") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class HttpConn(asyncio.Protocol):
    """One persistent connection; one request at a time (no pipelining)."""

    def __init__(self, pool: Pool | None = None) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.alive = False
        self.buf = bytearray()
        self.cb: Callback | None = None
        self.stream_cb: Callable[[bytes], None] | None = None
        self.t_sent = 0.0
        self._reset()

    def _reset(self) -> None:
        self.mode = _HEAD
        self.status = 0
        self.remaining = 0
        self.body = bytearray()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.alive = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        cb, self.cb = self.cb, None
        if cb is not None:
            if self.mode == _UNTIL_CLOSE:
                cb(self.status, bytes(self.body), None, self.t_sent)
            else:
                cb(0, b"", exc or ConnectionResetError("connection closed by peer"), self.t_sent)
        if self.pool is not None:
            self.pool.lost(self)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._parse()

    # client side
    def send(self, data: bytes, cb: Callback, stream_cb: Callable[[bytes], None] | None = None) -> None:
        self.cb = cb
        self.stream_cb = stream_cb
        self.t_sent = time.monotonic()
        self.transport.write(data)  # type: ignore[union-attr]

    def request(self, data: bytes, stream_cb: Callable[[bytes], None] | None = None) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()

        def done(status: int, body: bytes, err: BaseException | None, t_sent: float) -> None:
            if not fut.done():
                fut.set_result((status, body, err, t_sent))

        if not self.alive:
            fut.set_result((0, b"", ConnectionResetError("not connected"), time.monotonic()))
        else:
            self.send(data, done, stream_cb)
        return fut

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _parse(self) -> None:
        buf = self.buf
        while True:
            mode = self.mode
            if mode == _HEAD:
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    return
                lines = bytes(buf[:i]).split(b"\r\n")
                del buf[: i + 4]
                self.status = int(lines[0][9:12])
                length = -1
                chunked = False
                for line in lines[1:]:
                    key, _, value = line.partition(b":")
                    key = key.strip().lower()
                    if key == b"content-length":
                        length = int(value)
                    elif key == b"transfer-encoding" and b"chunked" in value.lower():
                        chunked = True
                if 100 <= self.status < 200:
                    continue  # interim response
                if chunked:
                    self.mode = _CHUNK_SIZE
                elif length >= 0:
                    self.mode, self.remaining = _LENGTH, length
                else:
                    self.mode = _UNTIL_CLOSE
            elif mode == _LENGTH:
                if len(buf) < self.remaining:
                    return
                body = bytes(buf[: self.remaining])
                del buf[: self.remaining]
                self._finish(body)
            elif mode == _CHUNK_SIZE:
                i = buf.find(b"\r\n")
                if i < 0:
                    return
                size = int(bytes(buf[:i]).split(b";")[0], 16)
                del buf[: i + 2]
                if size == 0:
                    self.mode = _TRAILER
                else:
                    self.mode, self.remaining = _CHUNK_DATA, size
            elif mode == _CHUNK_DATA:
                if len(buf) < self.remaining + 2:
                    return
                chunk = bytes(buf[: self.remaining])
                del buf[: self.remaining + 2]
                if self.stream_cb is not None:
                    self.stream_cb(chunk)
                else:
                    self.body += chunk
                self.mode = _CHUNK_SIZE
            elif mode == _TRAILER:
                i = buf.find(b"\r\n")
                if i < 0:
                    return
                empty = i == 0
                del buf[: i + 2]
                if empty:
                    self._finish(bytes(self.body))
            else:  # _UNTIL_CLOSE
                self.body += buf
                buf.clear()
                return

    def _finish(self, body: bytes) -> None:
        status, cb, t_sent = self.status, self.cb, self.t_sent
        self.cb = self.stream_cb = None
        self._reset()
        if cb is not None:
            cb(status, body, None, t_sent)
        if self.pool is not None:
            self.pool.released(self)


async def connect(host: str, port: int, pool: Pool | None = None) -> HttpConn:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(lambda: HttpConn(pool), host, port)
    return proto


class Pool:
    """A fixed set of persistent connections; FIFO queue when all are busy; reconnects lost ones."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        self.idle: list[HttpConn] = []
        self.pending: deque[tuple[bytes, Callback]] = deque()
        self.closing = False
        self.reconnects = 0

    async def start(self) -> None:
        conns = await asyncio.gather(*(connect(self.host, self.port, self) for _ in range(self.size)))
        self.idle.extend(conns)

    def submit(self, data: bytes, cb: Callback) -> None:
        if self.idle:
            self.idle.pop().send(data, cb)
        else:
            self.pending.append((data, cb))

    def request(self, data: bytes) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()

        def done(status: int, body: bytes, err: BaseException | None, t_sent: float) -> None:
            if not fut.done():
                fut.set_result((status, body, err, t_sent))

        self.submit(data, done)
        return fut

    def released(self, conn: HttpConn) -> None:
        if not conn.alive:
            return
        if self.pending:
            conn.send(*self.pending.popleft())
        else:
            self.idle.append(conn)

    def lost(self, conn: HttpConn) -> None:
        if conn in self.idle:
            self.idle.remove(conn)
        if not self.closing:
            asyncio.get_running_loop().create_task(self._replace())

    async def _replace(self) -> None:
        delay = 0.05
        while not self.closing:
            try:
                conn = await connect(self.host, self.port, self)
            except OSError:
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)
                continue
            self.reconnects += 1
            self.released(conn)
            return

    def close(self) -> None:
        self.closing = True
        for conn in self.idle:
            conn.close()
