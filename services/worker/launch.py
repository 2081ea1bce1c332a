"""Start N replicas of a worker kind on free ports and keep them running.

    python -m services.worker.launch echo --replicas 3 --registry http://127.0.0.1:8500 [-- --latency-ms 20]

Prints one JSON line per replica as it becomes ready (``{"event": "replica", kind, pid,
port, base_url, ...}``), again after each restart. Flags it does not know go to the kind's
module (everything after ``--`` always does). SIGINT/SIGTERM stop every replica cleanly; on
Linux a launcher killed outright (SIGKILL) takes its replicas along: each gets SIGTERM and drains.
"""

from __future__ import annotations

import importlib.util
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType, SimpleNamespace

import click

from services.client.registry_api import normalize_urls
from services.common.cli import command, env_settings, options, parse
from services.common.kinds import KINDS
from services.common.parent_death import with_parent_death_signal
from services.common.settings import WorkerSettings, child_environment
from services.worker.cli import LOG_FORMAT
from services.worker.node_agent import NodeAgent, NodeBinding, default_node_name, supervised, valid_node_name
from services.worker.supervisor import RestartPolicy, Supervisor

log = logging.getLogger("services.worker.launch")


def module_available(module: str) -> bool:
    """Whether ``python -m module`` could start, without importing the module itself."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package raises instead of returning None
        return False


def _grace_default() -> float:
    return env_settings(WorkerSettings).drain_timeout + 10.0


LAUNCHER_OPTIONS: list[click.Parameter] = [
    click.Argument(["kind"], type=click.Choice(sorted(KINDS)), metavar="KIND"),
    click.Option(["--replicas"], type=click.IntRange(min=1), default=1, show_default=True, help="worker processes"),
    *options(WorkerSettings, only=("registry_urls", "device", "advertise_host", "host", "token", "log_level")),
    click.Option(
        ["--grace-period"],
        type=float,
        default=_grace_default,
        show_default="--drain-timeout + 10",
        help="seconds a stopping worker gets to drain before SIGKILL",
    ),
    click.Option(["--startup-timeout"], type=float, default=300.0, help="seconds to wait for a worker's ready line"),
    click.Option(["--restart-backoff"], type=float, default=0.5, help="first restart delay; doubles per fast crash"),
    click.Option(
        ["--max-fast-crashes"], type=int, default=5, help="fast crashes in a row before giving up on a replica"
    ),
    click.Option(
        ["--stable-after"], type=float, default=30.0, help="seconds of uptime after which a crash is not fast"
    ),
    click.Option(
        ["--node-agent/--no-node-agent"],
        default=True,
        show_default=True,
        help="beat once per interval for every replica (PUT /nodes/{node}/heartbeat) instead of one heartbeat each",
    ),
    click.Option(["--node"], default="", help="node name for the node agent [default: <host>-<kind>-<pid>]"),
]


def parse_args(argv: Sequence[str] | None) -> tuple[SimpleNamespace, list[str]]:
    """The launcher's flags and the rest, which belongs to the kind (order kept; ``--`` honoured)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    launcher = command(
        "python -m services.worker.launch",
        LAUNCHER_OPTIONS,
        help="Start N replicas of a worker kind on free ports; restart crashed ones; stop all on SIGTERM.\n\n"
        "Unknown flags (and everything after --) are passed to the kind's module.",
        ignore_unknown_options=True,
        allow_extra_args=True,
        allow_interspersed_args=True,
    )
    ctx = parse(launcher, argv)
    return SimpleNamespace(**ctx.params), [*ctx.args, *passthrough]


def child_command(args: SimpleNamespace, extra: Sequence[str]) -> list[str]:
    """``python -m <module> ...`` for one replica: a list of arguments, never a shell string."""
    module, model_args = KINDS[args.kind]
    command = [sys.executable, "-m", module, *model_args, "--port", "0", "--host", args.host, "--device", args.device]
    urls = normalize_urls(args.registry_urls, allow_empty=True)
    if urls:
        command += ["--registry", ",".join(urls)]
    if args.advertise_host:
        command += ["--advertise-host", args.advertise_host]
    return command + list(extra)


def main(argv: Sequence[str] | None = None) -> int:
    args, extra = parse_args(argv)
    logging.basicConfig(level=args.log_level, format=LOG_FORMAT, stream=sys.stderr, force=True)
    module, _ = KINDS[args.kind]
    if not module_available(module):
        log.error(
            "kind %r needs the module %s, which cannot be found (not written or not installed yet)", args.kind, module
        )
        return 2
    if not args.registry_urls:
        log.warning("no --registry given: the workers run standalone and nobody will find them")
    # The token and the node secret travel in the environment: a flag would show in every `ps` listing.
    beats_by_node = args.node_agent and bool(args.registry_urls)
    binding = NodeBinding.new(args.node or default_node_name(args.kind)) if beats_by_node else None
    if binding is not None and not valid_node_name(binding.node):
        log.error("--node %r: node names are 1-128 characters of [A-Za-z0-9._-]", binding.node)
        return 2
    secrets = {**({"REGISTRY_TOKEN": args.token} if args.token else {}), **(binding.environment() if binding else {})}
    env = child_environment(**secrets) if secrets else None
    supervisor = Supervisor(
        args.kind,
        with_parent_death_signal(child_command(args, extra)),
        args.replicas,
        env=env,
        policy=RestartPolicy(
            base_s=args.restart_backoff, stable_after_s=args.stable_after, max_fast_crashes=args.max_fast_crashes
        ),
        grace_s=args.grace_period,
        startup_timeout_s=args.startup_timeout,
    )

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping all replicas", signal.Signals(signum).name)
        supervisor.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("starting %d %s replica(s): %s", args.replicas, args.kind, " ".join(child_command(args, extra)))
    agent = None
    if binding is not None:
        agent = NodeAgent(normalize_urls(args.registry_urls), binding, lambda: supervised(supervisor), token=args.token)
        log.info("node agent for node %s: one beat per interval for all replicas", binding.node)
        agent.start()
    try:
        return supervisor.run()
    finally:
        if agent is not None:
            agent.stop()


if __name__ == "__main__":
    raise SystemExit(main())
