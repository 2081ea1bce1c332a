"""Start N replicas of a worker kind on free ports and keep them running.

    python -m services.worker.launch echo --replicas 3 --registry http://127.0.0.1:8500 [-- --latency-ms 20]

Prints one JSON line per replica as it becomes ready (``{"event": "replica", kind, pid,
port, base_url, ...}``), again after each restart. Flags it does not know go to the kind's
module (everything after ``--`` always does). SIGINT/SIGTERM stop every replica cleanly; on
Linux a launcher killed outright (SIGKILL) takes its replicas along: each gets SIGTERM and drains.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from services.client.registry_api import normalize_urls
from services.common.parent_death import with_parent_death_signal
from services.common.settings import WorkerSettings, child_environment
from services.worker.cli import LOG_FORMAT, device_arg
from services.worker.supervisor import RestartPolicy, Supervisor

log = logging.getLogger("services.worker.launch")

# kind → (module run with ``python -m``, arguments that select the model inside it)
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "echo": ("services.worker.echo", ()),
    "compass": ("compass.service.worker", ("--model", "compass")),
    "compass-lite": ("compass.service.worker", ("--model", "compass-lite")),
    "antiberty": ("seqmodels.antiberty", ()),
    "splice": ("seqmodels.splice", ()),
    "codon": ("seqmodels.codon", ()),
    "hf": ("seqmodels.hf", ()),
}


def module_available(module: str) -> bool:
    """Whether ``python -m module`` could start, without importing the module itself."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package raises instead of returning None
        return False


def build_parser(defaults: WorkerSettings | None = None) -> argparse.ArgumentParser:
    defaults = defaults or WorkerSettings()
    parser = argparse.ArgumentParser(
        prog="python -m services.worker.launch",
        description="Start N replicas of a worker kind on free ports; restart crashed ones; stop all on SIGTERM.",
        epilog="Unknown flags (and everything after --) are passed to the kind's module.",
        allow_abbrev=False,
    )
    parser.add_argument("kind", choices=sorted(KINDS), help="worker kind")
    parser.add_argument("--replicas", type=int, default=1, help="number of worker processes (default: %(default)s)")
    parser.add_argument(
        "--registry", action="append", metavar="URL[,URL]", help="registry URL(s) (default: $REGISTRY_URL)"
    )
    parser.add_argument(
        "--device", type=device_arg, default=defaults.device, help="cpu, cuda or cuda:N (default: %(default)s)"
    )
    parser.add_argument("--advertise-host", default=defaults.advertise_host, help="host the registry hands to clients")
    parser.add_argument("--host", default=defaults.host, help="address the workers bind (default: %(default)s)")
    parser.add_argument(
        "--token", default=defaults.token, help="registry token, passed to workers in their environment"
    )
    parser.add_argument(
        "--grace-period",
        type=float,
        default=defaults.drain_timeout + 10.0,
        help="seconds a stopping worker gets to drain before SIGKILL (default: %(default)s)",
    )
    parser.add_argument(
        "--startup-timeout", type=float, default=300.0, help="seconds to wait for a worker's ready line"
    )
    parser.add_argument(
        "--restart-backoff", type=float, default=0.5, help="first restart delay; doubles per fast crash"
    )
    parser.add_argument(
        "--max-fast-crashes", type=int, default=5, help="fast crashes in a row before giving up on a replica"
    )
    parser.add_argument(
        "--stable-after", type=float, default=30.0, help="seconds of uptime after which a crash is not fast"
    )
    parser.add_argument(
        "--log-level", type=str.upper, default=defaults.log_level, choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """The launcher's flags and the rest, which belongs to the kind (order kept; ``--`` honoured)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    return args, extra + passthrough


def child_command(args: argparse.Namespace, extra: Sequence[str]) -> list[str]:
    """``python -m <module> ...`` for one replica: a list of arguments, never a shell string."""
    module, model_args = KINDS[args.kind]
    command = [sys.executable, "-m", module, *model_args, "--port", "0", "--host", args.host, "--device", args.device]
    urls = normalize_urls(args.registry or [], allow_empty=True)
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
    if not args.registry and not WorkerSettings().registry_urls:
        log.warning("no --registry given: the workers run standalone and nobody will find them")
    # The token travels in the environment: a flag would show in every `ps` listing.
    env = child_environment(REGISTRY_TOKEN=args.token) if args.token else None
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
    return supervisor.run()


if __name__ == "__main__":
    raise SystemExit(main())
