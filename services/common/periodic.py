"""Periodic: run a function every N seconds in a daemon thread, the mesh's one way to do background work.

The registry's TTL sweep, heartbeat flush and active-check dispatch and the COMPASS worker's
job/dataset sweep all use it, so each has the same rules: a fixed pause *between* runs (a slow
run is never overlapped or queued twice), an exception is logged and the next run happens
anyway, and :meth:`stop` ends the thread at once instead of after the pause. Under the registry's
gevent monkey-patching the thread and its ``Event.wait`` are a greenlet, with nothing to change.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Calls ``fn`` every ``every_s`` seconds (after a first pause) until :meth:`stop`.

    :param name: the thread's name, and what a failure's log line names.
    :param on_stop: run once in :meth:`stop` after the thread ended (a last flush).
    """

    def __init__(
        self, name: str, every_s: float, fn: Callable[[], object], *, on_stop: Callable[[], object] | None = None
    ) -> None:
        if every_s <= 0:
            raise ValueError("every_s must be positive")
        self.name = name
        self.every_s = every_s
        self.fn = fn
        self.on_stop = on_stop
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread (waiting up to ``timeout`` for a run in progress), then ``on_stop``."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self.on_stop is not None:
            self.on_stop()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.fn()
            except Exception:  # background work must never die: log it and run again next time
                log.exception("%s failed", self.name)
