"""Role ``heartbeats``: register N instances, then beat each one every ``interval`` seconds, open-loop.

Instance phases are spread uniformly, a beat is sent at its scheduled time whether or not earlier
ones were answered, and latency is measured from the scheduled time (no coordinated omission) as
well as from the moment the request hit the socket. A little status churn runs beside the beats.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import Counter
from typing import Any

from .control import Control, sleep_until
from .http import Callback, Pool
from .stats import emit, err_kind, summarize
from .targets import make_target


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
