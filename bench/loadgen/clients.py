"""Role ``clients``: discovery clients in a loop plus blocking-query watchers (etcd: watch streams)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any

from .control import Control, sleep_until
from .http import HttpConn, connect
from .stats import emit, err_kind, summarize
from .targets import fleet_names, make_target
from .watchers import Watchers


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
