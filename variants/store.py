"""``python -m variants.store``: add templates and import mutation tables into a variant store.

    python -m variants.store add-source --db variants.db --id trastuzumab-vh --sequence EVQL...
    python -m variants.store import --db variants.db --csv mHER_H3_AgPos.csv --template trastuzumab-vh \\
        --mutant-column AASeq --window-start 99 --label-column AgClass --reads-column Count --assay her2-facs
    python -m variants.store summary --db variants.db
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from variants.alphabet import BUILTIN_VOCABS
from variants.db import StoreError, VariantStore
from variants.importer import ImportOptions, import_sources_fasta, import_table

_DB = click.option("--db", "db", required=True, type=click.Path(dir_okay=False), help="the store's SQLite file")


@click.group(name="python -m variants.store", context_settings={"max_content_width": 100})
def cli() -> None:
    """The variant store: templates (sources) and mutation tables (mutations)."""


@cli.command("add-source")
@_DB
@click.option("--id", "template_id", help="template id (with --sequence)")
@click.option("--sequence", default="", help="the template's sequence")
@click.option("--name", default="", help="a readable name")
@click.option("--fasta", type=click.Path(exists=True, dir_okay=False), help="add every record of a FASTA file")
@click.option("--alphabet", type=click.Choice(sorted(BUILTIN_VOCABS)), default="protein", show_default=True)
def add_source(db: str, template_id: str | None, sequence: str, name: str, fasta: str | None, alphabet: str) -> None:
    """Add a template sequence (or every record of a FASTA file)."""
    with VariantStore(db) as store:
        if fasta:
            ids = import_sources_fasta(store, Path(fasta).read_text(), Path(fasta).name, alphabet)
            click.echo(json.dumps({"added": ids}))
            return
        if not template_id or not sequence:
            raise click.UsageError("give --id and --sequence, or --fasta")
        seq = "".join(sequence.split()).upper()
        bad = BUILTIN_VOCABS[alphabet].bad_letters(seq)
        if bad:
            raise StoreError(f"template {template_id!r} has letters outside the {alphabet} alphabet: {bad!r}")
        click.echo(json.dumps(store.add_source(template_id, seq, name=name, alphabet=alphabet, provenance="cli")))


@cli.command("import")
@_DB
@click.option("--csv", "path", required=True, type=click.Path(exists=True, dir_okay=False), help="CSV or FASTA")
@click.option("--template", default="", help="template id of every row")
@click.option("--template-column", default="", help="column naming each row's template")
@click.option("--mutant-column", default="mutant", show_default=True)
@click.option("--window-start", type=click.IntRange(min=1), help="the mutant column is the window from this position")
@click.option("--label-column", default="")
@click.option("--label", type=float, help="a constant label for every row")
@click.option("--label-name", default="", help="the label's name (default: the label column)")
@click.option("--reads-column", default="")
@click.option("--fraction-column", default="")
@click.option("--nucleotide-column", default="")
@click.option("--assay", default="", help="assay name stored with every row")
def import_cmd(db: str, path: str, **kw: object) -> None:
    """Import a mutation table: validated whole, then stored in one transaction (or not at all)."""
    opts = ImportOptions(**kw)  # type: ignore[arg-type]
    with VariantStore(db) as store:
        n = import_table(store, path, opts)
    click.echo(json.dumps({"imported": n, "file": Path(path).name}))


@cli.command("summary")
@_DB
def summary(db: str) -> None:
    """Templates, row counts per label and assay, imports."""
    with VariantStore(db) as store:
        click.echo(json.dumps(store.summary(), indent=2))


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, standalone_mode=False)
    except StoreError as exc:
        click.echo(f"variants.store: {exc}", err=True)
        return 1
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
