"""Flags every sequence worker adds to the runtime's: the :class:`SeqSettings` fields a kind shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from seqmodels.settings import SeqSettings
from services.common.cli import from_params, options
from services.worker.cli import ModelFactory, run_worker_cli

_SHARED = (
    "max_length",
    "batch_size",
    "batch_wait_ms",
    "pll_chunk",
    "torch_threads",
    "max_request_cost",
    "max_client_cost",
    "pass_residues",
    "express_residues",
)
SEQUENCE_OPTIONS = options(SeqSettings, only=_SHARED)
_FROM_FLAGS = (*_SHARED, "max_batch_items", "codon_host")
# The sequence API takes up to 100 items per batch: the runtime's --max-batch-items rises to it.
SEQUENCE_RUNTIME: dict[str, dict[str, Any]] = {
    "max_batch_items": {"default": 100, "envvar": ["SEQMODELS_MAX_BATCH_ITEMS", "WORKER_MAX_BATCH_ITEMS"]}
}


def seq_settings(args: Any) -> SeqSettings:
    """The environment's settings with the sequence flags applied on top.

    Only these: the runtime's ``rate_limit_per_min`` is not the kind's default of the same name.
    """
    given = vars(args)
    return from_params(SeqSettings, {name: given[name] for name in _FROM_FLAGS if name in given})


def run_sequence_worker(
    make_model: ModelFactory,
    *,
    prog: str,
    description: str,
    options: Sequence[click.Option] = (),
    argv: Sequence[str] | None = None,
) -> int:
    """:func:`run_worker_cli` with the sequence flags, then the kind's ``options``."""
    return run_worker_cli(
        make_model,
        prog=prog,
        description=description,
        options=[*SEQUENCE_OPTIONS, *options],
        runtime=SEQUENCE_RUNTIME,
        argv=argv,
    )
