"""The echo worker: answers what it was sent, after a chosen latency, failing at a chosen rate.

It exists to exercise the mesh without a model: Router retries (``--failure-rate``), load
balancing (``--latency-ms``/``--latency-jitter-ms``), draining (a payload's ``sleep_ms``
holds one request open), slow start (``--load-time-s``). Randomness is seeded (``--seed``).

    python -m services.worker.echo --port 0 --registry http://127.0.0.1:8500 --latency-ms 20
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import click

from services.common.envelope import ApiError, ErrorCode
from services.common.settings import WorkerSettings
from services.worker.cli import run_worker_cli
from services.worker.model import UploadedFile, WorkerModel

DISTRIBUTIONS = ("uniform", "normal", "lognormal")
DEFAULT_MAX_SLEEP_MS = 10_000.0


class Latency:
    """Service time in ms: ``mean`` with ``jitter`` as the spread of the chosen distribution.

    uniform: mean ± jitter; normal: σ = jitter; lognormal: mean and standard deviation
    equal to mean and jitter (a long right tail, like real inference). Never negative.
    """

    def __init__(self, mean_ms: float = 0.0, jitter_ms: float = 0.0, dist: str = "uniform") -> None:
        if mean_ms < 0 or jitter_ms < 0:
            raise ValueError("latency mean and jitter must not be negative")
        if dist not in DISTRIBUTIONS:
            raise ValueError(f"latency distribution must be one of {', '.join(DISTRIBUTIONS)}")
        self.mean_ms = mean_ms
        self.jitter_ms = jitter_ms
        self.dist = dist

    def draw(self, rng: random.Random) -> float:
        mean, jitter = self.mean_ms, self.jitter_ms
        if jitter == 0 or (mean == 0 and self.dist == "lognormal"):
            return mean
        if self.dist == "uniform":
            value = rng.uniform(mean - jitter, mean + jitter)
        elif self.dist == "normal":
            value = rng.gauss(mean, jitter)
        else:
            sigma2 = math.log1p((jitter / mean) ** 2)
            value = rng.lognormvariate(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))
        return max(0.0, value)


class EchoModel(WorkerModel):
    """Echoes the request body back with who served it."""

    service_name = "echo"
    version = "1.0.0"

    def __init__(
        self,
        latency: Latency | None = None,
        *,
        failure_rate: float = 0.0,
        seed: int | None = None,
        max_sleep_ms: float = DEFAULT_MAX_SLEEP_MS,
        load_time_s: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("failure rate must be between 0 and 1")
        self.capabilities = ["echo"]
        self.models = ["echo-1"]
        self.latency = latency or Latency()
        self.failure_rate = failure_rate
        self.max_sleep_ms = max_sleep_ms
        self.load_time_s = load_time_s
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()  # one seeded sequence, whatever the thread interleaving
        self._sleep = sleep

    def limits(self) -> dict[str, Any]:
        return {"max_sleep_ms": self.max_sleep_ms}

    def load(self) -> None:
        """Pretend to load weights for ``load_time_s`` (tests of MODEL_NOT_LOADED and slow starts)."""
        if self.load_time_s > 0:
            self._sleep(self.load_time_s)

    def _requested_sleep_ms(self, payload: dict[str, Any]) -> float:
        value = payload.get("sleep_ms", 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ApiError(ErrorCode.INVALID_REQUEST, "'sleep_ms' must be a non-negative number of milliseconds")
        return min(float(value), self.max_sleep_ms)

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        if payload.get("fail"):
            raise ApiError(ErrorCode.PREDICTION_FAILED, "failure requested by the payload ('fail': true)")
        requested = self._requested_sleep_ms(payload)
        with self._rng_lock:
            delay_ms = self.latency.draw(self._rng)
            fails = self.failure_rate > 0 and self._rng.random() < self.failure_rate
        delay_ms = min(delay_ms + requested, self.max_sleep_ms)
        if delay_ms > 0:
            self._sleep(delay_ms / 1000.0)
        if fails:
            raise ApiError(ErrorCode.PREDICTION_FAILED, f"injected failure (failure rate {self.failure_rate:g})")
        return {
            "echo": _jsonable(payload),
            "task_type": payload.get("task_type"),
            "served_by": self.identity.served_by() if self.identity else None,
            "latency_ms": round(delay_ms, 3),
        }


def _jsonable(payload: dict[str, Any]) -> dict[str, Any]:
    """Multipart files are echoed as their name and size, not their bytes."""
    return {
        key: {"filename": value.filename, "size": len(value.data)} if isinstance(value, UploadedFile) else value
        for key, value in payload.items()
    }


ECHO_OPTIONS = [
    click.Option(["--latency-ms"], type=float, default=0.0, show_default=True, help="mean service time"),
    click.Option(
        ["--latency-jitter-ms"], type=float, default=0.0, show_default=True, help="spread of the service time"
    ),
    click.Option(["--latency-dist"], type=click.Choice(DISTRIBUTIONS), default="uniform", show_default=True),
    click.Option(
        ["--failure-rate"], type=float, default=0.0, help="fraction of requests that fail with 500 PREDICTION_FAILED"
    ),
    click.Option(["--seed"], type=int, default=None, help="seed of the latency and failure draws"),
    click.Option(
        ["--max-sleep-ms"], type=float, default=DEFAULT_MAX_SLEEP_MS, help="cap on one request's latency incl. sleep_ms"
    ),
    click.Option(["--load-time-s"], type=float, default=0.0, help="simulated model load time before ready"),
]


def make_echo_model(args: SimpleNamespace, _settings: WorkerSettings) -> EchoModel:
    try:
        return EchoModel(
            Latency(args.latency_ms, args.latency_jitter_ms, args.latency_dist),
            failure_rate=args.failure_rate,
            seed=args.seed,
            max_sleep_ms=args.max_sleep_ms,
            load_time_s=args.load_time_s,
        )
    except ValueError as exc:
        raise SystemExit(f"echo: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    return run_worker_cli(
        make_echo_model,
        prog="python -m services.worker.echo",
        description="Echo worker: answers /predict with its input (for tests and benchmarks).",
        options=ECHO_OPTIONS,
        argv=argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
