"""Role ``compare``: closed-loop comparison of the two client designs.

The asyncio protocol pool against http.client in threads, same connections and same heartbeats:
requests/s and client CPU per request.
"""

from __future__ import annotations

import asyncio
import http.client
import threading
import time
from collections import Counter
from typing import Any

from .http import Pool
from .stats import emit
from .targets import EtcdTarget, RegistryTarget, make_target


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
