"""MCP over stdio: ``python -m gateway.mcp --registry URL`` (an agent starts it as a subprocess).

It talks to the mesh itself (registry + Router), exactly as a gateway process does; no gateway
needs to run. stdout carries the protocol, logs go to stderr. The caller's credential, forwarded
to the workers, is ``GATEWAY_CALLER_TOKEN`` (stdio has no headers).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from gateway.mcp.tools import build_mcp_server
from gateway.operations import Gateway
from gateway.settings import GatewaySettings
from services.common.cli import LOG_LEVELS, command, from_params, options, parse
from services.common.settings import WorkerSettings


def main(argv: Sequence[str] | None = None) -> int:
    cmd = command(
        "python -m gateway.mcp",
        [
            *options(WorkerSettings, only=("registry_urls", "token")),
            *options(GatewaySettings, exclude=("launch_kinds",)),
            *options(WorkerSettings, only=("log_level",), log_level={"default": "WARNING", "type": LOG_LEVELS}),
        ],
        help="The agent gateway's MCP tools over stdio (the mesh's models as tools for an LLM agent).",
    )
    ctx = parse(cmd, argv)
    worker = from_params(WorkerSettings, ctx.params, WorkerSettings())
    settings = from_params(GatewaySettings, ctx.params, GatewaySettings())
    logging.basicConfig(level=worker.log_level, stream=sys.stderr, force=True)
    if not worker.registry_urls:
        print("python -m gateway.mcp: no registry: pass --registry URL or set REGISTRY_URL", file=sys.stderr)
        return 2
    gateway = Gateway.open(worker.registry_urls, settings, worker.token)
    try:
        build_mcp_server(lambda: gateway, settings.caller_token).run("stdio")
    finally:
        gateway.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
