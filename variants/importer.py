"""Reading mutation tables (CSV) and sequences (FASTA) into validated rows, before anything is written.

Every row is checked against its template and the alphabet; the first bad row stops the import
with an error naming its line, and nothing of the file is stored (see :class:`ImportOptions`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from variants.alphabet import BUILTIN_VOCABS, Vocab
from variants.db import MutationRow, StoreError, VariantStore
from variants.notation import NotationError, expand, mutations_between

MAX_ROWS = 2_000_000


@dataclass
class ImportOptions:
    """How a table's columns map onto the store.

    :param template: the template id every row refers to (else ``template_column`` names it per row).
    :param mutant_column: notation (``D102Y``, ``W99F:D102Y``), a full sequence, or the window's letters.
    :param window_start: 1-based template position where a window-only mutant column starts.
    :param label_column: the label; ``label`` gives a constant one instead (e.g. a file of binders).
    """

    template: str = ""
    template_column: str = ""
    mutant_column: str = "mutant"
    label_column: str = ""
    label: float | None = None
    label_name: str = ""
    reads_column: str = ""
    fraction_column: str = ""
    nucleotide_column: str = ""
    assay: str = ""
    window_start: int | None = None


def _vocab(store: VariantStore, template_id: str, cache: dict[str, tuple[str, Vocab]], line: int) -> tuple[str, Vocab]:
    if template_id not in cache:
        src = store.source(template_id)
        if src is None:
            raise StoreError(f"line {line}: unknown template {template_id!r}; add it first (store add-source)")
        cache[template_id] = (src["sequence"], BUILTIN_VOCABS.get(src["alphabet"], BUILTIN_VOCABS["protein"]))
    return cache[template_id]


def _number(text: str, what: str, line: int, kind: type = float) -> float | int | None:
    text = text.strip()
    if not text:
        return None
    try:
        return kind(float(text)) if kind is int else float(text)
    except ValueError:
        raise StoreError(f"line {line}: {what} {text!r} is not a number") from None


def parse_csv(text: str, store: VariantStore, opts: ImportOptions) -> list[MutationRow]:
    """Validate every row of a CSV table; raise :class:`StoreError` naming the first bad line."""
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    needed = [
        opts.mutant_column,
        opts.label_column,
        opts.reads_column,
        opts.fraction_column,
        opts.nucleotide_column,
        opts.template_column,
    ]
    missing = [c for c in needed if c and c not in header]
    if missing:
        raise StoreError(f"line 1: column(s) {', '.join(map(repr, missing))} not in the header {header}")
    if not opts.template and not opts.template_column:
        raise StoreError("give a template id (--template) or a template column (--template-column)")
    if not opts.label_column and opts.label is None:
        raise StoreError("give a label column (--label-column) or a constant label (--label)")
    cache: dict[str, tuple[str, Vocab]] = {}
    rows: list[MutationRow] = []
    seen: dict[str, int] = {}
    label_name = opts.label_name or opts.label_column or "label"
    for n, record in enumerate(reader):
        line = n + 2  # the header is line 1
        if len(rows) >= MAX_ROWS:
            raise StoreError(f"line {line}: more than {MAX_ROWS} rows in one import")
        template_id = opts.template or (record.get(opts.template_column) or "").strip()
        template, vocab = _vocab(store, template_id, cache, line)
        mutant = (record.get(opts.mutant_column) or "").strip()
        try:
            sequence = expand(template, mutant, opts.window_start)
        except NotationError as exc:
            raise StoreError(f"line {line}: {exc}") from None
        bad = vocab.bad_letters(sequence)
        if bad:
            raise StoreError(f"line {line}: {mutant!r} has letters outside the {vocab.name} alphabet: {bad!r}")
        label = _number(record[opts.label_column], "label", line) if opts.label_column else opts.label
        row = MutationRow(
            template_id=template_id,
            mutant=mutant,
            sequence=sequence,
            n_mutations=len(mutations_between(template, sequence)) if len(sequence) == len(template) else -1,
            label_name=label_name,
            label=label,  # type: ignore[arg-type]
            reads=_number(record[opts.reads_column], "reads", line, int) if opts.reads_column else None,  # type: ignore[arg-type]
            fraction=_number(record[opts.fraction_column], "fraction", line) if opts.fraction_column else None,
            nucleotide=(record.get(opts.nucleotide_column) or "").strip().upper() if opts.nucleotide_column else "",
            assay=opts.assay,
            line=line,
        )
        if row.key in seen:
            raise StoreError(f"line {line}: duplicate of line {seen[row.key]} ({mutant!r}); nothing was imported")
        seen[row.key] = line
        rows.append(row)
    if not rows:
        raise StoreError("the table has no data rows")
    return rows


def read_fasta(text: str) -> Iterator[tuple[str, str, int]]:
    """``(header, sequence, line)`` of each record; the header's first word is its id."""
    header, parts, start = None, [], 0
    for i, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith(">"):
            if header is not None:
                yield header, "".join(parts), start
            header, parts, start = line[1:].strip(), [], i
        elif header is None:
            raise StoreError(f"line {i}: sequence data before the first '>' header")
        else:
            parts.append("".join(line.split()).upper())
    if header is not None:
        yield header, "".join(parts), start


def import_sources_fasta(store: VariantStore, text: str, file: str, alphabet: str = "protein") -> list[str]:
    """Add each FASTA record as a template (id = first word of the header), all or none."""
    vocab = BUILTIN_VOCABS[alphabet]
    records = list(read_fasta(text))
    if not records:
        raise StoreError(f"{file}: no FASTA records")
    for header, seq, line in records:
        if not header.split():
            raise StoreError(f"line {line}: empty FASTA header")
        bad = vocab.bad_letters(seq)
        if bad or not seq:
            raise StoreError(f"line {line}: {header.split()[0]!r} has letters outside the {alphabet} alphabet: {bad!r}")
    ids = []
    with store.transaction():
        for header, seq, _line in records:
            tid = header.split()[0]
            store.add_source(tid, seq, name=header, alphabet=alphabet, provenance=file)
            ids.append(tid)
    return ids


def fasta_as_csv(text: str) -> str:
    """Variant FASTA (``>id label=1 reads=5``) as a CSV with columns mutant, label, reads."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["mutant", "label", "reads", "name"])
    for header, seq, _line in read_fasta(text):
        fields = dict(part.split("=", 1) for part in header.split()[1:] if "=" in part)
        writer.writerow([seq, fields.get("label", ""), fields.get("reads", ""), header.split()[0]])
    return out.getvalue()


def import_table(store: VariantStore, path: Path | str, opts: ImportOptions, text: str | None = None) -> int:
    """Import a CSV (or variant FASTA) file: validate it all, then store it in one transaction."""
    path = Path(path)
    raw = text if text is not None else path.read_text()
    if path.suffix.lower() in (".fa", ".fasta", ".faa"):
        raw = fasta_as_csv(raw)
        opts = ImportOptions(**{**asdict(opts), "mutant_column": "mutant", "reads_column": "reads"})
        if opts.label is None:
            opts.label_column = "label"
    rows = parse_csv(raw, store, opts)
    digest = hashlib.sha256(raw.encode()).hexdigest()
    return store.add_mutations(rows, file=path.name, sha256=digest, options=json.dumps(asdict(opts)))
