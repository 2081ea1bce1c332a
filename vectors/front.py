"""The in-process index in front of a Milvus Lite file: Lite keeps the data, memory answers the searches.

Why: Milvus Lite walks every row in Python on each search (see :mod:`vectors.memindex`), ~0.5 s
at 10k rows, whatever its index. With a Lite URI the service therefore keeps, per collection, a
copy of the ids, metadata and vectors in a faiss index (fingerprints: packed bits) and searches
that; with a Milvus server URI there is no front and searches go to the server.

* Durability: every write goes to Lite first and reaches memory only once Lite has accepted it,
  under the collection's write lock (so memory applies writes in Lite's order). A process that
  dies loses nothing: on start the copy comes from a saved snapshot that provably matches Lite
  (:mod:`vectors.snapshot`), else it is rebuilt from Lite.
* Start-up: a snapshot that passes the quick checks answers at once; the scan of Lite's ids that
  completes the proof runs in the background (:class:`IdCheck`). Searches and writes go on
  meanwhile: the ids a write touches are left out of the comparison (:meth:`IdCheck.touch`);
  index changes, compaction and drops wait for it (:meth:`Front.settled`). A mismatch drops the
  snapshot and rebuilds the copy from Lite, as a refused snapshot does at start.
* Concurrency: a reader-writer lock per collection (:mod:`vectors.rwlock`): searches run side by
  side (faiss releases the GIL), writes alone.
* No stalls: a rebuild (compaction once dead rows pile up, ``PUT /index``, HNSW after a start
  from Lite) copies the alive rows under the read lock, builds the new index with no lock held
  while the old one keeps answering, replays the writes that arrived meanwhile, and swaps under
  the write lock (:meth:`Front.rebuild`).
* Filters are evaluated here on the copy (:mod:`vectors.rowfilter`, Lite's semantics) and given
  to faiss as a bitmap of allowed rows; fingerprints are exact Tanimoto against every row.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.common.envelope import ApiError, ErrorCode
from services.worker.limits import OVERLOADED_RETRY_AFTER_S
from vectors import rowfilter
from vectors.memindex import FloatIndex
from vectors.rows import Op, Rows, new_index, op_ids, public_vector
from vectors.rwlock import RWLock
from vectors.snapshot import MANIFEST, Snapshots, ids_digest
from vectors.store import CollectionConfig, MilvusStore

log = logging.getLogger(__name__)

MASK_CACHE = 32
# Rebuild without dead rows once they are this share of all rows (and at least MIN_DEAD).
DEAD_SHARE = 0.25
MIN_DEAD = 1024
# A rebuild replays writes that arrived during its build outside the lock until this few are left.
REPLAY_UNDER_LOCK = 64
LABELS = {"approximate": "HNSW", "exact": "FLAT", "fingerprint": "TANIMOTO"}
# How long an index change, compaction or drop waits for the background ids check of a loaded
# snapshot before it is answered 503 OVERLOADED (retryable): the scan takes ~5-30 s per 100k rows
# on a busy 2-core machine. Inserts, upserts and deletes do not wait for it.
CHECK_WAIT_S = 30.0


@dataclass(eq=False)
class IdCheck:
    """The background scan of Lite's ids against a loaded snapshot's ids, and how far it got.

    Why in the background: Lite iterates its ids in Python (~5-30 s at 100k rows); the manifest
    protocol already rules out this process's own writes, the scan only catches another program
    having written the file, so the loaded index may answer searches meanwhile.

    Writes go on meanwhile too. Each one names its ids here before it reaches Lite
    (:meth:`touch`), and those ids are left out on both sides of the comparison: a scan that
    passes an id before or after a write to it proves nothing either way, and every other id must
    be in Lite exactly as often as in the snapshot.
    """

    digest: str  # the manifest's SHA-256 of the sorted ids
    row_count: int
    loaded: list[str] = field(default_factory=list)  # the snapshot's alive ids (dropped once checked)
    touched: set[str] = field(default_factory=set)  # ids written since the load
    state: str = "queued"  # then "running" (the scan), then "passed" or "refused"
    reason: str = ""
    ids_checked: int = 0
    started: float | None = None
    seconds: float | None = None
    done: threading.Event = field(default_factory=threading.Event)  # the check (and any rebuild) is over: writes go on

    def count(self, ids: Iterable[str], stop: threading.Event) -> Iterator[str]:
        """``ids``, counted as they pass (the progress reported by :meth:`describe`); cut short by ``stop``
        (a shutdown must not wait for a scan of Lite, nor close Lite under one)."""
        for i in ids:
            if stop.is_set():
                raise RuntimeError("the worker is shutting down")
            self.ids_checked += 1
            yield i

    def touch(self, ids: Iterable[str]) -> None:
        """A write to these ids is about to reach Lite (the caller holds the collection's write lock)."""
        if not self.done.is_set():
            self.touched.update(ids)

    def compare(self, scanned: list[str]) -> str:
        """Why Lite's ids (``scanned``) do not prove the snapshot; '' when they do."""
        if ids_digest(self.loaded) != self.digest:
            return "the snapshot's ids table differs from its manifest"
        touched = set(self.touched)  # a copy: writes may add to it meanwhile (their ids were not scanned yet)
        lite = sorted(i for i in scanned if i not in touched)  # duplicates in Lite count: sorted lists, not sets
        if lite != sorted(i for i in self.loaded if i not in touched):
            return "Lite's ids differ from the snapshot's"
        return ""

    def begin(self) -> None:
        self.state, self.started = "running", time.monotonic()

    def finish(self, why: str) -> None:
        self.state, self.reason = ("refused", why) if why else ("passed", "")
        self.loaded = []
        self.seconds = time.monotonic() - (self.started or time.monotonic())

    def describe(self) -> dict[str, Any]:
        running = time.monotonic() - self.started if self.started is not None else 0.0
        seconds = self.seconds if self.seconds is not None else running
        out = {"state": self.state, "ids_checked": self.ids_checked, "row_count": self.row_count}
        return {**out, "seconds": round(seconds, 1), **({"reason": self.reason} if self.reason else {})}


@dataclass(eq=False)
class Copy:
    """One collection in memory: its :class:`Rows`, its locks, and what its snapshot knows."""

    cfg: CollectionConfig
    rows: Rows
    lock: RWLock = field(default_factory=RWLock)
    gen: int = 0  # write generation: bumped before each write reaches Lite
    saved_gen: int = -1  # the generation the manifest on disk describes
    manifest_present: bool = False
    retired: bool = False  # dropped, or out of step with Lite: never saved again
    version: int = 0  # bumped on every change in memory (the filter cache's key)
    pending: list[Op] | None = None  # writes since a rebuild copied the rows, to replay onto the new ones
    building: bool = False
    last_write: float = 0.0
    build_lock: threading.Lock = field(default_factory=threading.Lock)
    write_gate: threading.Lock = field(default_factory=threading.Lock)  # writers pass it first; a save holds it
    save_lock: threading.Lock = field(default_factory=threading.Lock)
    masks: OrderedDict[str, np.ndarray] = field(default_factory=OrderedDict)
    mask_lock: threading.Lock = field(default_factory=threading.Lock)
    check: IdCheck | None = None  # loaded from a snapshot: the ids check against Lite
    proven: bool = True  # memory known to mirror Lite: filled from Lite, or a snapshot whose ids check passed

    @property
    def index(self) -> Any:
        return self.rows.index

    @contextmanager
    def writing(self) -> Iterator[None]:
        """The write lock, taken through the gate a save holds: a writer waiting for a save waits at
        the gate, not in the lock, so it does not hold back searches (the lock prefers writers)."""
        with self.write_gate, self.lock.write():
            yield

    def taken(self, ids: list[str]) -> list[str]:
        return self.rows.taken(ids)

    def apply(self, op: Op) -> Any:
        """A write Lite accepted, in memory (the caller holds the write lock)."""
        if self.pending is not None:
            self.pending.append(op)
        self.version += 1
        self.last_write = time.monotonic()
        return self.rows.apply(op)

    def crowded(self) -> bool:
        return self.index.rows.dead >= max(MIN_DEAD, DEAD_SHARE * self.index.rows.n)

    def mask(self, conditions: Any) -> np.ndarray | None:
        """The rows a filter allows, cached per filter until the next change (caller holds the read lock)."""
        key = f"{self.version}:{conditions!r}"
        with self.mask_lock:
            cached = self.masks.get(key)
        if cached is None:
            cached = rowfilter.mask(conditions, self.rows.ids, self.rows.metadata)
            if cached is None:
                return None
            with self.mask_lock:
                self.masks[key] = cached
                while len(self.masks) > MASK_CACHE:
                    self.masks.popitem(last=False)
        return cached


class Front:
    """The in-memory copies of one Lite file's collections; see the module docstring."""

    def __init__(self, store: MilvusStore) -> None:
        self.store = store
        self.snapshots = Snapshots(store)
        self._copies: dict[str, Copy] = {}
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._saver: threading.Thread | None = None
        # One thread checks the loaded snapshots' ids, one collection after the other: the scans are
        # Python under the GIL, so side by side they would only all finish late (writes wait for them).
        self._checker = ThreadPoolExecutor(1, thread_name_prefix="vectors-ids-check")

    # -- copies -----------------------------------------------------------------------------------

    def copy(self, cfg: CollectionConfig) -> Copy:
        """The collection's copy, from its snapshot or Lite when this process has none yet."""
        with self._lock:
            found = self._copies.get(cfg.name)
            gate = self._loading.setdefault(cfg.name, threading.Lock())
        if found is not None:
            return found
        with gate:  # one loader per collection; others wait for it
            with self._lock:
                found = self._copies.get(cfg.name)
            if found is None:
                found = self._load(cfg)
                with self._lock:
                    self._copies[cfg.name] = found
                if found.check is not None:
                    self._check_later(found)
                if not found.rows.matches(cfg):
                    self.rebuild_later(found)
        return found

    def _load(self, cfg: CollectionConfig) -> Copy:
        t0 = time.perf_counter()
        present = (self.snapshots.folder(cfg.name) / MANIFEST).exists()
        saved = self.snapshots.load(cfg) if present else None
        if saved is not None:
            log.info(
                "loaded %s from its saved index: %d rows in %.1f s",
                cfg.name,
                len(saved.rows.where),
                time.perf_counter() - t0,
            )
            check = IdCheck(saved.ids_sha256, len(saved.rows.where), loaded=saved.rows.alive_ids())
            return Copy(cfg, saved.rows, saved_gen=0, manifest_present=True, check=check, proven=False)
        return self._from_lite(cfg, present)

    def _from_lite(self, cfg: CollectionConfig, present: bool) -> Copy:
        """A copy filled by a scan of Lite (no usable snapshot)."""
        t0 = time.perf_counter()
        # From Lite an HNSW collection first gets FLAT (seconds to fill): it answers, exactly, while HNSW builds.
        rows = Rows(new_index(cfg, "exact" if cfg.vector_type == "float" else None))
        for batch in self.store.scan(cfg.name):
            rows.add([{**r, "vector": public_vector(cfg, r["vector"])} for r in batch])
        log.info("rebuilt %s from Milvus Lite: %d rows in %.1f s", cfg.name, len(rows.where), time.perf_counter() - t0)
        self._kick.set()  # worth saving once built
        return Copy(cfg, rows, manifest_present=present)

    # -- the background ids check of a loaded snapshot --------------------------------------------

    def _check_later(self, copy: Copy) -> None:
        """Queue the copy's ids check (one thread checks them all, one after the other)."""
        self._checker.submit(self._check_ids, copy)

    def _check_ids(self, copy: Copy) -> None:
        """Lite's ids against the loaded snapshot's; on a mismatch the copy is rebuilt from Lite.

        The loaded index answers searches and takes writes meanwhile (:class:`IdCheck`); index
        changes, compaction and drops wait until this ends (:meth:`settled`).
        """
        check, name = copy.check, copy.cfg.name
        assert check is not None
        check.begin()
        try:
            why = self._ids_mismatch(name, check)
            check.finish(why)
            copy.proven = not why
            if not why:
                log.info(
                    "ids of %s match its saved index: %d checked in %.1f s", name, check.ids_checked, check.seconds
                )
            elif self._stop.is_set():  # shutting down (the store may be closed): the next start checks again
                log.info("check of the saved index of %s cut short by the shutdown: %s", name, why)
            else:
                log.warning("not keeping the saved index of %s: %s; rebuilding from Milvus Lite", name, why)
                self._replace_from_lite(copy)
        except Exception:
            log.exception("rebuilding %s from Milvus Lite failed; its next use rebuilds it", name)
        finally:
            check.done.set()

    def _ids_mismatch(self, name: str, check: IdCheck) -> str:
        """Why Lite's ids do not prove the snapshot ('' when they match its digest)."""
        if self._stop.is_set():
            return "not checked: the worker is shutting down"
        try:
            scanned = list(check.count(self.store.ids(name), self._stop))
        except Exception as err:  # unproven is refused, as at start
            return f"the scan of Lite's ids failed ({err})"
        return check.compare(scanned)

    def _replace_from_lite(self, copy: Copy) -> None:
        """Retire a copy whose snapshot Lite contradicts and load its successor from Lite.

        Searches that arrive meanwhile wait for the successor (the loading gate of :meth:`copy`),
        as any first use of a collection does, rather than read the contradicted index.
        """
        name = copy.cfg.name
        with copy.writing():  # writes in flight end first; later ones find the copy retired and take the successor
            self.snapshots.discard(name)  # first: the successor must load from Lite, and no later start may trust it
            self.forget(name)
        successor = self.copy(copy.cfg)
        successor.check = successor.check or copy.check  # its state stays reported (refused, and why)

    def settled(self, name: str) -> None:
        """Wait until no ids check runs on ``name`` (index changes, compaction, drops: not under the scan).

        Bounded by :data:`CHECK_WAIT_S`; then 503 OVERLOADED, which clients retry.
        """
        with self._lock:
            copy = self._copies.get(name)
        if copy is not None:
            self._await_check(copy)

    def _await_check(self, copy: Copy) -> None:
        """Return once the copy's ids check is over; 503 OVERLOADED (retryable) after :data:`CHECK_WAIT_S`."""
        check = copy.check
        if check is not None and not check.done.wait(CHECK_WAIT_S):
            raise ApiError(
                ErrorCode.OVERLOADED,
                f"collection {copy.cfg.name!r} is being checked against Milvus Lite after a restart "
                f"({check.ids_checked:,} of {check.row_count:,} ids): retry",
                retry_after=OVERLOADED_RETRY_AFTER_S,
            )

    def warm(self) -> None:
        """Load every collection now (worker start), so no search pays for it."""
        for name in self.store.names():
            try:
                self.copy(self.store.config(name))
            except Exception as err:  # a collection another program made: left to Lite
                log.warning("not indexing %s in memory: %s", name, err)

    def forget(self, name: str, discard: bool = False) -> None:
        """Stop using the copy (rebuilt on next use); ``discard`` also deletes its snapshot (drop, create)."""
        with self._lock:
            copy = self._copies.pop(name, None)
        with self.snapshots.lock:
            if copy is not None:
                copy.retired = True
        if discard:
            self.snapshots.discard(name)

    def describe(self, name: str) -> dict[str, Any]:
        """What answers searches now: the index in memory and whether a new one is being built."""
        with self._lock:
            copy = self._copies.get(name)
        if copy is None:
            return {}
        out = {"serving": LABELS[copy.rows.kind], "rebuilding": copy.building}
        return {**out, "snapshot_check": copy.check.describe()} if copy.check else out

    # -- writes and searches ----------------------------------------------------------------------

    @contextmanager
    def _writing(self, cfg: CollectionConfig) -> Iterator[Copy]:
        """The collection's current copy under its write lock; a copy retired while this waited is skipped."""
        while True:
            copy = self.copy(cfg)
            with copy.writing():
                if not copy.retired:
                    yield copy
                    return

    def apply(self, cfg: CollectionConfig, write: Callable[[], Any], op: Op) -> Any:
        """Run ``write`` on Lite, then ``op`` on the copy, under the copy's write lock; ``write``'s answer.

        A copy retired while this waited for its lock (a refused snapshot, a drop) is not written:
        the collection's current copy, loaded from Lite, takes the write (:meth:`_writing`).
        """
        with self._writing(cfg) as copy:
            if copy.check is not None:
                copy.check.touch(op_ids(op))
            self.snapshots.invalidate(copy)  # before Lite changes: no snapshot may outlive this write
            answer = write()
            try:
                copy.apply(op)
            except Exception:
                log.exception("in-memory index of %s out of step; it will be rebuilt from Lite", cfg.name)
                self.forget(cfg.name)
                return answer
            crowded = copy.crowded() and not copy.building
            copy.building = copy.building or crowded
        if crowded:
            self.rebuild_later(copy)
        return answer

    def search(
        self, cfg: CollectionConfig, queries: list[Any], top_k: int, conditions: Any, ef: int
    ) -> tuple[list[list[tuple[str, float, dict[str, Any], list[int] | None]]], bool]:
        """Per query, the top-k ``(id, score, metadata, set bits or None)``, best first; and whether exact."""
        copy = self.copy(cfg)
        with copy.lock.read():
            rows = copy.rows
            allowed = copy.mask(conditions)
            out = []
            for query in queries:
                if isinstance(rows.index, FloatIndex):
                    scores, positions = rows.index.search(np.asarray(query, dtype=np.float32), top_k, allowed, ef)
                    bits = [None] * len(positions)
                else:  # ties at the cut are decided by id, as the Milvus path does
                    scores, positions = rows.index.search(list(query), top_k, allowed)
                    pairs = zip(scores.tolist(), positions.tolist(), strict=True)
                    ranked = sorted(pairs, key=lambda sp: (-sp[0], rows.ids[sp[1]]))
                    scores = np.array([s for s, _ in ranked[:top_k]])
                    positions = np.array([p for _, p in ranked[:top_k]], dtype=np.int64)
                    bits = [rows.index.bits(int(p)) for p in positions]
                out.append(
                    [
                        (str(rows.ids[p]), float(s), rows.metadata[p] or {}, b)
                        for s, p, b in zip(scores, positions, bits, strict=True)
                    ]
                )
            return out, rows.exact

    # -- rebuilds ---------------------------------------------------------------------------------

    def reindex(self, cfg: CollectionConfig) -> None:
        """The collection's index kind or parameters changed: build the new index beside the old; wait for it."""
        self.rebuild(self.copy(cfg), cfg)

    def rebuild_later(self, copy: Copy) -> None:
        """Compaction or the index a start from Lite still lacks: :meth:`rebuild` in a thread of its own."""
        copy.building = True
        threading.Thread(
            target=self._rebuild_quietly, args=(copy,), name=f"rebuild-{copy.cfg.name}", daemon=True
        ).start()

    def _rebuild_quietly(self, copy: Copy) -> None:
        try:
            self.rebuild(copy)
        except Exception:
            log.exception("rebuilding %s failed; the old index keeps answering", copy.cfg.name)

    def rebuild(self, copy: Copy, cfg: CollectionConfig | None = None) -> None:
        """Build a new index beside the one answering, replay the writes made meanwhile, swap.

        Only the row copy (read lock: searches go on, writes wait) and the swap with the last few
        replayed writes (write lock) hold the collection; the build itself holds nothing.
        """
        with copy.build_lock:
            copy.building = True
            t0 = time.perf_counter()
            try:
                with copy.lock.read():
                    target = cfg or copy.cfg
                    build = copy.rows.rebuild_later(target)
                    copy.pending = []
                fresh = build()
                built_s, done = time.perf_counter() - t0, 0
                while True:
                    with copy.lock.read():
                        batch = list(copy.pending[done:])
                    if len(batch) <= REPLAY_UNDER_LOCK:
                        break
                    for op in batch:
                        fresh.apply(op)
                    done += len(batch)
                with copy.writing():
                    replayed = copy.pending[done:]
                    for op in replayed:
                        fresh.apply(op)
                    copy.rows, copy.cfg, copy.version = fresh, target, copy.version + 1
                    total = done + len(replayed)
            finally:
                with copy.writing():
                    copy.pending = None
                copy.building = False
        log.info(
            "rebuilt the %s index of %s beside the old one: %d rows in %.1f s, %d write(s) replayed",
            LABELS[fresh.kind],
            target.name,
            len(fresh.where),
            built_s,
            total,
        )
        if copy.crowded() and not copy.retired:  # deletes replayed onto the new index crossed the mark again
            self.rebuild_later(copy)
        self._kick.set()

    # -- snapshots --------------------------------------------------------------------------------

    def save(self, copy: Copy, urgent: bool = False) -> bool:
        """Save the copy's snapshot now (one save per copy at a time); ``urgent``: at shutdown (full priority)."""
        with copy.save_lock:
            if copy.retired or copy.gen == copy.saved_gen:
                return copy.gen == copy.saved_gen
            return self.snapshots.save(copy, urgent)

    def save_due(self, quiet_s: float = 0.0, force: bool = False) -> None:
        """Save every copy changed since its snapshot: not while it builds, nor within ``quiet_s`` of a write."""
        with self._lock:
            copies = list(self._copies.values())
        for copy in copies:
            idle = time.monotonic() - copy.last_write >= quiet_s
            if copy.gen != copy.saved_gen and (force or (idle and not copy.building)):
                try:
                    self.save(copy, urgent=force)
                except Exception:
                    log.exception("saving the index of %s failed; a restart rebuilds it from Lite", copy.cfg.name)

    def start(self, interval_s: float, quiet_s: float = 2.0) -> None:
        """Save changed copies every ``interval_s`` (0: only after builds) from a thread of its own."""

        def loop() -> None:
            while not self._stop.is_set():
                self._kick.wait(interval_s if interval_s > 0 else None)
                self._kick.clear()
                if not self._stop.is_set():
                    self.save_due(quiet_s)

        self._saver = threading.Thread(target=loop, name="vectors-saver", daemon=True)
        self._saver.start()

    def close(self) -> None:
        """Clean shutdown: stop the saver and save what changed, so the next start loads instead of rebuilding."""
        self._stop.set()
        self._kick.set()
        self._checker.shutdown(wait=True)  # ids checks stop at their next id: Lite is closed after this
        if self._saver is not None:
            self._saver.join(timeout=60)
        self.save_due(force=True)
