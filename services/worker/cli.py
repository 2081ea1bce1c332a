"""The command line every worker kind shares, so ``--port``/``--registry``/... mean the same everywhere.

A kind's module only adds its own flags and builds its model::

    def main(argv=None) -> int:
        return run_worker_cli(make_model, prog="python -m seqmodels.splice", description=__doc__,
                              add_arguments=add_splice_arguments, argv=argv)
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace

from services.common.settings import WorkerSettings
from services.worker.model import WorkerModel

log = logging.getLogger(__name__)

ModelFactory = Callable[[argparse.Namespace, WorkerSettings], WorkerModel]
_DEVICE_RE = re.compile(r"^(cpu|cuda(:\d+)?)$")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"


def device_arg(value: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``."""
    if not _DEVICE_RE.match(value):
        raise argparse.ArgumentTypeError(f"device must be cpu, cuda or cuda:N, got {value!r}")
    return value


def add_runtime_arguments(parser: argparse.ArgumentParser, defaults: WorkerSettings) -> None:
    """The flags of the runtime; defaults come from the environment via :class:`WorkerSettings`."""
    group = parser.add_argument_group("worker runtime")
    group.add_argument("--host", default=defaults.host, help="address to bind (default: %(default)s)")
    group.add_argument(
        "--port", type=int, default=defaults.port, help="port to bind; 0 picks a free one (default: %(default)s)"
    )
    group.add_argument(
        "--registry",
        action="append",
        metavar="URL[,URL]",
        help="registry URL(s) to register with, tried in turn; repeatable (default: $REGISTRY_URL; none = standalone)",
    )
    group.add_argument(
        "--advertise-host",
        default=defaults.advertise_host,
        help="host the registry hands to clients (default: the bind host)",
    )
    group.add_argument(
        "--token", default=defaults.token, help="registry bearer token (prefer $REGISTRY_TOKEN: flags show in ps)"
    )
    group.add_argument(
        "--device", type=device_arg, default=defaults.device, help="cpu, cuda or cuda:N (default: %(default)s)"
    )
    group.add_argument(
        "--max-inflight",
        type=int,
        default=defaults.max_inflight,
        help="concurrent requests before 503 OVERLOADED (default: %(default)s)",
    )
    group.add_argument(
        "--threads", type=int, default=defaults.threads, help="minimum server threads (default: %(default)s)"
    )
    group.add_argument(
        "--max-body-bytes", type=int, default=defaults.max_body_bytes, help="request body limit (default: %(default)s)"
    )
    group.add_argument(
        "--max-batch-items",
        type=int,
        default=defaults.max_batch_items,
        help="items per /predict/batch (default: %(default)s)",
    )
    group.add_argument(
        "--drain-timeout",
        type=float,
        default=defaults.drain_timeout,
        help="seconds to finish in-flight work on SIGTERM (default: %(default)s)",
    )
    group.add_argument(
        "--rate-limit-per-min",
        type=int,
        default=None,
        help="requests per minute per client, 0 = off (default: the kind's)",
    )
    group.add_argument(
        "--active-check",
        action=argparse.BooleanOptionalAction,
        default=defaults.active_check,
        help="ask the registry to probe /health/ready",
    )
    group.add_argument(
        "--tag", action="append", dest="tags", metavar="TAG", help="registry tag; repeatable (default: $WORKER_TAGS)"
    )
    group.add_argument(
        "--weight", type=int, default=defaults.weight, help="balancing weight 1-1000 (default: %(default)s)"
    )
    group.add_argument(
        "--registry-timeout",
        type=float,
        default=defaults.registry_timeout,
        help="seconds per registry call (default: %(default)s)",
    )
    group.add_argument(
        "--log-level",
        default=defaults.log_level,
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="(default: %(default)s)",
    )


def settings_from_args(args: argparse.Namespace, defaults: WorkerSettings) -> WorkerSettings:
    """The environment's settings with every flag given on the command line applied on top."""
    for name, minimum in (
        ("max_inflight", 1),
        ("max_batch_items", 1),
        ("max_body_bytes", 1),
        ("threads", 1),
        ("weight", 1),
    ):
        if getattr(args, name) < minimum:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least {minimum}")
    if not 0 <= args.port <= 65535:
        raise SystemExit("--port must be between 0 and 65535")
    return replace(
        defaults,
        registry_urls=list(args.registry) if args.registry else list(defaults.registry_urls),
        token=args.token,
        host=args.host,
        advertise_host=args.advertise_host,
        port=args.port,
        device=args.device,
        threads=args.threads,
        max_inflight=args.max_inflight,
        max_body_bytes=args.max_body_bytes,
        max_batch_items=args.max_batch_items,
        drain_timeout=args.drain_timeout,
        active_check=args.active_check,
        tags=list(args.tags) if args.tags else list(defaults.tags),
        weight=args.weight,
        registry_timeout=args.registry_timeout,
        log_level=args.log_level,
    )


def build_parser(
    prog: str,
    description: str | None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    defaults: WorkerSettings | None = None,
) -> argparse.ArgumentParser:
    """A parser with the runtime flags, then the kind's own (``add_arguments``)."""
    parser = argparse.ArgumentParser(prog=prog, description=description, allow_abbrev=False)
    add_runtime_arguments(parser, defaults or WorkerSettings())
    if add_arguments is not None:
        add_arguments(parser)
    return parser


def configure_logging(level: str) -> None:
    """Logs go to stderr: stdout carries only the JSON ready line."""
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr, force=True)


def run_worker_cli(
    make_model: ModelFactory,
    *,
    prog: str,
    description: str | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    argv: Sequence[str] | None = None,
) -> int:
    """Parse flags, build the model with ``make_model(args, settings)`` and serve it until drained."""
    from services.worker.serve import serve

    defaults = WorkerSettings()
    args = build_parser(prog, description, add_arguments, defaults).parse_args(argv)
    settings = settings_from_args(args, defaults)
    configure_logging(settings.log_level)
    model = make_model(args, settings)
    return serve(model, settings, rate_limit_per_min=args.rate_limit_per_min)
