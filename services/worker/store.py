"""One SQLite database (WAL) for a worker's records: jobs, and whatever else its kind keeps.

Every replica on a host may open the same file: WAL lets readers run beside one writer, and a
busy timeout queues writers instead of failing them. Rows come back as plain dicts; columns
named ``*_json`` are stored as JSON text and returned decoded under the name without the suffix.
A kind passes its schema (tables with an ``id`` primary key and a ``created_at`` column);
:func:`services.worker.jobs.jobs_table` gives the job table a new kind can use as is.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from services.common.clock import iso_utc, utc_now
from services.common.envelope import ApiError, ErrorCode


def now_iso() -> str:
    return iso_utc(utc_now())


def _encode(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if key.endswith("_json"):
            out[key] = None if value is None else json.dumps(value, sort_keys=True)
        else:
            out[key] = value
    return out


def _decode(row: sqlite3.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    out: dict[str, Any] = {}
    for key in row.keys():  # noqa: SIM118 - sqlite3.Row is not a mapping
        value = row[key]
        if key.endswith("_json"):
            out[key[: -len("_json")]] = None if value is None else json.loads(value)
        else:
            out[key] = value
    return out


class Store:
    """Thread-safe access to the database (one connection, one lock: the traffic is small)."""

    def __init__(self, path: Path, schema: str, busy_timeout_s: float = 10.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            self._db.executescript(schema)
            names = [r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            # Tables whose rows say when they last changed get ``updated_at`` set on every update.
            self._columns = {t: {c[1] for c in self._db.execute(f"PRAGMA table_info({t})")} for t in names}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _table(self, table: str) -> str:
        if table not in self._columns or "id" not in self._columns[table]:  # never taken from a request; checked
            raise ValueError(f"unknown table {table!r}")
        return table

    def _stamp(self, table: str, fields: dict[str, Any]) -> dict[str, Any]:
        if "updated_at" in self._columns[self._table(table)]:
            fields.setdefault("updated_at", now_iso())
        return _encode(fields)

    def insert(self, table: str, row: dict[str, Any]) -> dict[str, Any]:
        row = _encode(row)
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._lock:
            self._db.execute(f"INSERT INTO {self._table(table)} ({cols}) VALUES ({marks})", list(row.values()))
        return self.get(table, row["id"]) or {}

    def update(self, table: str, row_id: str, **fields: Any) -> dict[str, Any] | None:
        if fields:
            enc = self._stamp(table, fields)
            sets = ", ".join(f"{k} = ?" for k in enc)
            with self._lock:
                self._db.execute(f"UPDATE {table} SET {sets} WHERE id = ?", [*enc.values(), row_id])
        return self.get(table, row_id)

    def update_where(self, table: str, row_id: str, expect: dict[str, Any], **fields: Any) -> bool:
        """Update only while the row still has ``expect`` (compare-and-set between replicas)."""
        enc = self._stamp(table, fields)
        sets = ", ".join(f"{k} = ?" for k in enc)
        cond = " AND ".join(f"{k} IS ?" for k in expect)
        sql = f"UPDATE {table} SET {sets} WHERE id = ? AND {cond}"
        with self._lock:
            cur = self._db.execute(sql, [*enc.values(), row_id, *expect.values()])
        return cur.rowcount == 1

    def get(self, table: str, row_id: str) -> dict[str, Any] | None:
        with self._lock:
            cur = self._db.execute(f"SELECT * FROM {self._table(table)} WHERE id = ?", (row_id,))
            return _decode(cur.fetchone())

    def require(self, table: str, row_id: str, what: str) -> dict[str, Any]:
        """The row, or the API's 404 ``no <what> '<id>'``: every ``GET /<things>/<id>`` answers alike."""
        row = self.get(table, row_id)
        if row is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"no {what} {row_id!r}")
        return row

    def delete(self, table: str, row_id: str) -> bool:
        with self._lock:
            cur = self._db.execute(f"DELETE FROM {self._table(table)} WHERE id = ?", (row_id,))
        return cur.rowcount == 1

    def list(
        self,
        table: str,
        *,
        where: dict[str, Iterable[Any] | Any] | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """Rows newest first and the total count; a ``where`` value that is a list means ``IN``."""
        clauses, params = [], []
        for key, value in (where or {}).items():
            if isinstance(value, list | tuple | set | frozenset):
                values = list(value)
                clauses.append(f"{key} IN ({', '.join('?' for _ in values)})" if values else "0")
                params.extend(values)
            else:
                clauses.append(f"{key} = ?")
                params.append(value)
        cond = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        table = self._table(table)
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM {table}{cond}", params).fetchone()[0]
            cur = self._db.execute(
                f"SELECT * FROM {table}{cond} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                [*params, limit, offset],
            )
            rows = [_decode(r) or {} for r in cur.fetchall()]
        return rows, int(total)
