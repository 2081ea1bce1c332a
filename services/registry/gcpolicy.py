"""Keep the catalog's long-lived objects out of the garbage collector's full passes.

The registry is one thread (gevent): while Python's collector runs, no request moves. A full
(generation 2) pass visits every tracked object, and at 10,000 instances the catalog alone is
~150,000 of them (entries, instances, their tags and metadata, owners), plus the indexes and
every loaded module: a pass took 0.5-2.5 s on a busy 2-core machine and came every ~10 s under
200 node beats/s, because each young collection promotes whatever hundreds of in-flight requests
and waiting blocking queries hold at that instant. Measured by ``bench/registry_nodes.py``
(``registry_gc_pause_seconds``): the etcd store's node-beat p99 was those pauses.

:class:`FrozenHeap` moves everything that has survived so far into the permanent generation
(:func:`gc.freeze`), after a young collection so no young cyclic garbage goes with it, every
``freeze_every`` seconds: the automatic full passes then visit only what was allocated since, and
stay short. Memory is still freed at once by reference counting; only cyclic garbage among frozen
objects waits, for one complete collection (unfreeze, collect, freeze) every ``full_every``
seconds: one long pause per ``full_every`` instead of one every few seconds.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

FREEZE_EVERY_S = 30.0
FULL_EVERY_S = 900.0


class FrozenHeap:
    """Call :meth:`tick` periodically (the server does every ``freeze_every``); it freezes or, every
    ``full_every``, collects everything once.

    :param clock: monotonic seconds (a test passes its own).
    """

    def __init__(
        self,
        freeze_every: float = FREEZE_EVERY_S,
        full_every: float = FULL_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.freeze_every = freeze_every
        self.full_every = full_every
        self.clock = clock
        self.freezes = 0
        self.full_collections = 0
        self._last_full = clock()

    def freeze(self) -> None:
        """Young collection, then freeze: what survived so far leaves the collector's passes."""
        gc.collect(1)
        gc.freeze()
        self.freezes += 1

    def tick(self) -> None:
        now = self.clock()
        if now - self._last_full >= self.full_every:
            gc.unfreeze()  # cyclic garbage among once-frozen objects is collected here, and only here
            gc.collect()
            gc.freeze()
            self._last_full = now
            self.full_collections += 1
        else:
            self.freeze()
