"""Every sequence worker is a runnable module with --help and the shared flags; the launcher knows them."""

from __future__ import annotations

import importlib

import pytest

from seqmodels.cli import SEQUENCE_OPTIONS, SEQUENCE_RUNTIME, seq_settings
from services.worker.cli import parse_worker_args
from services.worker.launch import KINDS, module_available


@pytest.mark.parametrize("kind", ["antiberty", "splice", "codon", "hf"])
def test_each_kind_has_help_with_the_runtime_and_sequence_flags(kind, capsys) -> None:
    module = importlib.import_module(f"seqmodels.{kind}")
    with pytest.raises(SystemExit) as info:
        module.main(["--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    assert f"python -m seqmodels.{kind}" in out and "--registry" in out and "--batch-size" in out
    assert KINDS[kind][0] == f"seqmodels.{kind}" and module_available(KINDS[kind][0])


def parse(*argv: str):
    return parse_worker_args(list(argv), "x", kind_options=SEQUENCE_OPTIONS, runtime=SEQUENCE_RUNTIME)


def test_flags_become_settings_and_raise_the_batch_item_limit_to_100(monkeypatch) -> None:
    args, worker, _ = parse()
    assert args.max_batch_items == 100 == worker.max_batch_items
    assert seq_settings(args).rate_limit_per_min == 100, "the runtime's unset rate limit is not the kind's"
    settings = seq_settings(parse("--batch-size", "4", "--batch-wait-ms", "0", "--max-length", "9")[0])
    assert (settings.batch_size, settings.batch_wait_ms, settings.max_length) == (4, 0.0, 9)
    with pytest.raises(SystemExit):
        parse("--batch-size", "0")
    with pytest.raises(SystemExit):
        parse("--batch-wait-ms", "-1")
    monkeypatch.setenv("SEQMODELS_MAX_BATCH_ITEMS", "7")
    assert parse()[1].max_batch_items == 7


def test_importing_the_package_pins_hugging_face_offline() -> None:
    import os

    import seqmodels  # noqa: F401

    assert os.environ["HF_HUB_OFFLINE"] in {"1", "true", "True"}
