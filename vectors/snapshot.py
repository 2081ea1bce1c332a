"""Saved in-process indexes next to the Lite file, so a restart loads them instead of rebuilding.

Why: rebuilding from Lite means a Lite scan plus, for HNSW, a single-threaded build (2.5 min at
100k × 512). A snapshot is the faiss index in faiss's own format (``faiss.write_index`` /
``faiss.read_index``; fingerprints: packed bits in an ``.npz`` read with ``allow_pickle=False``),
the ids and metadata as JSON, and a ``manifest.json`` that says what they hold. Nothing is
unpickled.

When a snapshot may be trusted (each check is needed; any failure means "rebuild from Lite"):

* The manifest is removed *before* each write reaches Lite (:meth:`Snapshots.invalidate`), and a
  new one is written only when no write happened since the rows were copied (the copy's write
  generation, compared under the same lock). So a process killed between a Lite write and the
  next save finds no manifest: a stale index is never loaded, whatever the timing.
* The manifest names the collection's dimension, metric and vector type; the data files with
  their sizes (written and fsynced before the manifest is renamed into place).
* Lite itself must agree: its row count and a SHA-256 of its sorted ids equal the manifest's
  (a scan of the ids only), which catches another program having written the file.

A snapshot of an index kind the collection no longer asks for is loaded and rebuilt in the
background (:mod:`vectors.front`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from vectors.memindex import FingerprintIndex, FloatIndex
from vectors.rows import Rows
from vectors.store import CollectionConfig, MilvusStore

if TYPE_CHECKING:
    from vectors.front import Copy

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"


def ids_digest(ids: Iterable[str]) -> str:
    """SHA-256 of the sorted ids, one per line: what Lite and a snapshot must agree on."""
    h = hashlib.sha256()
    for i in sorted(ids):
        h.update(i.encode())
        h.update(b"\n")
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, data: bytes | dict[str, np.ndarray]) -> int:
    """Write and fsync (the manifest is renamed into place only after its files are on disk); the size."""
    with open(path, "wb") as f:
        if isinstance(data, dict):
            np.savez(f, **data)
        else:
            f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return path.stat().st_size


def _fsync(path: Path) -> int:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
    return path.stat().st_size


class Snapshots:
    """The snapshot folder of one Lite file (``<file>.index/<collection>/``)."""

    def __init__(self, store: MilvusStore) -> None:
        self.store = store
        self.root = Path(store.uri + ".index")
        self.lock = threading.Lock()  # orders manifest removal (writes) against manifest commit (saves)

    def folder(self, name: str) -> Path:
        return self.root / name

    def invalidate(self, copy: Copy) -> None:
        """Before a write reaches Lite: a new write generation, and no manifest that could outlive it."""
        with self.lock:
            copy.gen += 1
            if copy.manifest_present:
                manifest = self.folder(copy.cfg.name) / MANIFEST
                manifest.unlink(missing_ok=True)
                _fsync_dir(manifest.parent)
                copy.manifest_present = False

    def discard(self, name: str) -> None:
        """A collection dropped or created: its snapshot must never be read again."""
        with self.lock:
            folder = self.folder(name)
            (folder / MANIFEST).unlink(missing_ok=True)
            shutil.rmtree(folder, ignore_errors=True)

    def save(self, copy: Copy) -> bool:
        """Write the copy's rows as they are now; False when a write or a retirement overtook the save.

        The faiss index is written while the save holds the collection's write gate and read lock:
        searches go on, writes wait (`write_index` of 100k × 512: 0.15-0.3 s here).
        """
        t0 = time.perf_counter()
        cfg = copy.cfg
        folder = self.folder(cfg.name)
        folder.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex[:12]
        files = {"arrays": f"rows-{token}.npz", "table": f"rows-{token}.json"}
        with copy.write_gate, copy.lock.read():
            gen, rows = copy.gen, copy.rows
            if copy.retired:
                return False
            if isinstance(rows.index, FloatIndex):
                files["faiss"] = f"index-{token}.faiss"
                meta, alive = rows.index.freeze(str(folder / files["faiss"]))
                arrays = {"alive": alive}
            else:
                meta, arrays = rows.index.freeze()
            table = {"ids": list(rows.ids), "metadata": list(rows.metadata)}
            alive_ids = rows.alive_ids()
        sizes = {
            "arrays": _write(folder / files["arrays"], arrays),
            "table": _write(folder / files["table"], json.dumps(table, separators=(",", ":")).encode()),
        }
        if "faiss" in files:
            sizes["faiss"] = _fsync(folder / files["faiss"])
        manifest = {
            "format": FORMAT,
            "collection": cfg.name,
            "dim": cfg.dim,
            "metric": cfg.metric,
            "vector_type": cfg.vector_type,
            "index": meta,
            "positions": len(table["ids"]),
            "row_count": len(alive_ids),
            "ids_sha256": ids_digest(alive_ids),
            "files": files,
            "sizes": sizes,
            "saved_at": time.time(),
        }
        tmp = folder / f"{MANIFEST}.{token}.tmp"
        _write(tmp, json.dumps(manifest, indent=1).encode())
        with self.lock:
            committed = copy.gen == gen and not copy.retired
            if committed:
                os.replace(tmp, folder / MANIFEST)
                _fsync_dir(folder)
                copy.manifest_present = True
                copy.saved_gen = gen
        keep = set(files.values()) if committed else set()
        self._tidy(folder, keep, token if not committed else None)
        if committed:
            log.info("saved %s: %d rows in %.1f s", cfg.name, len(alive_ids), time.perf_counter() - t0)
        return committed

    def _tidy(self, folder: Path, keep: set[str], failed: str | None) -> None:
        """Remove data files no manifest names (a failed save's own, or the previous snapshot's)."""
        current = self._manifest(folder)
        named = set(current["files"].values()) if current else set()
        for path in folder.iterdir():
            stale = path.name not in named and path.name not in keep and path.name != MANIFEST
            if (failed is None and stale) or (failed is not None and failed in path.name):
                path.unlink(missing_ok=True)

    @staticmethod
    def _manifest(folder: Path) -> dict[str, Any] | None:
        try:
            return json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError):
            return None

    def load(self, cfg: CollectionConfig) -> Rows | None:
        """The saved rows when the snapshot provably matches Lite; None (with the reason logged) otherwise."""
        folder = self.folder(cfg.name)
        m = self._manifest(folder)
        if m is None:
            return None
        t0 = time.perf_counter()
        why = self._mismatch(cfg, folder, m)
        log.info("checked the saved index of %s against Milvus Lite in %.1f s", cfg.name, time.perf_counter() - t0)
        if why:
            log.info("not loading the saved index of %s: %s; rebuilding from Milvus Lite", cfg.name, why)
            return None
        try:
            return self._read(folder, m)
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            log.warning("saved index of %s unreadable (%s); rebuilding from Milvus Lite", cfg.name, err)
            return None

    def _mismatch(self, cfg: CollectionConfig, folder: Path, m: dict[str, Any]) -> str:
        want = {"format": FORMAT, "collection": cfg.name, "dim": cfg.dim, "metric": cfg.metric}
        want["vector_type"] = cfg.vector_type
        for key, value in want.items():
            if m.get(key) != value:
                return f"{key} {m.get(key)!r} != {value!r}"
        for role, fname in m["files"].items():
            path = folder / fname
            if not path.is_file() or path.stat().st_size != m["sizes"][role]:
                return f"file {fname} missing or of the wrong size"
        count = self.store.row_count(cfg.name)
        if count != m["row_count"]:
            return f"Lite has {count} rows, the snapshot {m['row_count']}"
        if ids_digest(self.store.ids(cfg.name)) != m["ids_sha256"]:
            return "Lite's ids differ from the snapshot's"
        return ""

    @staticmethod
    def _read(folder: Path, m: dict[str, Any]) -> Rows:
        files = m["files"]
        with np.load(folder / files["arrays"], allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        table = json.loads((folder / files["table"]).read_text())
        ids, metadata = table["ids"], table["metadata"]
        if len(ids) != m["positions"] or len(metadata) != len(ids) or len(arrays["alive"]) != len(ids):
            raise ValueError("row table and index disagree on the number of positions")
        if m["index"]["type"] == "float":
            index: FloatIndex | FingerprintIndex = FloatIndex.thaw(
                m["index"], faiss.read_index(str(folder / files["faiss"])), arrays["alive"]
            )
        else:
            index = FingerprintIndex.thaw(m["index"], arrays)
        alive = index.rows.view()
        where = {ids[p]: int(p) for p in np.flatnonzero(alive)}
        if len(where) != m["row_count"]:
            raise ValueError("alive rows differ from the manifest's count")
        return Rows(index, ids, [md if alive[p] else None for p, md in enumerate(metadata)], where)
