"""Blocking-query watchers (etcd: watch streams): shared state, window counting, reconnects."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter

from .http import HttpConn, connect


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
