"""Embedders: sequences → fixed-size vectors, cached by sequence. Built-in: AntiBERTy (in-process).

An ``embed`` plugin subclasses :class:`Embedder`. The AntiBERTy embedder reads the mean hidden
state over the variable positions; ``embeddings.context: [start, end]`` feeds the model only that
stretch of the template (cheaper; the full chain by default). Vectors are cached in SQLite by
(model, layer, context, sequence), so a sequence is embedded once across runs, seeds and splits.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

_RUNNER_LOCK = threading.Lock()
_RUNNER: Any = None


def antiberty_runner(threads: int = 1) -> Any:
    """The process's one AntiBERTy runner (loaded from the wheel on first use, never downloaded)."""
    global _RUNNER
    with _RUNNER_LOCK:
        if _RUNNER is None:
            from seqmodels.antiberty import AntibertyModel
            from seqmodels.settings import SeqSettings

            model = AntibertyModel(SeqSettings(torch_threads=threads))
            model.load_model()
            _RUNNER = model.runner
        return _RUNNER


class VectorCache:
    """``key → float32 vector`` in one SQLite table; safe to share between processes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")

    @staticmethod
    def key(*parts: Any) -> str:
        return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            marks = ",".join("?" * len(part))
            for k, blob in self._db.execute(f"SELECT key, vec FROM vectors WHERE key IN ({marks})", part):
                out[k] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        rows = [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()]
        self._db.executemany("INSERT OR REPLACE INTO vectors (key, vec) VALUES (?, ?)", rows)


def cached(
    cache: VectorCache | None,
    keys: list[str],
    compute: Callable[[list[int]], np.ndarray],
    batch: int,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Vectors for ``keys``: from the cache, the rest computed in batches (``compute(indices)``) and stored."""
    found = cache.get_many(keys) if cache else {}
    missing = [i for i, k in enumerate(keys) if k not in found]
    for start in range(0, len(missing), batch):
        idx = missing[start : start + batch]
        vecs = compute(idx)
        fresh = {keys[i]: v for i, v in zip(idx, vecs, strict=True)}
        found.update(fresh)
        if cache:
            cache.put_many(fresh)
        if progress:
            progress(len(idx))
    return np.stack([found[k] for k in keys]) if keys else np.zeros((0, 0), dtype=np.float32)


class Embedder:
    """Base of an ``embed`` plugin: ``embed(sequences, positions)`` → ``[N, dim]`` float32."""

    name: ClassVar[str] = ""

    def __init__(self, options: dict[str, Any], cache_path: Path | None = None, threads: int = 1) -> None:
        self.options = options
        self.cache = VectorCache(cache_path) if cache_path else None
        self.threads = threads

    def embed(
        self, sequences: Sequence[str], positions: Sequence[int], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        raise NotImplementedError


def crop(
    sequences: Sequence[str], positions: Sequence[int], context: Sequence[int] | None
) -> tuple[list[str], list[int]]:
    """The ``context`` stretch (1-based, inclusive) of each sequence and the positions shifted into it."""
    if not context:
        return list(sequences), list(positions)
    a, b = context
    if positions and (min(positions) < a - 1 or max(positions) > b - 1):
        raise ValueError(f"embeddings.context {list(context)} does not contain the variable region")
    return [s[a - 1 : b] for s in sequences], [p - (a - 1) for p in positions]


class AntibertyEmbedder(Embedder):
    """Mean AntiBERTy hidden state (``embeddings.layer``) over the variable positions."""

    name = "antiberty"

    def embed(
        self, sequences: Sequence[str], positions: Sequence[int], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        from seqmodels.antiberty_infill import region_embeddings

        layer = int(self.options.get("layer", -1))
        context = self.options.get("context")
        seqs, pos = crop(sequences, positions, context)
        keys = [VectorCache.key("antiberty-emb", layer, context, pos, s) for s in seqs]
        runner = None

        def compute(idx: list[int]) -> np.ndarray:
            nonlocal runner
            runner = runner or antiberty_runner(self.threads)
            return region_embeddings(runner, [seqs[i] for i in idx], pos, layer=layer)

        return cached(self.cache, keys, compute, int(self.options.get("batch_size", 16)), progress)
