"""CLI: ``python -m bench.loadgen heartbeats|clients|compare`` (config: one JSON line on stdin).

See the package docstring (``bench/loadgen/__init__.py``) for the roles and the stdin/stdout protocol.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from .beats import heartbeats_role
from .clients import clients_role
from .compare import compare_role


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in ("heartbeats", "clients", "compare"):
        print("usage: python -m bench.loadgen heartbeats|clients|compare  (config: one JSON line on stdin)")
        return 2
    cfg = json.loads(sys.stdin.readline())
    if argv[0] == "heartbeats":
        asyncio.run(heartbeats_role(cfg))
    elif argv[0] == "clients":
        asyncio.run(clients_role(cfg))
    else:
        compare_role(cfg)
    sys.stdout.flush()
    os._exit(0)  # do not wait for the stdin reader thread or lingering sockets


if __name__ == "__main__":
    sys.exit(main())
