"""Latency percentiles, JSON event lines on stdout, and error kinds."""

from __future__ import annotations

import json
import math
import sys
from typing import Any


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
