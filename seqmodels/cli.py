"""Flags every sequence worker adds to the runtime's, with defaults from :class:`~seqmodels.settings.SeqSettings`."""

from __future__ import annotations

import argparse
from dataclasses import replace

from seqmodels.settings import SeqSettings


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def add_sequence_arguments(parser: argparse.ArgumentParser) -> None:
    """``--max-length``, ``--batch-size``, ``--batch-wait-ms``, ``--pll-chunk``, ``--torch-threads``.

    Also raises the runtime's ``--max-batch-items`` default to the sequence API's 100.
    """
    d = SeqSettings()
    parser.set_defaults(max_batch_items=d.max_batch_items)
    group = parser.add_argument_group("sequence model")
    group.add_argument(
        "--max-length",
        type=_positive_int,
        default=d.max_length,
        help="longest sequence accepted, unless the model needs less (default: %(default)s)",
    )
    group.add_argument(
        "--batch-size",
        type=_positive_int,
        default=d.batch_size,
        help="dynamic batching: most sequences per forward pass (default: %(default)s)",
    )
    group.add_argument(
        "--batch-wait-ms",
        type=float,
        default=d.batch_wait_ms,
        help="dynamic batching: how long a request waits for others to join its pass (default: %(default)s)",
    )
    group.add_argument(
        "--pll-chunk",
        type=_positive_int,
        default=d.pll_chunk,
        help="masked copies per forward pass when scoring pseudo-log-likelihood (default: %(default)s)",
    )
    group.add_argument(
        "--torch-threads", type=int, default=d.torch_threads, help="torch intra-op threads; 0 = torch's choice"
    )


def seq_settings_from_args(args: argparse.Namespace) -> SeqSettings:
    """The environment's settings with the sequence flags applied on top."""
    if args.batch_wait_ms < 0:
        raise SystemExit("--batch-wait-ms must not be negative")
    return replace(
        SeqSettings(),
        max_length=args.max_length,
        max_batch_items=args.max_batch_items,
        batch_size=args.batch_size,
        batch_wait_ms=args.batch_wait_ms,
        pll_chunk=args.pll_chunk,
        torch_threads=args.torch_threads,
    )
