"""Settings of the mesh, read from the environment. The only module of `services` that reads os.environ.

Command-line flags override these: each entry point builds its argparse defaults from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _env_list(name: str, default: str = "") -> list[str]:
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


@dataclass
class RegistrySettings:
    """Registry server settings (`REGISTRY_*`)."""

    host: str = field(default_factory=lambda: _env("REGISTRY_HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: _env_int("REGISTRY_PORT", 8500))
    db: str = field(default_factory=lambda: _env("REGISTRY_DB", "registry.db"))
    store: str = field(default_factory=lambda: _env("REGISTRY_STORE", "sqlite"))
    etcd_endpoints: list[str] = field(default_factory=lambda: _env_list("REGISTRY_ETCD_ENDPOINTS"))
    # Key prefix in etcd: meshes sharing one cluster keep apart by it.
    etcd_prefix: str = field(default_factory=lambda: _env("REGISTRY_ETCD_PREFIX", "/compass-mesh/"))
    token: str = field(default_factory=lambda: _env("REGISTRY_TOKEN", ""))
    heartbeat_interval: float = field(default_factory=lambda: _env_float("REGISTRY_HEARTBEAT_INTERVAL", 2.0))
    critical_after: int = field(default_factory=lambda: _env_int("REGISTRY_CRITICAL_AFTER", 3))
    deregister_after: float = field(default_factory=lambda: _env_float("REGISTRY_DEREGISTER_AFTER", 60.0))
    # Heartbeat timestamps reach disk in batches this often (registrations are written at once).
    flush_interval: float = field(default_factory=lambda: _env_float("REGISTRY_FLUSH_INTERVAL", 2.0))
    # Blocking queries waiting at once (each is a greenlet, not a thread); past it: 503 + Retry-After.
    max_watchers: int = field(default_factory=lambda: _env_int("REGISTRY_MAX_WATCHERS", 4096))
    max_wait: float = field(default_factory=lambda: _env_float("REGISTRY_MAX_WAIT", 120.0))
    # A woken blocking query waits this long before answering, folding bursts of changes.
    watch_coalesce: float = field(default_factory=lambda: _env_float("REGISTRY_WATCH_COALESCE", 0.1))
    # Open connections served at once (heartbeating workers, clients and their blocking queries).
    connection_limit: int = field(default_factory=lambda: _env_int("REGISTRY_CONNECTION_LIMIT", 16384))
    log_level: str = field(default_factory=lambda: _env("REGISTRY_LOG_LEVEL", "INFO"))

    @property
    def ttl_s(self) -> float:
        return self.critical_after * self.heartbeat_interval


@dataclass
class WorkerSettings:
    """Settings every worker runtime shares (`WORKER_*`, plus `REGISTRY_URL`/`REGISTRY_TOKEN`)."""

    registry_urls: list[str] = field(default_factory=lambda: _env_list("REGISTRY_URL", ""))
    token: str = field(default_factory=lambda: _env("REGISTRY_TOKEN", ""))
    host: str = field(default_factory=lambda: _env("WORKER_HOST", "127.0.0.1"))
    advertise_host: str = field(default_factory=lambda: _env("WORKER_ADVERTISE_HOST", ""))
    port: int = field(default_factory=lambda: _env_int("WORKER_PORT", 0))
    device: str = field(default_factory=lambda: _env("WORKER_DEVICE", "cpu"))
    threads: int = field(default_factory=lambda: _env_int("WORKER_THREADS", 16))
    max_inflight: int = field(default_factory=lambda: _env_int("WORKER_MAX_INFLIGHT", 32))
    max_body_bytes: int = field(default_factory=lambda: _env_int("WORKER_MAX_BODY_BYTES", 16 * 1024 * 1024))
    drain_timeout: float = field(default_factory=lambda: _env_float("WORKER_DRAIN_TIMEOUT", 30.0))
    active_check: bool = field(default_factory=lambda: _env("WORKER_ACTIVE_CHECK", "0") == "1")
    rate_limit_per_min: int = field(default_factory=lambda: _env_int("WORKER_RATE_LIMIT_PER_MIN", 0))
    log_level: str = field(default_factory=lambda: _env("WORKER_LOG_LEVEL", "INFO"))
    max_batch_items: int = field(default_factory=lambda: _env_int("WORKER_MAX_BATCH_ITEMS", 64))
    # Every registry call (register, heartbeat, maintenance, deregister) gives up after this.
    registry_timeout: float = field(default_factory=lambda: _env_float("WORKER_REGISTRY_TIMEOUT", 3.0))
    tags: list[str] = field(default_factory=lambda: _env_list("WORKER_TAGS"))
    weight: int = field(default_factory=lambda: _env_int("WORKER_WEIGHT", 1))


def _env_fallbacks(name: str, default: str) -> dict[str, list[str]]:
    """``"compass=compass-lite;affinity=compass-lite"`` → ``{"compass": ["compass-lite"], ...}``."""
    chains: dict[str, list[str]] = {}
    for rule in os.environ.get(name, default).split(";"):
        primary, _, rest = rule.partition("=")
        if primary.strip() and rest.strip():
            chains[primary.strip()] = [s.strip() for s in rest.split(",") if s.strip()]
    return chains


@dataclass
class ClientSettings:
    """Settings of `services.client` (Router, RegistryClient, batch runner): `REGISTRY_URL`, `CLIENT_*`."""

    registry_urls: list[str] = field(default_factory=lambda: _env_list("REGISTRY_URL", ""))
    # Sent as X-Client-ID (workers rate-limit per client); empty = derived from host and pid.
    client_id: str = field(default_factory=lambda: _env("CLIENT_ID", ""))
    balancer: str = field(default_factory=lambda: _env("CLIENT_BALANCER", "p2c"))
    deadline_s: float = field(default_factory=lambda: _env_float("CLIENT_DEADLINE_S", 30.0))
    connect_timeout_s: float = field(default_factory=lambda: _env_float("CLIENT_CONNECT_TIMEOUT_S", 2.0))
    # Longest wait for one try's answer before moving on (0 = the rest of the deadline).
    try_timeout_s: float = field(default_factory=lambda: _env_float("CLIENT_TRY_TIMEOUT_S", 0.0))
    max_attempts: int = field(default_factory=lambda: _env_int("CLIENT_MAX_ATTEMPTS", 3))
    # Blocking-query wait of the discovery watchers.
    watch_wait_s: float = field(default_factory=lambda: _env_float("CLIENT_WATCH_WAIT_S", 30.0))
    # Per primary service or capability, the services tried when it has nothing usable.
    fallbacks: dict[str, list[str]] = field(
        default_factory=lambda: _env_fallbacks("CLIENT_FALLBACKS", "compass=compass-lite")
    )


def child_environment(**overrides: str) -> dict[str, str]:
    """This process's environment plus ``overrides``, for a child (e.g. a secret kept off its argv)."""
    return {**os.environ, **overrides}
