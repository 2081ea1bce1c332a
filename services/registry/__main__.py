"""`python -m services.registry`: the registry on waitress (flags override REGISTRY_* env vars)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys

from services.common.settings import RegistrySettings

log = logging.getLogger("services.registry")


def build_parser(defaults: RegistrySettings) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m services.registry", description="COMPASS mesh service registry")
    p.add_argument("--host", default=defaults.host, help="bind address (default %(default)s)")
    p.add_argument("--port", type=int, default=defaults.port, help="port, 0 = any free port (default %(default)s)")
    p.add_argument("--db", default=defaults.db, help="SQLite file of the sqlite store (default %(default)s)")
    p.add_argument("--store", choices=["sqlite", "etcd"], default=defaults.store)
    p.add_argument("--etcd-endpoints", default=",".join(defaults.etcd_endpoints), help="comma-separated etcd URLs")
    p.add_argument("--token", default=defaults.token, help="bearer token required on mutating calls")
    p.add_argument("--heartbeat-interval", type=float, default=defaults.heartbeat_interval, help="seconds")
    p.add_argument(
        "--critical-after", type=int, default=defaults.critical_after, help="missed heartbeats before critical"
    )
    p.add_argument(
        "--deregister-after", type=float, default=defaults.deregister_after, help="seconds critical before removal"
    )
    p.add_argument(
        "--flush-interval", type=float, default=defaults.flush_interval, help="seconds between heartbeat flushes"
    )
    p.add_argument(
        "--threads", type=int, default=defaults.threads, help="WSGI threads (blocking queries hold one each)"
    )
    p.add_argument(
        "--watch-reserve", type=int, default=defaults.watch_reserve, help="threads kept free of blocking queries"
    )
    p.add_argument("--max-wait", type=float, default=defaults.max_wait, help="longest blocking-query wait, seconds")
    p.add_argument(
        "--watch-coalesce", type=float, default=defaults.watch_coalesce, help="seconds a woken blocking query waits"
    )
    p.add_argument("--log-level", default=defaults.log_level)
    return p


def settings_from_args(argv: list[str] | None = None) -> RegistrySettings:
    s = RegistrySettings()
    args = build_parser(s).parse_args(argv)
    for key, value in vars(args).items():
        if key == "etcd_endpoints":
            value = [v.strip() for v in value.split(",") if v.strip()]
        setattr(s, key, value)
    if s.heartbeat_interval <= 0 or s.critical_after < 1 or s.deregister_after < 0:
        raise SystemExit("--heartbeat-interval must be > 0, --critical-after ≥ 1, --deregister-after ≥ 0")
    if s.watch_reserve >= s.threads:
        raise SystemExit("--watch-reserve must be smaller than --threads")
    return s


def open_store(settings: RegistrySettings):
    if settings.store == "etcd":
        raise SystemExit("the etcd store is not available in this build yet; use --store sqlite")
    from services.registry.store import SQLiteStore

    return SQLiteStore(settings.db)


def main(argv: list[str] | None = None) -> int:
    settings = settings_from_args(argv)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from waitress import create_server

    from services.registry.app import create_app

    app = create_app(settings, open_store(settings))
    server = create_server(
        app,
        host=settings.host,
        port=settings.port,
        threads=settings.threads,
        connection_limit=settings.connection_limit,
        channel_timeout=max(300, int(settings.max_wait) + 60),
        asyncore_use_poll=True,
        backlog=2048,
        ident="compass-registry",
    )
    port = int(server.effective_port)
    print(
        json.dumps(
            {
                "event": "ready",
                "service": "registry",
                "pid": os.getpid(),
                "port": port,
                "base_url": f"http://{settings.host}:{port}",
            }
        ),
        flush=True,
    )
    log.info(
        "registry on %s:%s store=%s ttl=%.2fs deregister_after=%.1fs token=%s",
        settings.host,
        port,
        settings.store,
        settings.ttl_s,
        settings.deregister_after,
        "on" if settings.token else "off",
    )

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %d: shutting down", signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        app.extensions["registry"].stop()
        log.info("registry stopped; heartbeats flushed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
