"""`python -m services.registry`: the registry on gevent's WSGI server (flags override REGISTRY_* env vars).

Why gevent and not a thread pool: blocking queries hold their request open for up to
``--max-wait`` seconds. On waitress every one held an OS thread, and a few hundred of them
plus a heartbeat load made the threads fight over the GIL until the I/O thread starved
(measured: registrations fell from ~550/s to 5–45/s, heartbeats stopped). Under gevent each
request is a greenlet in one OS thread: a waiting query costs a few KiB, and a heartbeat
needs no thread hand-off (~520 µs of CPU per beat against ~715 µs on waitress). This is the
server gunicorn's gevent workers run; one process, because the catalog lives in memory.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()  # before anything imports threading, socket or time

import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

import click  # noqa: E402
import gevent  # noqa: E402
from gevent.pool import Pool  # noqa: E402

from services.common.auth import Credentials  # noqa: E402
from services.common.cli import command, options, parse  # noqa: E402
from services.common.periodic import Periodic  # noqa: E402
from services.common.settings import RegistrySettings  # noqa: E402
from services.registry.gcpolicy import FrozenHeap  # noqa: E402
from services.registry.metrics import time_gc_pauses  # noqa: E402
from services.registry.server import RegistryServer  # noqa: E402

log = logging.getLogger("services.registry")


def _check(params: dict[str, Any]) -> None:
    """What spans several flags (each flag's own range is checked by its option)."""
    if params["heartbeat_interval"] <= 0 or params["critical_after"] < 1 or params["deregister_after"] < 0:
        raise click.UsageError("--heartbeat-interval must be > 0, --critical-after ≥ 1, --deregister-after ≥ 0")
    if params["max_watchers"] < 1 or params["connection_limit"] <= params["max_watchers"]:
        raise click.UsageError("--max-watchers must be ≥ 1 and below --connection-limit")
    if params["store"] == "etcd" and not params["etcd_endpoints"]:
        raise click.UsageError("--store etcd needs --etcd-endpoints http://host:2379[,...]")
    if params["header_timeout"] <= 0 or params["idle_timeout"] <= 0 or params["client_connection_limit"] < 0:
        raise click.UsageError("--header-timeout and --idle-timeout must be > 0, --client-connection-limit ≥ 0")
    if params["operator_token"] and params["operator_token"] in (params["worker_token"], params["token"]):
        raise click.UsageError("--operator-token must differ from --worker-token and --token (one role each)")


def settings_from_args(argv: list[str] | None = None) -> RegistrySettings:
    """Flags > ``REGISTRY_*`` > defaults, validated (bad input: usage and exit 2)."""
    cmd = command("python -m services.registry", options(RegistrySettings), help="COMPASS mesh service registry")
    return RegistrySettings(**parse(cmd, argv, _check).params)


def open_store(settings: RegistrySettings):
    if settings.store == "etcd":
        # Imported here, not at the top: a SQLite registry starts without the etcd modules (and
        # etcd3gw); they load only when --store etcd is chosen.
        from services.registry.etcd_store import EtcdStore

        return EtcdStore(settings.etcd_endpoints, prefix=settings.etcd_prefix)
    from services.registry.store import SQLiteStore

    return SQLiteStore(settings.db)


def _token_mode(settings: RegistrySettings) -> str:
    if Credentials(settings.operator_token, settings.worker_token, settings.token).open:
        return "off (every caller may do anything: README_SERVICES.md 'Security model')"
    if settings.operator_token or settings.worker_token:
        return "operator/worker"
    return "one shared token (its holders are operators)"


def main(argv: list[str] | None = None) -> int:
    settings = settings_from_args(argv)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from services.registry.app import create_app
    from services.registry.store import StoreUnavailable

    try:
        app = create_app(settings, open_store(settings))
    except StoreUnavailable as exc:
        raise SystemExit(f"cannot start: {exc}") from exc
    time_gc_pauses(app.extensions["registry"].metrics)  # registry_gc_pause_seconds: this process's collections
    # The catalog's long-lived objects out of the collector's full passes (services.registry.gcpolicy).
    heap = FrozenHeap()
    heap.freeze()
    freezer = Periodic("gc-freeze", heap.freeze_every, heap.tick)
    freezer.start()
    server = RegistryServer(
        (settings.host, settings.port),
        app,
        header_timeout=settings.header_timeout,
        idle_timeout=settings.idle_timeout,
        client_connection_limit=settings.client_connection_limit,
        spawn=Pool(settings.connection_limit),
        log=None,
        error_log=logging.getLogger("services.registry.http"),
        backlog=2048,
    )
    server.start()  # binds now, so --port 0 knows its port before the ready line
    port = int(server.server_port)
    ready = {"event": "ready", "service": "registry", "pid": os.getpid(), "port": port}
    print(json.dumps({**ready, "base_url": f"http://{settings.host}:{port}"}), flush=True)
    log.info(
        "registry on %s:%s store=%s ttl=%.2fs deregister_after=%.1fs tokens=%s",
        settings.host,
        port,
        settings.store,
        settings.ttl_s,
        settings.deregister_after,
        _token_mode(settings),
    )

    def _stop(signum: int) -> None:
        log.info("signal %d: shutting down", signum)
        # Waiting blocking queries would hold a graceful stop for up to --max-wait: answer them
        # now (clients then move to another replica), and cut whatever still runs after 1 s.
        app.extensions["registry"].catalog.release_waiters()
        gevent.spawn(server.stop, timeout=1.0)

    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, _stop, signum)
    try:
        server.serve_forever()
    finally:
        freezer.stop()
        app.extensions["registry"].stop()
        log.info("registry stopped; heartbeats flushed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
