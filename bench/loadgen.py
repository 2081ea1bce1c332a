"""The load-generator side of ``bench/registry_load.py``; always runs in its own process.

``python -m bench.loadgen ROLE`` reads one JSON config line on stdin, writes JSON event lines on
stdout, and takes later commands (the measurement window) on stdin; EOF on stdin ends it.

Roles:
  heartbeats  register N instances, then beat each one every ``interval`` seconds, open-loop:
              instance phases are spread uniformly, a beat is sent at its scheduled time whether
              or not earlier ones were answered, and latency is measured from the scheduled time
              (no coordinated omission) as well as from the moment the request hit the socket.
  clients     discovery clients in a loop plus blocking-query watchers (etcd: watch streams).
  compare     closed-loop comparison of the two client designs (asyncio protocol pool vs
              http.client in threads): requests/s and client CPU per request.

The HTTP client is a small HTTP/1.1 keep-alive client on ``asyncio.Protocol`` (callbacks, no
coroutine per request): Content-Length and chunked bodies, a fixed pool of persistent
connections, requests queued FIFO when every connection is busy.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import math
import os
import random
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

Callback = Callable[[int, bytes, BaseException | None, float], None]

# ----------------------------------------------------------------------------------------------
# HTTP/1.1 client
# ----------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------
# statistics
# ----------------------------------------------------------------------------------------------


def summarize(values: list[float]) -> dict[str, Any]:
    """Nearest-rank percentiles of latencies given in seconds, reported in milliseconds."""
    if not values:
        return {"n": 0}
    s = sorted(values)
    n = len(s)

    def pct(p: float) -> float:
        return round(s[max(0, math.ceil(p / 100 * n) - 1)] * 1000, 3)

    return {
        "n": n,
        "mean_ms": round(sum(s) / n * 1000, 3),
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "p999_ms": pct(99.9),
        "max_ms": round(s[-1] * 1000, 3),
    }


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def err_kind(status: int, err: BaseException | None) -> str:
    return f"conn:{type(err).__name__}" if err is not None else f"http_{status}"


# ----------------------------------------------------------------------------------------------
# targets: the registry's API and etcd's HTTP/JSON gateway, for the same simulated fleet
# ----------------------------------------------------------------------------------------------


def fleet_names(instances: int, per_service: int) -> list[str]:
    return [f"bench-{s:03d}" for s in range(max(1, math.ceil(instances / per_service)))]


class Target:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.hostname, self.port = cfg["host"], cfg["port"]
        self.host = f"{self.hostname}:{self.port}"
        self.per_service = cfg["per_service"]
        self.rng = random.Random(cfg.get("seed", 1))

    def service(self, i: int) -> str:
        return f"bench-{i // self.per_service:03d}"

    def instance_id(self, i: int) -> str:
        return f"{self.service(i)}-{i:05d}"

    def doc(self, i: int, status: str = "passing") -> dict[str, Any]:
        return {
            "instance_id": self.instance_id(i),
            "service_name": self.service(i),
            "host": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
            "port": 9000,
            "version": "1.0.0",
            "status": status,
            "metadata": {
                "capabilities": ["affinity", "bench"],
                "models": ["compass-lite"],
                "device": "cuda:0",
                "gpu_memory_mb": 81920,
                "pid": 10000 + i,
            },
        }


class RegistryTarget(Target):
    name = "registry"

    async def register(self, pool: Pool, i: int) -> str | None:
        body = json.dumps(self.doc(i)).encode()
        status, _, err, _ = await pool.request(http_request("POST", "/api/v1/services/register", self.host, body))
        return None if err is None and status in (200, 201) else err_kind(status, err)

    def beat(self, i: int) -> bytes:
        body = b'{"load":{"inflight":%d}}' % self.rng.randrange(4)
        return http_request("PUT", f"/api/v1/services/{self.instance_id(i)}/heartbeat", self.host, body)

    @staticmethod
    def beat_error(status: int, body: bytes) -> str | None:
        return None if status == 200 else f"http_{status}"

    @staticmethod
    def churn_error(status: int, body: bytes) -> str | None:
        return None if status == 200 else f"http_{status}"

    def churn(self, i: int, warning: bool) -> bytes:
        body = b'{"status":"%s"}' % (b"warning" if warning else b"passing")
        return http_request("PUT", f"/api/v1/services/{self.instance_id(i)}/heartbeat", self.host, body)

    def discovery(self, service: str) -> bytes:
        return http_request("GET", f"/api/v1/services?name={service}", self.host)

    @staticmethod
    def discovery_count(body: bytes) -> int:
        return len(json.loads(body)["data"]["instances"])

    async def watch(self, conn: HttpConn, service: str, w: Watchers) -> None:
        """Blocking queries in a loop: index=N&wait=…, re-armed with the index of each answer."""
        index = None
        wait = f"{w.wait_s:g}s"
        while not w.stopping:
            path = f"/api/v1/services?name={service}" + (f"&index={index}&wait={wait}" if index is not None else "")
            status, body, err, _ = await conn.request(http_request("GET", path, self.host))
            if w.stopping:
                return
            if err is not None or status != 200:
                w.error(err_kind(status, err))
                if err is not None:
                    conn = await w.reconnect(conn)
                else:
                    await asyncio.sleep(1.0)
                continue
            new_index = json.loads(body)["data"]["index"]
            if index is None:
                w.ready += 1
            else:
                w.answer(changed=new_index != index)
            index = new_index


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class EtcdTarget(Target):
    name = "etcd"
    prefix = "/compass/services/"

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self.lease_ttl = math.ceil(cfg["lease_ttl"])
        self.leases: dict[int, str] = {}

    def key(self, i: int) -> str:
        return f"{self.prefix}{self.service(i)}/{self.instance_id(i)}"

    def _put(self, i: int, status: str) -> bytes:
        value = base64.b64encode(json.dumps(self.doc(i, status)).encode()).decode()
        body = json.dumps({"key": _b64(self.key(i)), "value": value, "lease": self.leases[i]}).encode()
        return http_request("POST", "/v3/kv/put", self.host, body)

    async def register(self, pool: Pool, i: int) -> str | None:
        body = json.dumps({"TTL": self.lease_ttl}).encode()
        status, answer, err, _ = await pool.request(http_request("POST", "/v3/lease/grant", self.host, body))
        if err is not None or status != 200:
            return err_kind(status, err)
        self.leases[i] = json.loads(answer)["ID"]
        status, _, err, _ = await pool.request(self._put(i, "passing"))
        return None if err is None and status == 200 else err_kind(status, err)

    def beat(self, i: int) -> bytes:
        return http_request("POST", "/v3/lease/keepalive", self.host, b'{"ID":"%s"}' % self.leases[i].encode())

    @staticmethod
    def beat_error(status: int, body: bytes) -> str | None:
        if status != 200:
            return f"http_{status}"
        # an unknown or expired lease answers 200 without a TTL
        return None if b'"TTL"' in body else "lease_not_found"

    @staticmethod
    def churn_error(status: int, body: bytes) -> str | None:
        return None if status == 200 else f"http_{status}"

    def churn(self, i: int, warning: bool) -> bytes:
        return self._put(i, "warning" if warning else "passing")

    def _range(self, service: str) -> dict[str, str]:
        return {"key": _b64(f"{self.prefix}{service}/"), "range_end": _b64(f"{self.prefix}{service}0")}

    def discovery(self, service: str) -> bytes:
        return http_request("POST", "/v3/kv/range", self.host, json.dumps(self._range(service)).encode())

    @staticmethod
    def discovery_count(body: bytes) -> int:
        kvs = json.loads(body).get("kvs", [])
        for kv in kvs:
            json.loads(base64.b64decode(kv["value"]))
        return len(kvs)

    async def watch(self, conn: HttpConn, service: str, w: Watchers) -> None:
        """One watch stream on the service's prefix; every event message counts as an answer."""
        while not w.stopping:
            pending = bytearray()

            def on_chunk(chunk: bytes, pending: bytearray = pending) -> None:
                pending.extend(chunk)
                while True:
                    i = pending.find(b"\n")
                    if i < 0:
                        return
                    line = bytes(pending[:i])
                    del pending[: i + 1]
                    if not line.strip():
                        continue
                    result = json.loads(line).get("result", {})
                    if result.get("created"):
                        w.ready += 1
                    elif result.get("events"):
                        w.answer(changed=True, count=len(result["events"]))

            body = json.dumps({"create_request": self._range(service)}).encode()
            status, _, err, _ = await conn.request(http_request("POST", "/v3/watch", self.host, body), on_chunk)
            if w.stopping:
                return
            w.error(err_kind(status, err) if err is not None or status != 200 else "stream_ended")
            conn = await w.reconnect(conn)


def make_target(cfg: dict[str, Any]) -> RegistryTarget | EtcdTarget:
    return RegistryTarget(cfg) if cfg["target"] == "registry" else EtcdTarget(cfg)


# ----------------------------------------------------------------------------------------------
# control channel (stdin) and the measurement window
# ----------------------------------------------------------------------------------------------


class Control:
    """Lines from stdin as an asyncio queue; EOF (the parent went away) ends the process."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._loop = loop
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in sys.stdin:
            if line.strip():
                self._loop.call_soon_threadsafe(self.queue.put_nowait, json.loads(line))
        os._exit(3)  # parent closed our stdin: never outlive it

    async def window(self) -> tuple[float, float]:
        while True:
            cmd = await self.queue.get()
            if cmd.get("cmd") == "window":
                return float(cmd["t0"]), float(cmd["t1"])


async def sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


# ----------------------------------------------------------------------------------------------
# role: heartbeats
# ----------------------------------------------------------------------------------------------


class BeatStats:
    def __init__(self) -> None:
        self.t0 = math.inf
        self.t1 = math.inf
        self.lat_sched: list[float] = []
        self.lat_sent: list[float] = []
        self.lag: list[float] = []
        self.sent = 0
        self.ok = 0
        self.errors: Counter[str] = Counter()
        self.inflight = 0
        self.total_ok = 0
        self.total_err = 0


async def heartbeats_role(cfg: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    ctl = Control(loop)
    target = make_target(cfg)
    n, interval = cfg["instances"], cfg["interval"]
    pool = Pool(cfg["host"], cfg["port"], cfg["connections"])
    await pool.start()
    stats = BeatStats()
    registered = bytearray(n)
    warned = bytearray(n)
    rng = random.Random(cfg.get("seed", 1))
    order = list(range(n))
    rng.shuffle(order)  # beat order: phases spread uniformly, services interleaved
    step = interval / n
    stop = asyncio.Event()
    raw: list[tuple[float, float, float]] | None = [] if cfg.get("raw_path") else None

    def beat_cb(due: float) -> Callback:
        in_window = stats.t0 <= due < stats.t1
        if in_window:
            stats.sent += 1
            stats.inflight += 1

        def done(status: int, body: bytes, err: BaseException | None, t_sent: float) -> None:
            now = time.monotonic()
            problem = err_kind(status, err) if err is not None else target.beat_error(status, body)
            if problem is None:
                stats.total_ok += 1
            else:
                stats.total_err += 1
            if in_window:
                stats.inflight -= 1
                if problem is None:
                    stats.ok += 1
                    stats.lat_sched.append(now - due)
                    stats.lat_sent.append(now - t_sent)
                    stats.lag.append(t_sent - due)
                    if raw is not None:
                        raw.append((round(due - stats.t0, 4), round(now - due, 5), round(now - t_sent, 5)))
                else:
                    stats.errors[problem] += 1

        return done

    async def schedule() -> None:
        base = time.monotonic() + 0.05
        j = k = 0
        while not stop.is_set():
            now = time.monotonic()
            due = base + k * interval + j * step
            while due <= now:
                i = order[j]
                if registered[i]:
                    pool.submit(target.beat(i), beat_cb(due))
                j += 1
                if j == n:
                    j, k = 0, k + 1
                due = base + k * interval + j * step
            await asyncio.sleep(due - now)

    churn_stats = {"sent": 0, "ok": 0, "errors": Counter()}

    async def churn() -> None:
        rate = cfg.get("churn", 0.0)
        if rate <= 0:
            return
        while not stop.is_set():
            await asyncio.sleep(rng.expovariate(rate))
            i = rng.randrange(n)
            if not registered[i]:
                continue
            warned[i] ^= 1
            in_window = stats.t0 <= time.monotonic() < stats.t1

            def done(status: int, body: bytes, err: BaseException | None, t_sent: float, w: bool = in_window) -> None:
                if not w:
                    return
                problem = err_kind(status, err) if err is not None else target.churn_error(status, body)
                if problem is None:
                    churn_stats["ok"] += 1
                else:
                    churn_stats["errors"][problem] += 1

            if in_window:
                churn_stats["sent"] += 1
            pool.submit(target.churn(i, bool(warned[i])), done)

    tasks = [loop.create_task(schedule()), loop.create_task(churn())]

    # registration (instances start beating as soon as they are registered)
    reg_errors: Counter[str] = Counter()
    sem = asyncio.Semaphore(cfg["register_concurrency"])
    done_count = 0

    async def register(i: int) -> None:
        nonlocal done_count
        async with sem:
            problem = await target.register(pool, i)
        done_count += 1
        if problem is None:
            registered[i] = 1
        else:
            reg_errors[problem] += 1

    async def reg_progress() -> None:
        while True:
            emit("reg_progress", done=done_count, total=n, idle=len(pool.idle), queued=len(pool.pending))
            await asyncio.sleep(0.5)

    prog = loop.create_task(reg_progress())
    t_reg = time.monotonic()
    reg_tasks = [loop.create_task(register(i)) for i in range(n)]
    _, late = await asyncio.wait(reg_tasks, timeout=cfg.get("register_timeout_s", 300.0))
    for task in late:  # bounded: what did not register in time is reported, not waited for
        task.cancel()
    reg_s = time.monotonic() - t_reg
    prog.cancel()
    ok_count = int(sum(registered))
    emit(
        "registered",
        instances=n,
        registered=ok_count,
        timed_out=len(late),
        seconds=round(reg_s, 3),
        per_s=round(ok_count / reg_s, 1) if reg_s > 0 else None,
        errors=dict(reg_errors),
        reg_end=time.monotonic(),
    )

    stats.t0, stats.t1 = await ctl.window()
    await sleep_until(stats.t0)
    cpu0 = time.process_time()
    next_progress = stats.t0 + 5
    while time.monotonic() < stats.t1:
        await asyncio.sleep(min(0.25, max(0.0, stats.t1 - time.monotonic())))
        if time.monotonic() >= next_progress:
            next_progress += 5
            emit(
                "progress",
                t=round(time.monotonic() - stats.t0, 1),
                ok=stats.ok,
                errors=sum(stats.errors.values()),
                queued=len(pool.pending),
                idle=len(pool.idle),
            )
    cpu_window = time.process_time() - cpu0
    # drain: beats scheduled inside the window get a bounded time to answer; load continues meanwhile
    drain_until = stats.t1 + cfg.get("drain_s", 5.0)
    while stats.inflight > 0 and time.monotonic() < drain_until:
        await asyncio.sleep(0.02)
    stop.set()
    for t in tasks:
        t.cancel()
    window = stats.t1 - stats.t0
    if raw is not None:
        with open(cfg["raw_path"], "w") as fh:
            json.dump({"columns": ["due_s", "latency_from_scheduled_s", "latency_from_send_s"], "rows": raw}, fh)
    scheduled_in_window = n * window / interval
    emit(
        "result",
        instances=n,
        interval_s=interval,
        window_s=round(window, 3),
        target_per_s=round(n / interval, 1),
        scheduled=round(scheduled_in_window),
        sent=stats.sent,
        ok=stats.ok,
        achieved_per_s=round(stats.ok / window, 1),
        sent_per_s=round(stats.sent / window, 1),
        errors=dict(stats.errors),
        unanswered=stats.inflight,
        latency_from_scheduled=summarize(stats.lat_sched),
        latency_from_send=summarize(stats.lat_sent),
        dispatch_lag=summarize(stats.lag),
        churn={"sent": churn_stats["sent"], "ok": churn_stats["ok"], "errors": dict(churn_stats["errors"])},
        pool_reconnects=pool.reconnects,
        gen_cpu_s=round(cpu_window, 3),
    )
    pool.close()


# ----------------------------------------------------------------------------------------------
# role: clients (discovery + blocking queries / watches)
# ----------------------------------------------------------------------------------------------


class Watchers:
    def __init__(self, host: str, port: int, wait_s: float) -> None:
        self.host, self.port, self.wait_s = host, port, wait_s
        self.t0 = self.t1 = math.inf
        self.ready = 0
        self.answers = 0
        self.changed = 0
        self.unchanged = 0
        self.events = 0
        self.errors: Counter[str] = Counter()
        self.stopping = False

    def _in_window(self) -> bool:
        return self.t0 <= time.monotonic() < self.t1

    def answer(self, changed: bool, count: int = 1) -> None:
        if self._in_window():
            self.answers += 1
            self.events += count
            if changed:
                self.changed += 1
            else:
                self.unchanged += 1

    def error(self, kind: str) -> None:
        if self._in_window() and not self.stopping:
            self.errors[kind] += 1

    async def reconnect(self, conn: HttpConn) -> HttpConn:
        conn.close()
        while not self.stopping:
            try:
                return await connect(self.host, self.port)
            except OSError:
                await asyncio.sleep(0.5)
        return conn


async def clients_role(cfg: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    ctl = Control(loop)
    target = make_target(cfg)
    host, port = cfg["host"], cfg["port"]
    services = fleet_names(cfg["instances"], cfg["per_service"])
    rng = random.Random(cfg.get("seed", 2))
    w = Watchers(host, port, cfg["watch_wait_s"])
    conns: list[HttpConn] = []

    async def watcher(k: int) -> None:
        conn = await connect(host, port)
        conns.append(conn)
        await target.watch(conn, services[k % len(services)], w)

    disc_lat: list[float] = []
    disc_errors: Counter[str] = Counter()
    disc_instances = [0]

    async def discovery_client() -> None:
        conn = await connect(host, port)
        conns.append(conn)
        pause = cfg["discovery_pause_s"]
        while not w.stopping:
            service = rng.choice(services)
            t = time.monotonic()
            status, body, err, _ = await conn.request(target.discovery(service))
            done = time.monotonic()
            in_window = w.t0 <= t < w.t1
            if err is None and status == 200:
                count = target.discovery_count(body)
                if in_window:
                    disc_lat.append(done - t)
                    disc_instances[0] += count
            else:
                if in_window:
                    disc_errors[err_kind(status, err)] += 1
                if err is not None:
                    conn = await w.reconnect(conn)
                    conns.append(conn)
            if pause > 0:
                await asyncio.sleep(pause)

    tasks = [loop.create_task(watcher(k)) for k in range(cfg["watchers"])]
    tasks += [loop.create_task(discovery_client()) for _ in range(cfg["discovery_clients"])]
    deadline = time.monotonic() + 30
    while w.ready < cfg["watchers"] and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    emit("ready", watchers=w.ready)
    w.t0, w.t1 = await ctl.window()
    await sleep_until(w.t0)
    cpu0 = time.process_time()
    await sleep_until(w.t1)
    cpu_window = time.process_time() - cpu0
    w.stopping = True
    window = w.t1 - w.t0
    emit(
        "result",
        window_s=round(window, 3),
        discovery=summarize(disc_lat),
        discovery_per_s=round(len(disc_lat) / window, 1),
        discovery_mean_instances=round(disc_instances[0] / len(disc_lat), 1) if disc_lat else 0,
        discovery_errors=dict(disc_errors),
        watchers=cfg["watchers"],
        watchers_ready=w.ready,
        watch_answers=w.answers,
        watch_changed=w.changed,
        watch_unchanged=w.unchanged,
        watch_events=w.events,
        watch_errors=dict(w.errors),
        clients_cpu_s=round(cpu_window, 3),
    )
    for t in tasks:
        t.cancel()
    for c in conns:
        c.close()


# ----------------------------------------------------------------------------------------------
# role: compare client designs (closed loop)
# ----------------------------------------------------------------------------------------------


def _asyncio_closed_loop(target: RegistryTarget | EtcdTarget, ids: list[int], conc: int, seconds: float) -> dict:
    async def run() -> dict:
        pool = Pool(target.hostname, target.port, conc)
        await pool.start()
        count = [0, 0]
        end = time.monotonic() + seconds
        finished = asyncio.get_running_loop().create_future()
        active = [conc]

        def fire(k: int) -> None:
            i = ids[k % len(ids)]

            def done(status: int, body: bytes, err: BaseException | None, t_sent: float) -> None:
                ok = err is None and target.beat_error(status, body) is None
                count[0 if ok else 1] += 1
                if time.monotonic() < end:
                    fire(k + conc)
                else:
                    active[0] -= 1
                    if active[0] == 0 and not finished.done():
                        finished.set_result(None)

            pool.submit(target.beat(i), done)

        cpu0, t0 = time.process_time(), time.monotonic()
        for k in range(conc):
            fire(k)
        await finished
        cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
        pool.close()
        return _compare_row("asyncio-protocol pool", count, cpu, wall)

    return asyncio.run(run())


def _threads_closed_loop(target: RegistryTarget | EtcdTarget, ids: list[int], conc: int, seconds: float) -> dict:
    count = [0, 0]
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        ok = bad = 0
        j = k
        while time.monotonic() < end:
            raw = target.beat(ids[j % len(ids)])
            head, _, body = raw.partition(b"\r\n\r\n")
            method, path, _ = head.split(b"\r\n", 1)[0].decode().split(" ")
            try:
                conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                if target.beat_error(resp.status, data) is None:
                    ok += 1
                else:
                    bad += 1
            except (OSError, http.client.HTTPException):
                bad += 1
                conn.close()
            j += conc
        conn.close()
        with lock:
            count[0] += ok
            count[1] += bad

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(conc)]
    cpu0, t0 = time.process_time(), time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return _compare_row("http.client threads", count, time.process_time() - cpu0, time.monotonic() - t0)


def _compare_row(client: str, count: list[int], cpu: float, wall: float) -> dict:
    total = max(1, count[0] + count[1])
    return {
        "client": client,
        "ok": count[0],
        "errors": count[1],
        "req_per_s": round(count[0] / wall, 1),
        "client_cpu_us_per_req": round(cpu / total * 1e6, 1),
        "client_cpu_pct": round(cpu / wall * 100, 1),
    }


def compare_role(cfg: dict[str, Any]) -> None:
    target = make_target(cfg)
    ids = list(range(cfg["instances"]))

    async def register_all() -> None:
        pool = Pool(target.hostname, target.port, 16)
        await pool.start()
        problems = await asyncio.gather(*(target.register(pool, i) for i in ids))
        pool.close()
        bad = [p for p in problems if p]
        if bad:
            raise SystemExit(f"registration failed: {Counter(bad)}")

    asyncio.run(register_all())
    rows = [
        _asyncio_closed_loop(target, ids, cfg["connections"], cfg["seconds"]),
        _threads_closed_loop(target, ids, cfg["connections"], cfg["seconds"]),
    ]
    emit("result", rows=rows)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in ("heartbeats", "clients", "compare"):
        print("usage: python -m bench.loadgen heartbeats|clients|compare  (config: one JSON line on stdin)")
        return 2
    cfg = json.loads(sys.stdin.readline())
    if argv[0] == "heartbeats":
        asyncio.run(heartbeats_role(cfg))
    elif argv[0] == "clients":
        asyncio.run(clients_role(cfg))
    else:
        compare_role(cfg)
    sys.stdout.flush()
    os._exit(0)  # do not wait for the stdin reader thread or lingering sockets


if __name__ == "__main__":
    sys.exit(main())
