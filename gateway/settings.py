"""Settings of the agent gateway (`GATEWAY_*`): the one place this package reads the environment.

The runtime's own flags (``--port``, ``--registry``, ``--token``, limits) are the worker runtime's
:class:`~services.common.settings.WorkerSettings`; these are the gateway's additions.
"""

from __future__ import annotations

from dataclasses import dataclass

import click

from services.common.cli import env_settings, setting

_POSITIVE = click.FloatRange(min=0.001)
_AT_LEAST_1 = click.IntRange(min=1)


@dataclass
class GatewaySettings:
    """What the gateway adds to the worker runtime's settings."""

    deadline_s: float = setting(
        120.0, "deadline of one routed call, retries and fallbacks included", env="GATEWAY_DEADLINE_S", type=_POSITIVE
    )
    try_timeout_s: float = setting(
        0.0, "longest wait for one try's answer (0 = the rest of the deadline)", env="GATEWAY_TRY_TIMEOUT_S"
    )
    max_items: int = setting(
        100,
        "sequences or inputs per /analyze call (workers cap their own too)",
        env="GATEWAY_MAX_ITEMS",
        type=_AT_LEAST_1,
    )
    max_sequence_chars: int = setting(
        100_000, "longest sequence or SMILES accepted before any worker is asked", env="GATEWAY_MAX_SEQUENCE_CHARS"
    )
    launch_kinds: list[str] = setting(
        (),
        "launcher kinds this gateway may start on its own host for POST /model/{name}/load (off by default)",
        env="GATEWAY_LAUNCH_KINDS",
        flag="--launch-kind",
        metavar="KIND",
    )
    caller_token: str = setting(
        "",
        "stdio MCP only: the credential forwarded to workers for this caller (HTTP callers send their own)",
        env="GATEWAY_CALLER_TOKEN",
        show_default=False,
    )


def gateway_settings() -> GatewaySettings:
    """The gateway's settings from the environment and defaults alone."""
    return env_settings(GatewaySettings)
