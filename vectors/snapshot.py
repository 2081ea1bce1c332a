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
  (a scan of the ids only), which catches another program having written the file. The row count
  is checked before the snapshot is loaded; the ids scan (~5-30 s at 100k rows, Lite iterates in
  Python) runs after it, in the background, while the loaded index already answers searches
  (:meth:`vectors.front.Front.copy`): :meth:`Snapshots.load` returns the digest still to match.

A snapshot of an index kind the collection no longer asks for is loaded and rebuilt in the
background (:mod:`vectors.front`).

Saves must not slow searches down (:meth:`Snapshots.save`): the collection is held (write gate
and read lock: searches go on, writes wait) only while the rows are copied, the faiss index
included (``faiss.clone_index``); the files are written from those copies with no lock held.
The steps that run without the GIL and take long (``faiss.write_index``, fsync, freeing the
copy, removing the previous snapshot's files) run in one thread of low CPU priority (nice
:data:`SAVE_NICE`, Linux), so on a busy machine the request threads get the cores first; the
steps that need the GIL stay in the saver's thread at normal priority (a thread holding the GIL
must not wait for a core) and are cut into short pieces (the ids table is encoded a slice at a time).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

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
# Niceness of the thread that copies and writes snapshot files (searches on a busy machine go first).
# 10, not 19: at 19 a save took 10-23 s on this busy 2-core machine, long enough for the next write
# to overtake it (the save then gives up); at 10 the kernel still prefers the request threads ~9:1.
SAVE_NICE = 10
# Rows per json.dumps call when the ids table is encoded (one call holds the GIL until it returns).
JSON_SLICE = 4096

T = TypeVar("T")
_io_pool: ThreadPoolExecutor | None = None
_io_pool_lock = threading.Lock()


def _lower_priority() -> None:
    """Make the calling thread nice :data:`SAVE_NICE` (Linux sets niceness per thread; elsewhere nothing)."""
    if sys.platform.startswith("linux"):
        tid = threading.get_native_id()
        try:  # never above the process's own niceness (raising a priority needs privileges)
            os.setpriority(os.PRIO_PROCESS, tid, max(SAVE_NICE, os.getpriority(os.PRIO_PROCESS, tid)))
        except OSError as err:  # lowering one's own priority is always allowed; log rather than fail a save
            log.warning("could not lower the snapshot writer's priority: %s", err)


def background_io() -> ThreadPoolExecutor:
    """The one low-priority thread of this process that runs the GIL-free steps of saves."""
    global _io_pool
    with _io_pool_lock:
        if _io_pool is None:
            _io_pool = ThreadPoolExecutor(1, thread_name_prefix="vectors-snapshot-io", initializer=_lower_priority)
        return _io_pool


def in_background(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` in the low-priority thread and wait for it (it should hold no GIL for long)."""
    return background_io().submit(fn, *args).result()


def _now(fn: Callable[..., T], *args: Any) -> Future[T]:
    """``fn`` run here, as a finished future (a save at shutdown: no searches left to make room for)."""
    done: Future[T] = Future()
    try:
        done.set_result(fn(*args))
    except Exception as err:
        done.set_exception(err)
    return done


def ids_digest(ids: Iterable[str]) -> str:
    """SHA-256 of the sorted ids, one per line: what Lite and a snapshot must agree on.

    One join and one hash call (hashlib releases the GIL on large buffers) rather than an update per id.
    The same digest as ``update(id + "\\n")`` per sorted id (the snapshots already on disk).
    """
    ordered = sorted(ids)  # one C call: ~5-15 ms at 100k, less GIL time in all than merging sorted slices
    return hashlib.sha256(("\n".join(ordered) + "\n").encode() if ordered else b"").hexdigest()


def table_json(ids: list[str | None], metadata: list[dict[str, Any] | None]) -> bytes:
    """``{"ids": [...], "metadata": [...]}`` as ``json.dumps`` with compact separators writes it, encoded a
    slice at a time: one call over 100k rows held the GIL for 15-45 ms, a search's whole budget."""

    def array(items: list[Any]) -> str:
        parts = (
            json.dumps(items[i : i + JSON_SLICE], separators=(",", ":"))[1:-1] for i in range(0, len(items), JSON_SLICE)
        )
        return "[" + ",".join(parts) + "]"

    return ('{"ids":' + array(ids) + ',"metadata":' + array(metadata) + "}").encode()


class Saved(NamedTuple):
    """A snapshot that passed the cheap checks: its rows, and the ids digest Lite must still match."""

    rows: Rows
    ids_sha256: str


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, data: bytes | dict[str, np.ndarray], urgent: bool = False) -> int:
    """Write and fsync (the manifest is renamed into place only after its files are on disk); the size.

    The fsync runs in the low-priority thread unless ``urgent``.
    """
    with open(path, "wb") as f:
        if isinstance(data, dict):
            np.savez(f, **data)
        else:
            f.write(data)
        f.flush()
        (os.fsync if urgent else lambda fd: in_background(os.fsync, fd))(f.fileno())
    return path.stat().st_size


def _write_index(holder: list[Any], path: Path) -> int:
    """``faiss.write_index`` of the index in ``holder`` and fsync (neither holds the GIL); the size.

    Run in the low-priority thread, which also drops the last reference to the index (a copy made
    for this save): freeing ~200 MB is work for the kernel too.
    """
    index = holder.pop()
    faiss.write_index(index, str(path))
    del index
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
    return path.stat().st_size


def _unlink(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


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

    def save(self, copy: Copy, urgent: bool = False) -> bool:
        """Write the copy's rows as they are now; False when a write or a retirement overtook the save.

        ``urgent`` (shutdown): every step in the calling thread, at its priority.

        The collection is held (write gate and read lock: searches go on, writes wait) only while
        the rows and the faiss index are copied (``faiss.clone_index`` of 100k × 512 HNSW: 0.3-0.9 s
        here); the files are written from the copies with no lock held, so writes go on meanwhile
        and a write that lands before the commit makes this save give up (the write generation).
        """
        t0 = time.perf_counter()
        cfg = copy.cfg
        folder = self.folder(cfg.name)
        folder.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex[:12]
        files = {"arrays": f"rows-{token}.npz", "table": f"rows-{token}.json"}
        frozen: Any = None
        with copy.write_gate, copy.lock.read():
            gen, rows = copy.gen, copy.rows
            if copy.retired:
                return False
            if isinstance(rows.index, FloatIndex):
                # The copy is made here, at normal priority: the gate makes writes wait for it.
                meta, alive, frozen = rows.index.freeze()
                arrays = {"alive": alive}
            else:
                meta, arrays = rows.index.freeze()
            ids, metadata = list(rows.ids), list(rows.metadata)
            alive_ids = rows.alive_ids()
        held_s = time.perf_counter() - t0
        written: Future[int] | None = None
        if frozen is not None:  # written beside the steps below, at low priority
            files["faiss"] = f"index-{token}.faiss"
            holder, frozen = [frozen], None
            write = _now if urgent else background_io().submit
            written = write(_write_index, holder, folder / files["faiss"])
        try:
            sizes = {
                "arrays": _write(folder / files["arrays"], arrays, urgent),
                "table": _write(folder / files["table"], table_json(ids, metadata), urgent),
            }
            digest = ids_digest(alive_ids)
        except BaseException:
            if written is not None:  # failing anyway: wait only, so that no write goes on after the save
                written.exception()
            raise
        if written is not None:
            sizes["faiss"] = written.result()
        manifest = {
            "format": FORMAT,
            "collection": cfg.name,
            "dim": cfg.dim,
            "metric": cfg.metric,
            "vector_type": cfg.vector_type,
            "index": meta,
            "positions": len(ids),
            "row_count": len(alive_ids),
            "ids_sha256": digest,
            "files": files,
            "sizes": sizes,
            "saved_at": time.time(),
        }
        tmp = folder / f"{MANIFEST}.{token}.tmp"
        _write(tmp, json.dumps(manifest, indent=1).encode(), urgent)
        with self.lock:
            committed = copy.gen == gen and not copy.retired
            if committed:
                os.replace(tmp, folder / MANIFEST)
                _fsync_dir(folder)
                copy.manifest_present = True
                copy.saved_gen = gen
        keep = set(files.values()) if committed else set()
        self._tidy(folder, keep, token if not committed else None, urgent)
        if committed:
            log.info(
                "saved %s: %d rows in %.1f s (collection held %.2f s)",
                cfg.name,
                len(alive_ids),
                time.perf_counter() - t0,
                held_s,
            )
        else:
            log.info("not saving %s: a write came during the save (the next quiet moment saves it)", cfg.name)
        return committed

    def _tidy(self, folder: Path, keep: set[str], failed: str | None, urgent: bool = False) -> None:
        """Remove data files no manifest names (a failed save's own, or the previous snapshot's)."""
        current = self._manifest(folder)
        named = set(current["files"].values()) if current else set()
        doomed = []
        for path in folder.iterdir():
            stale = path.name not in named and path.name not in keep and path.name != MANIFEST
            if (failed is None and stale) or (failed is not None and failed in path.name):
                doomed.append(path)
        if doomed:  # freeing a 200 MB file's pages is work for the kernel: at low priority too
            (_unlink if urgent else lambda paths: in_background(_unlink, paths))(doomed)

    @staticmethod
    def _manifest(folder: Path) -> dict[str, Any] | None:
        try:
            return json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError):
            return None

    def load(self, cfg: CollectionConfig) -> Saved | None:
        """The saved rows when the snapshot passes the cheap checks (format, files, Lite's row count);
        None (with the reason logged) otherwise. The ids digest is left to the caller to check
        against Lite (a scan of every id: too slow to wait for before serving)."""
        folder = self.folder(cfg.name)
        m = self._manifest(folder)
        if m is None:
            return None
        t0 = time.perf_counter()
        why = self._mismatch(cfg, folder, m)
        log.info(
            "checked the saved index of %s against Milvus Lite in %.1f s (format, files, row count; ids next)",
            cfg.name,
            time.perf_counter() - t0,
        )
        if why:
            log.info("not loading the saved index of %s: %s; rebuilding from Milvus Lite", cfg.name, why)
            return None
        try:
            return Saved(self._read(folder, m), m["ids_sha256"])
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            log.warning("saved index of %s unreadable (%s); rebuilding from Milvus Lite", cfg.name, err)
            return None

    def _mismatch(self, cfg: CollectionConfig, folder: Path, m: dict[str, Any]) -> str:
        """Why the snapshot cannot be loaded, from what is quick to check (not the ids: see :meth:`load`)."""
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
