"""The one jittered exponential backoff of the mesh (registry agent, registry watchers, Router retries).

Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): attempt n waits
``U(0, min(cap, base × multiplier**n))``, so clients that lost the same registry or worker at the
same moment do not all come back at the same moment. urllib3's ``Retry`` backoff adds its jitter
on top of a fixed delay and drives only its own retries, so the callers here, which schedule
their own attempts (and tests, which pass a seeded ``random.Random``), use this instead.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff: attempt n waits U(0, min(cap, base × multiplier**n)) seconds."""

    base: float = 0.2
    multiplier: float = 2.0
    cap: float = 10.0

    def ceiling(self, attempt: int) -> float:
        """The longest wait of attempt ``attempt`` (0 = the first); the exponent is clamped, never overflows."""
        return min(self.cap, self.base * self.multiplier ** min(max(0, attempt), 64))

    def delay(self, attempt: int, rng: random.Random) -> float:
        """A wait drawn uniformly below :meth:`ceiling`."""
        return rng.uniform(0.0, self.ceiling(attempt))
