"""One SQLite database (WAL) for the worker's datasets, training jobs, models and active model.

Every replica on a host may open the same file: WAL lets readers run beside one writer, and a
busy timeout queues writers instead of failing them. Rows come back as plain dicts; columns
named ``*_json`` are stored as JSON text and returned decoded under the name without the suffix.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from services.common.clock import iso_utc, utc_now

SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, archive_name TEXT, archive_bytes INTEGER, n_files INTEGER,
    extracted_bytes INTEGER, root TEXT, layout TEXT, n_complexes INTEGER, n_index INTEGER,
    n_failed INTEGER, n_skipped INTEGER, data_hash TEXT, owner TEXT, report_json TEXT, error TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    started_at TEXT, finished_at TEXT, dataset_id TEXT, model_kind TEXT, name TEXT, plan_json TEXT,
    device TEXT, owner TEXT, pid INTEGER, pid_started REAL, run_dir TEXT, exit_code INTEGER,
    error TEXT, stop_requested_at TEXT, stop_signal TEXT, attempts INTEGER DEFAULT 0, model_id TEXT,
    progress_json TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created_at);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, file TEXT NOT NULL,
    size_bytes INTEGER, created_at TEXT NOT NULL, source TEXT NOT NULL, job_id TEXT,
    dataset_id TEXT, meta_json TEXT, metrics_json TEXT
);
CREATE TABLE IF NOT EXISTS active (
    kind TEXT PRIMARY KEY, model_id TEXT NOT NULL, updated_at TEXT NOT NULL, version INTEGER NOT NULL
);
"""
TABLES = frozenset({"datasets", "jobs", "models"})


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

    def __init__(self, path: Path, busy_timeout_s: float = 10.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @staticmethod
    def _table(table: str) -> str:
        if table not in TABLES:  # table names are never taken from a request, but check anyway
            raise ValueError(f"unknown table {table!r}")
        return table

    def insert(self, table: str, row: dict[str, Any]) -> dict[str, Any]:
        row = _encode(row)
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._lock:
            self._db.execute(f"INSERT INTO {self._table(table)} ({cols}) VALUES ({marks})", list(row.values()))
        return self.get(table, row["id"]) or {}

    def update(self, table: str, row_id: str, **fields: Any) -> dict[str, Any] | None:
        if fields:
            if table != "models":
                fields.setdefault("updated_at", now_iso())
            enc = _encode(fields)
            sets = ", ".join(f"{k} = ?" for k in enc)
            with self._lock:
                self._db.execute(f"UPDATE {self._table(table)} SET {sets} WHERE id = ?", [*enc.values(), row_id])
        return self.get(table, row_id)

    def update_where(self, table: str, row_id: str, expect: dict[str, Any], **fields: Any) -> bool:
        """Update only while the row still has ``expect`` (compare-and-set between replicas)."""
        fields.setdefault("updated_at", now_iso())
        enc = _encode(fields)
        sets = ", ".join(f"{k} = ?" for k in enc)
        cond = " AND ".join(f"{k} IS ?" for k in expect)
        sql = f"UPDATE {self._table(table)} SET {sets} WHERE id = ? AND {cond}"
        with self._lock:
            cur = self._db.execute(sql, [*enc.values(), row_id, *expect.values()])
        return cur.rowcount == 1

    def get(self, table: str, row_id: str) -> dict[str, Any] | None:
        with self._lock:
            cur = self._db.execute(f"SELECT * FROM {self._table(table)} WHERE id = ?", (row_id,))
            return _decode(cur.fetchone())

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

    # -- the active model per kind ---------------------------------------------------------

    def active(self, kind: str) -> tuple[str | None, int]:
        """``(model_id, version)``; the version grows at every activation so replicas see a switch."""
        with self._lock:
            row = self._db.execute("SELECT model_id, version FROM active WHERE kind = ?", (kind,)).fetchone()
        return (row["model_id"], int(row["version"])) if row else (None, 0)

    def set_active(self, kind: str, model_id: str) -> int:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                _, version = self.active(kind)
                version = max(version + 1, int(time.time() * 1000))
                self._db.execute(
                    "INSERT INTO active (kind, model_id, updated_at, version) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(kind) DO UPDATE SET model_id = excluded.model_id, "
                    "updated_at = excluded.updated_at, version = excluded.version",
                    (kind, model_id, now_iso(), version),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return version

    def active_kinds(self, model_id: str) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT kind FROM active WHERE model_id = ?", (model_id,)).fetchall()
        return [r["kind"] for r in rows]
