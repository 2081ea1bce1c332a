"""Durable storage behind the registry catalog.

The catalog keeps the live view in memory (heartbeats are memory-speed); the store makes
every registration, state change and deregistration durable at once, and heartbeat
timestamps in batches. After a restart the catalog is rebuilt from :meth:`Store.load`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from services.common.instance import Instance
from services.registry.ownership import Owner


class StoreUnavailable(RuntimeError):
    """The durable store cannot be reached now; the registry answers 503 so callers go elsewhere."""


@dataclass
class StoredInstance:
    """What survives a restart: the instance, the inputs of its health, and who owns it."""

    instance: Instance
    reported: str = "passing"
    ttl_critical: bool = False
    check_state: str | None = None
    owner: Owner | None = None

    def state_json(self) -> str:
        """The ``state`` column: everything but the instance itself."""
        owner = self.owner.to_dict() if self.owner else None
        state = {"reported": self.reported, "ttl_critical": self.ttl_critical, "check_state": self.check_state}
        return json.dumps({**state, "owner": owner}, allow_nan=False)

    @classmethod
    def from_columns(cls, body: str, state: str, last_heartbeat: str | None) -> StoredInstance:
        inst = Instance.from_dict(json.loads(body))
        if last_heartbeat:
            inst.last_heartbeat = last_heartbeat
        fields = json.loads(state)
        owner = Owner.from_dict(fields.pop("owner", None))
        return cls(
            inst, fields.get("reported", "passing"), bool(fields.get("ttl_critical")), fields.get("check_state"), owner
        )


class Store(Protocol):
    """What the catalog needs from durable storage."""

    # Held across a batch flush so no other write interleaves with it (re-entrant).
    write_lock: threading.RLock

    def load(self) -> tuple[list[StoredInstance], int]:
        """Every stored instance and the last catalog index written."""
        ...

    def put(self, item: StoredInstance, index: int) -> None:
        """Insert or replace one instance (durable when this returns)."""
        ...

    def put_many(self, items: list[StoredInstance], index: int) -> None: ...

    def delete(self, instance_ids: list[str], index: int) -> None: ...

    def touch(self, heartbeats: dict[str, str]) -> None:
        """Write batched ``last_heartbeat`` timestamps (ISO strings) by instance id."""
        ...

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance_id   TEXT PRIMARY KEY,
    service_name  TEXT NOT NULL,
    body          TEXT NOT NULL,
    state         TEXT NOT NULL,
    last_heartbeat TEXT
);
CREATE INDEX IF NOT EXISTS instances_by_name ON instances(service_name);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (node TEXT PRIMARY KEY, secret_sha256 TEXT NOT NULL);
"""


class SQLiteStore:
    """SQLite in WAL mode: a committed write survives kill -9 of the registry.

    ``synchronous=NORMAL`` in WAL mode loses nothing on a process crash (only an OS crash or
    power loss can drop the last transactions); pass ``synchronous="FULL"`` for that too.
    """

    def __init__(self, path: str | Path, synchronous: str = "NORMAL") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self.write_lock = self._lock
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def load(self) -> tuple[list[StoredInstance], int]:
        with self._lock:
            rows = self._db.execute("SELECT body, state, last_heartbeat FROM instances").fetchall()
            meta = self._db.execute("SELECT value FROM meta WHERE key = 'index'").fetchone()
        items = [StoredInstance.from_columns(*row) for row in rows]
        return items, int(meta[0]) if meta else 0

    def put(self, item: StoredInstance, index: int) -> None:
        self.put_many([item], index)

    def put_many(self, items: list[StoredInstance], index: int) -> None:
        rows = [
            (
                it.instance.instance_id,
                it.instance.service_name,
                json.dumps(it.instance.to_dict(), separators=(",", ":"), allow_nan=False),
                it.state_json(),
                it.instance.last_heartbeat,
            )
            for it in items
        ]
        with self._lock, self._tx():
            self._db.executemany("INSERT OR REPLACE INTO instances VALUES (?, ?, ?, ?, ?)", rows)
            self._set_index(index)

    def delete(self, instance_ids: list[str], index: int) -> None:
        with self._lock, self._tx():
            self._db.executemany("DELETE FROM instances WHERE instance_id = ?", [(i,) for i in instance_ids])
            self._set_index(index)

    def touch(self, heartbeats: dict[str, str]) -> None:
        """Never backwards: a row written since the caller's snapshot keeps its newer stamp."""
        if not heartbeats:
            return
        with self._lock, self._tx():
            self._db.executemany(
                "UPDATE instances SET last_heartbeat = ?1 WHERE instance_id = ?2"
                " AND (last_heartbeat IS NULL OR last_heartbeat < ?1)",
                [(ts, iid) for iid, ts in heartbeats.items()],
            )

    # ----- node agents' claims (services.registry.nodes) -----
    def load_nodes(self) -> dict[str, str]:
        """Every claimed node and the digest of its secret."""
        with self._lock:
            return dict(self._db.execute("SELECT node, secret_sha256 FROM nodes").fetchall())

    def put_node(self, node: str, secret_sha256: str) -> None:
        with self._lock, self._tx():
            self._db.execute("INSERT OR REPLACE INTO nodes VALUES (?, ?)", (node, secret_sha256))

    def delete_nodes(self, nodes: list[str]) -> None:
        with self._lock, self._tx():
            self._db.executemany("DELETE FROM nodes WHERE node = ?", [(n,) for n in nodes])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _set_index(self, index: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('index', ?)", (str(index),))

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on error (the connection is in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
