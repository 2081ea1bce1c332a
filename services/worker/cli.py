"""The command line every worker kind shares, so ``--port``/``--registry``/... mean the same everywhere.

The runtime's flags are the fields of :class:`WorkerSettings`; a kind's module only lists its own
click options and builds its model::

    def main(argv=None) -> int:
        return run_worker_cli(make_model, prog="python -m seqmodels.splice", description=__doc__,
                              options=SPLICE_OPTIONS, argv=argv)
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import click

from services.common.cli import command, from_command_line, from_params, options, parse
from services.common.settings import WorkerSettings
from services.worker.model import WorkerModel

log = logging.getLogger(__name__)

ModelFactory = Callable[[SimpleNamespace, WorkerSettings], WorkerModel]
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"


def worker_command(
    prog: str,
    description: str | None = None,
    kind_options: Sequence[click.Option] = (),
    runtime: dict[str, dict[str, Any]] | None = None,
) -> click.Command:
    """The runtime's options (``runtime[name]`` changes one, e.g. its default), then the kind's."""
    return command(prog, [*options(WorkerSettings, **(runtime or {})), *kind_options], help=description)


def parse_worker_args(
    argv: Sequence[str] | None,
    prog: str = "worker",
    description: str | None = None,
    kind_options: Sequence[click.Option] = (),
    runtime: dict[str, dict[str, Any]] | None = None,
) -> tuple[SimpleNamespace, WorkerSettings, int | None]:
    """Every flag's value by name, the runtime's settings, and a rate limit given on the command line."""
    ctx = parse(worker_command(prog, description, kind_options, runtime), argv)
    settings = from_params(WorkerSettings, ctx.params, WorkerSettings())
    rate_limit = settings.rate_limit_per_min if from_command_line(ctx, "rate_limit_per_min") else None
    return SimpleNamespace(**ctx.params), settings, rate_limit


def configure_logging(level: str) -> None:
    """Logs go to stderr: stdout carries only the JSON ready line."""
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr, force=True)


def run_worker_cli(
    make_model: ModelFactory,
    *,
    prog: str,
    description: str | None = None,
    options: Sequence[click.Option] = (),
    runtime: dict[str, dict[str, Any]] | None = None,
    argv: Sequence[str] | None = None,
) -> int:
    """Parse flags, build the model with ``make_model(args, settings)`` and serve it until drained."""
    from services.worker.serve import serve

    args, settings, rate_limit = parse_worker_args(argv, prog, description, options, runtime)
    configure_logging(settings.log_level)
    model = make_model(args, settings)
    return serve(model, settings, rate_limit_per_min=rate_limit)
