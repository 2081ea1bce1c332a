"""The variant store: SQLite tables ``sources`` (template sequences) and ``mutations`` (variants + labels).

Every mutation row keeps its template id, the notation it was given in, the expanded full variant
sequence, its label (name and value), reads, assay and provenance (which import, which line).
Imports are all-or-nothing: :mod:`variants.importer` validates a whole file first, then
:meth:`VariantStore.add_mutations` writes it in one transaction.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.clock import iso_utc, utc_now
from variants.filters import compile_where

SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    template_id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', sequence TEXT NOT NULL,
    alphabet TEXT NOT NULL DEFAULT 'protein', provenance TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS imports (
    id INTEGER PRIMARY KEY AUTOINCREMENT, file TEXT NOT NULL, sha256 TEXT NOT NULL, rows INTEGER NOT NULL,
    options TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS mutations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    template_id TEXT NOT NULL REFERENCES sources(template_id),
    mutant TEXT NOT NULL, sequence TEXT NOT NULL, n_mutations INTEGER NOT NULL,
    label_name TEXT, label REAL, reads INTEGER, fraction REAL, nucleotide TEXT NOT NULL DEFAULT '',
    assay TEXT NOT NULL DEFAULT '', import_id INTEGER REFERENCES imports(id), source_row INTEGER,
    row_key TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS mutations_template ON mutations(template_id, label_name);
CREATE INDEX IF NOT EXISTS mutations_sequence ON mutations(sequence);
"""


@dataclass(frozen=True)
class MutationRow:
    """One validated row ready to insert (``line`` is where it came from, for error messages)."""

    template_id: str
    mutant: str
    sequence: str
    n_mutations: int
    label_name: str | None
    label: float | None
    reads: int | None
    fraction: float | None
    nucleotide: str
    assay: str
    line: int

    @property
    def key(self) -> str:
        """What makes a row a duplicate: the same measurement of the same molecule in the same assay."""
        parts = (self.template_id, self.sequence, self.nucleotide, self.assay, self.label_name or "", str(self.label))
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


class StoreError(ValueError):
    """Input the store refuses (duplicate rows, unknown template); the message names the row."""


class VariantStore:
    """One SQLite file; short transactions, one connection per store object."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> VariantStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing: an exception rolls every write of the block back."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- sources -----------------------------------------------------------------------------

    def add_source(
        self,
        template_id: str,
        sequence: str,
        *,
        name: str = "",
        alphabet: str = "protein",
        provenance: str = "",
        replace: bool = False,
    ) -> dict[str, Any]:
        """Add a template; re-adding the same sequence is a no-op, a different one needs ``replace``."""
        old = self.source(template_id)
        if old is not None and old["sequence"] != sequence:
            if not replace:
                raise StoreError(f"template {template_id!r} exists with a different sequence")
            if self.count(template_id=template_id):
                raise StoreError(f"template {template_id!r} has mutations: its sequence cannot change")
        self._db.execute(
            "INSERT INTO sources (template_id, name, sequence, alphabet, provenance, created_at) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT(template_id) DO UPDATE SET name=excluded.name, sequence=excluded.sequence, "
            "alphabet=excluded.alphabet, provenance=excluded.provenance",
            (template_id, name, sequence, alphabet, provenance, iso_utc(utc_now())),
        )
        return self.source(template_id)  # type: ignore[return-value]

    def source(self, template_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM sources WHERE template_id = ?", (template_id,)).fetchone()
        return dict(row) if row else None

    def sources(self) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT s.*, (SELECT COUNT(*) FROM mutations m WHERE m.template_id = s.template_id) AS mutations "
            "FROM sources s ORDER BY s.template_id"
        )
        return [dict(r) for r in rows]

    # -- mutations ---------------------------------------------------------------------------

    def add_mutations(self, rows: Sequence[MutationRow], *, file: str, sha256: str, options: str = "{}") -> int:
        """Insert a validated file's rows in one transaction; a duplicate of a stored row fails them all."""
        now = iso_utc(utc_now())
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO imports (file, sha256, rows, options, created_at) VALUES (?,?,?,?,?)",
                (file, sha256, len(rows), options, now),
            )
            import_id = cur.lastrowid
            for row in rows:
                try:
                    db.execute(
                        "INSERT INTO mutations (template_id, mutant, sequence, n_mutations, label_name, label, reads, "
                        "fraction, nucleotide, assay, import_id, source_row, row_key, created_at) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            row.template_id,
                            row.mutant,
                            row.sequence,
                            row.n_mutations,
                            row.label_name,
                            row.label,
                            row.reads,
                            row.fraction,
                            row.nucleotide,
                            row.assay,
                            import_id,
                            row.line,
                            row.key,
                            now,
                        ),
                    )
                except sqlite3.IntegrityError as exc:
                    if "UNIQUE" not in str(exc):
                        raise StoreError(f"line {row.line}: {exc}") from None
                    first = db.execute(
                        "SELECT i.file, m.source_row FROM mutations m JOIN imports i ON i.id = m.import_id "
                        "WHERE m.row_key = ?",
                        (row.key,),
                    ).fetchone()
                    raise StoreError(
                        f"line {row.line}: duplicate row ({row.mutant!r}, assay {row.assay!r}) already in the store "
                        f"from {first['file']} line {first['source_row']}; nothing was imported"
                    ) from None
        return len(rows)

    def count(self, **equals: Any) -> int:
        where = [[k, "=", v] for k, v in equals.items()]
        clause, params = compile_where(where)
        sql = f"SELECT COUNT(*) FROM mutations m JOIN sources s USING (template_id) WHERE {clause}"
        return int(self._db.execute(sql, params).fetchone()[0])

    def select(self, where: Sequence[Any] | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Mutation rows (with their template's sequence as ``template``) matching ``where`` filters."""
        clause, params = compile_where(where)
        sql = (
            "SELECT m.*, s.sequence AS template FROM mutations m JOIN sources s USING (template_id) "
            f"WHERE {clause} ORDER BY m.id"
        )
        if limit is not None:
            sql += " LIMIT ?"
            params = [*params, int(limit)]
        return [dict(r) for r in self._db.execute(sql, params)]

    def summary(self) -> dict[str, Any]:
        """Counts per template, label and assay: what a page shows before training."""
        rows = self._db.execute(
            "SELECT template_id, assay, label_name, label, COUNT(*) AS n, "
            "COUNT(DISTINCT sequence) AS unique_sequences FROM mutations "
            "GROUP BY template_id, assay, label_name, label ORDER BY template_id, assay, label_name, label"
        )
        imports = self._db.execute("SELECT id, file, rows, created_at FROM imports ORDER BY id")
        return {"sources": self.sources(), "groups": [dict(r) for r in rows], "imports": [dict(r) for r in imports]}
