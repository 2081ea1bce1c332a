"""Settings of the mesh: each field is declared once with its flag, environment variable and help.

The declarations are the single source of the command lines (:func:`services.common.cli.options`)
and of library code's environment reads (:func:`services.common.cli.env_settings`): a plain
``WorkerSettings()`` holds the defaults alone, whatever the environment says.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click

from services.common.cli import DEVICE, LOG_LEVELS, setting

# Registry URLs and the bearer token mean the same to every process of the mesh.
_URLS_HELP = "registry URL(s), tried in turn; repeatable, comma-separated"
_TOKEN_HELP = "registry bearer token (prefer the environment: flags show in ps)"


@dataclass
class RegistrySettings:
    """Registry server settings (`REGISTRY_*`)."""

    host: str = setting("127.0.0.1", "bind address", env="REGISTRY_HOST")
    port: int = setting(8500, "port, 0 = any free port", env="REGISTRY_PORT", type=click.IntRange(0, 65535))
    db: str = setting("registry.db", "SQLite file of the sqlite store", env="REGISTRY_DB")
    store: str = setting("sqlite", "catalog store", env="REGISTRY_STORE", type=click.Choice(["sqlite", "etcd"]))
    etcd_endpoints: list[str] = setting((), "etcd URLs, comma-separated", env="REGISTRY_ETCD_ENDPOINTS")
    etcd_prefix: str = setting(
        "/compass-mesh/", "key prefix in etcd (meshes sharing one keep apart)", env="REGISTRY_ETCD_PREFIX"
    )
    token: str = setting(
        "",
        "shared bearer token: stands in for the operator and worker tokens not set (prefer the environment)",
        env="REGISTRY_TOKEN",
        show_default=False,
    )
    operator_token: str = setting(
        "",
        "bearer token that may drain, remove or take over any instance",
        env="REGISTRY_OPERATOR_TOKEN",
        show_default=False,
    )
    worker_token: str = setting(
        "",
        "bearer token that may register instances (and change its own)",
        env="REGISTRY_WORKER_TOKEN",
        show_default=False,
    )
    heartbeat_interval: float = setting(2.0, "seconds between worker heartbeats", env="REGISTRY_HEARTBEAT_INTERVAL")
    critical_after: int = setting(3, "missed heartbeats before critical", env="REGISTRY_CRITICAL_AFTER")
    deregister_after: float = setting(60.0, "seconds critical before removal", env="REGISTRY_DEREGISTER_AFTER")
    flush_interval: float = setting(
        2.0, "seconds between heartbeat flushes (registrations are written at once)", env="REGISTRY_FLUSH_INTERVAL"
    )
    max_watchers: int = setting(
        4096, "blocking queries waiting at once (greenlets); past it: 503", env="REGISTRY_MAX_WATCHERS"
    )
    max_wait: float = setting(120.0, "longest blocking-query wait, seconds", env="REGISTRY_MAX_WAIT")
    watch_coalesce: float = setting(
        0.1, "seconds a woken blocking query waits, folding bursts of changes", env="REGISTRY_WATCH_COALESCE"
    )
    connection_limit: int = setting(16384, "connections served at once", env="REGISTRY_CONNECTION_LIMIT")
    client_connection_limit: int = setting(
        512, "connections one client address may hold open, 0 = no cap", env="REGISTRY_CLIENT_CONNECTION_LIMIT"
    )
    header_timeout: float = setting(
        10.0, "seconds to receive a request's line and headers (and between body reads)", env="REGISTRY_HEADER_TIMEOUT"
    )
    idle_timeout: float = setting(
        75.0, "seconds a kept-alive connection may wait for its next request", env="REGISTRY_IDLE_TIMEOUT"
    )
    log_level: str = setting("INFO", "log level", env="REGISTRY_LOG_LEVEL", type=LOG_LEVELS)

    @property
    def ttl_s(self) -> float:
        return self.critical_after * self.heartbeat_interval


_AT_LEAST_1 = click.IntRange(min=1)


@dataclass
class WorkerSettings:
    """Settings every worker runtime shares (`WORKER_*`, plus `REGISTRY_URL`/`REGISTRY_TOKEN`)."""

    registry_urls: list[str] = setting(
        (), _URLS_HELP + " (none = standalone)", env="REGISTRY_URL", flag="--registry", metavar="URL[,URL]"
    )
    token: str = setting("", _TOKEN_HELP, env="REGISTRY_TOKEN", show_default=False)
    host: str = setting("127.0.0.1", "address to bind", env="WORKER_HOST")
    advertise_host: str = setting(
        "", "host the registry hands to clients (default: the bind host)", env="WORKER_ADVERTISE_HOST"
    )
    port: int = setting(0, "port to bind; 0 picks a free one", env="WORKER_PORT", type=click.IntRange(0, 65535))
    device: str = setting("cpu", "cpu, cuda or cuda:N", env="WORKER_DEVICE", type=DEVICE)
    threads: int = setting(16, "minimum server threads", env="WORKER_THREADS", type=_AT_LEAST_1)
    max_inflight: int = setting(
        32, "concurrent requests before 503 OVERLOADED", env="WORKER_MAX_INFLIGHT", type=_AT_LEAST_1
    )
    max_body_bytes: int = setting(16 * 1024 * 1024, "request body limit", env="WORKER_MAX_BODY_BYTES", type=_AT_LEAST_1)
    drain_timeout: float = setting(30.0, "seconds to finish in-flight work on SIGTERM", env="WORKER_DRAIN_TIMEOUT")
    active_check: bool = setting(False, "ask the registry to probe /health/ready", env="WORKER_ACTIVE_CHECK")
    rate_limit_per_min: int = setting(
        0, "requests per minute per client, 0 = off (unset: the kind's)", env="WORKER_RATE_LIMIT_PER_MIN"
    )
    client_tokens_file: str = setting(
        "",
        "hashes of issued client tokens (python -m services.common.client_tokens); limits key on them, else the peer",
        env="WORKER_CLIENT_TOKENS_FILE",
    )
    log_level: str = setting("INFO", "log level", env="WORKER_LOG_LEVEL", type=LOG_LEVELS)
    max_batch_items: int = setting(64, "items per /predict/batch", env="WORKER_MAX_BATCH_ITEMS", type=_AT_LEAST_1)
    registry_timeout: float = setting(
        3.0, "seconds per registry call (register, heartbeat, maintenance, deregister)", env="WORKER_REGISTRY_TIMEOUT"
    )
    tags: list[str] = setting((), "registry tag; repeatable", env="WORKER_TAGS", flag="--tag", metavar="TAG")
    weight: int = setting(1, "balancing weight 1-1000", env="WORKER_WEIGHT", type=_AT_LEAST_1)


class _Fallbacks(click.ParamType):
    """``"compass=compass-lite;affinity=compass-lite"`` → ``{"compass": ["compass-lite"], ...}``."""

    name = "fallbacks"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dict[str, list[str]]:
        if isinstance(value, Mapping):
            return {key: list(chain) for key, chain in value.items()}
        chains: dict[str, list[str]] = {}
        for rule in str(value).split(";"):
            primary, _, rest = rule.partition("=")
            if primary.strip() and rest.strip():
                chains[primary.strip()] = [s.strip() for s in rest.split(",") if s.strip()]
        return chains


@dataclass
class ClientSettings:
    """Settings of `services.client` (Router, RegistryClient, batch runner): `REGISTRY_URL`, `CLIENT_*`."""

    registry_urls: list[str] = setting((), _URLS_HELP, env="REGISTRY_URL", flag="--registry")
    client_id: str = setting(
        "", "X-Client-ID: a sub-client of the client token's holder; empty: host and pid", env="CLIENT_ID"
    )
    client_token: str = setting(
        "",
        "client token the operator issued (workers count rate limits and cost budgets on it, else on the peer "
        "address); sent as a bearer token on calls to workers (prefer the environment)",
        env="CLIENT_TOKEN",
        show_default=False,
    )
    balancer: str = setting("p2c", "load balancer", env="CLIENT_BALANCER")
    deadline_s: float = setting(30.0, "deadline of a call, retries included", env="CLIENT_DEADLINE_S")
    connect_timeout_s: float = setting(2.0, "TCP connect timeout", env="CLIENT_CONNECT_TIMEOUT_S")
    try_timeout_s: float = setting(
        0.0, "longest wait for one try's answer (0 = the rest of the deadline)", env="CLIENT_TRY_TIMEOUT_S"
    )
    max_attempts: int = setting(3, "tries per service", env="CLIENT_MAX_ATTEMPTS")
    watch_wait_s: float = setting(30.0, "blocking-query wait of the discovery watchers", env="CLIENT_WATCH_WAIT_S")
    fallbacks: dict[str, list[str]] = setting(
        {"compass": ["compass-lite"]},
        "per service or capability, the services tried when it has nothing usable",
        env="CLIENT_FALLBACKS",
        type=_Fallbacks(),
        show_default="compass=compass-lite",
    )


def child_environment(**overrides: str) -> dict[str, str]:
    """This process's environment plus ``overrides``, for a child (e.g. a secret kept off its argv)."""
    return {**os.environ, **overrides}
