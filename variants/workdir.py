"""``python -m variants.workdir --get | --set DIR | --clear``: the node's working directory.

The working directory holds plugins (``model/``, ``embed/``, ``metrics/``, ``vocab/``), runs
(``runs/``) and caches (``cache/``). ``--set`` saves it in the config directory
(``$VARIANTS_CONFIG_DIR``); ``$VARIANTS_WORKDIR`` overrides the saved one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from services.common.cli import command, parse
from services.common.files import atomic_path
from variants.plugins import KINDS
from variants.settings import current_workdir, saved_workdir_file, variant_settings

_OPTIONS = [
    click.Option(["--get"], is_flag=True, help="print the working directory (exit 1 when none is set)"),
    click.Option(
        ["--set", "set_dir"], type=click.Path(file_okay=False), help="save DIR (created, with plugin folders)"
    ),
    click.Option(["--clear"], is_flag=True, help="forget the saved working directory"),
]


def _one_action(params: dict) -> None:
    if sum(bool(params[k]) for k in ("get", "set_dir", "clear")) != 1:
        raise click.UsageError("give exactly one of --get, --set DIR, --clear")


def main(argv: list[str] | None = None) -> int:
    ctx = parse(command("python -m variants.workdir", _OPTIONS, help=__doc__), argv, validate=_one_action)
    settings = variant_settings()
    saved = saved_workdir_file(settings)
    if ctx.params["get"]:
        current = current_workdir(settings)
        if current is None:
            click.echo("no working directory set (python -m variants.workdir --set DIR)", err=True)
            return 1
        click.echo(str(current))
    elif ctx.params["set_dir"]:
        target = Path(ctx.params["set_dir"]).expanduser().resolve()
        for kind in (*KINDS, "runs", "cache"):
            (target / kind).mkdir(parents=True, exist_ok=True)
        saved.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(saved) as tmp:
            Path(tmp).write_text(str(target) + "\n")
        click.echo(str(target))
    else:
        saved.unlink(missing_ok=True)
        click.echo("cleared")
    return 0


if __name__ == "__main__":
    sys.exit(main())
