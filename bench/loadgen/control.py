"""The control channel (stdin) and the measurement window."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from typing import Any


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
