"""The COMPASS worker's SQLite records: datasets, training jobs, models and the active model per kind.

The runtime's :class:`services.worker.store.Store` does the storing (WAL, shared by the replicas
on a host); this module adds the COMPASS schema, whose ``jobs`` table is the job runtime's with
the training columns (dataset, model kind, plan, run folder, model id), and the active model.
"""

from __future__ import annotations

import time
from pathlib import Path

from services.worker.store import Store as RecordStore
from services.worker.store import now_iso

__all__ = ["SCHEMA", "Store", "now_iso"]

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


class Store(RecordStore):
    """The COMPASS records (:data:`SCHEMA`) and which model each kind serves."""

    def __init__(self, path: Path, busy_timeout_s: float = 10.0) -> None:
        super().__init__(path, SCHEMA, busy_timeout_s)

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
