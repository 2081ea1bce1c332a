"""Loading a whole data root: records → graphs, with a survival report and a tensor cache.

``load_root`` is what training, evaluation and the worker call. It never drops a complex
silently: each index row ends up featurised, skipped (no label, missing files) or failed (a
structure that cannot be read or cropped), each with its reason, in :class:`SurvivalReport`.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from compass.data.featurize import featurize_files
from compass.data.graph import ComplexGraph, ComplexRecord, FeatureSettings, pack, unpack
from compass.data.roots import list_records
from compass.data.structures import StructureError
from services.common.files import atomic_path

log = logging.getLogger(__name__)
CACHE_FORMAT = 1


@dataclass
class SurvivalReport:
    """What happened to every row of a data root's index."""

    root: str
    layout: str
    n_index: int = 0
    featurised: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)  # no label / missing files
    failed: list[dict[str, str]] = field(default_factory=list)  # unreadable or uncroppable structures
    notes: list[dict[str, str]] = field(default_factory=list)  # read with a fallback or partial sanitisation

    def to_dict(self) -> dict[str, Any]:
        def by_reason(rows: list[dict[str, str]]) -> dict[str, int]:
            return dict(Counter(r["reason"].split(":")[0] for r in rows).most_common())

        return {
            "root": self.root,
            "layout": self.layout,
            "n_index": self.n_index,
            "featurised": self.featurised,
            "n_skipped": len(self.skipped),
            "n_failed": len(self.failed),
            "skipped_by_reason": by_reason(self.skipped),
            "failed_by_reason": by_reason(self.failed),
            "skipped": self.skipped,
            "failed": self.failed,
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SurvivalReport:
        fields = ("root", "layout", "n_index", "featurised", "skipped", "failed", "notes")
        return cls(**{k: data[k] for k in fields if k in data})

    def summary(self) -> str:
        return (
            f"{self.root}: {self.n_index} in index, {self.featurised} featurised, "
            f"{len(self.skipped)} skipped, {len(self.failed)} failed, {len(self.notes)} read with notes"
        )


@dataclass
class LoadedRoot:
    """A featurised data root: ``records[i]`` describes ``graphs[i]``."""

    records: list[ComplexRecord]
    graphs: list[ComplexGraph]
    survival: SurvivalReport
    settings: FeatureSettings
    data_hash: str

    @property
    def layout(self) -> str:
        return self.survival.layout


def _root_fingerprint(records: list[ComplexRecord], skipped: list[Any], settings: FeatureSettings) -> str:
    """Hash of what the graphs depend on: labels, files (name + size) and the feature settings."""
    h = hashlib.sha256(settings.digest().encode())
    h.update(str(CACHE_FORMAT).encode())
    for r in records:
        h.update(f"{r.key}|{r.pK}|{r.sdf_index}|{r.group}|{r.series}|{r.molecule}".encode())
        for p in [r.protein_path, *r.ligand_paths]:
            path = Path(p)
            size = path.stat().st_size if path.is_file() else -1
            h.update(f"{path.name}:{size}".encode())
    for s in skipped:
        h.update(f"skip:{s.key}".encode())
    return h.hexdigest()[:16]


def save_cache(path: Path, loaded: LoadedRoot) -> None:
    """Write a cache file atomically (tensors and plain containers only: loads with weights_only)."""
    import torch  # the cache file format; featurising and serving never need it

    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "format": CACHE_FORMAT,
        "packed": {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in pack(loaded.graphs).items()},
        "records": [r.to_dict() for r in loaded.records],
        "survival": loaded.survival.to_dict(),
        "settings": loaded.settings.to_dict(),
        "data_hash": loaded.data_hash,
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def load_cache(path: str | Path) -> LoadedRoot:
    """Read a cache file written by :func:`save_cache` (safe: ``weights_only=True``)."""
    import torch

    blob = torch.load(path, weights_only=True)
    if blob.get("format") != CACHE_FORMAT:
        raise ValueError(f"{path}: cache format {blob.get('format')} is not {CACHE_FORMAT}")
    return LoadedRoot(
        records=[ComplexRecord.from_dict(r) for r in blob["records"]],
        graphs=unpack(blob["packed"]),
        survival=SurvivalReport.from_dict(blob["survival"]),
        settings=FeatureSettings.from_dict(blob["settings"]),
        data_hash=blob["data_hash"],
    )


def load_root(
    path: str | Path,
    settings: FeatureSettings | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> LoadedRoot:
    """Featurise every complex of a data root (or read a ``.pt`` cache file directly).

    With ``cache_dir``, the result is stored under a name keyed by the root's fingerprint, so a
    second load (or a GPU machine without RDKit, given the file) skips featurisation.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".pt":
        return load_cache(path)
    settings = settings or FeatureSettings()
    layout, records, skipped = list_records(path)
    fingerprint = _root_fingerprint(records, skipped, settings)
    cache_file = Path(cache_dir) / f"{path.resolve().name}-{layout}-{fingerprint}.pt" if cache_dir else None
    if cache_file is not None and cache_file.is_file():
        log.info("loading featurised %s from cache %s", path, cache_file)
        return load_cache(cache_file)

    report = SurvivalReport(root=str(path), layout=layout, n_index=len(records) + len(skipped))
    report.skipped = [{"key": s.key, "reason": s.reason} for s in skipped]
    kept_records, graphs = [], []
    for record in tqdm(records, desc=f"featurise {path.name}", unit="complex", disable=not progress):
        try:
            graph, notes = featurize_files(
                record.protein_path,
                record.ligand_paths,
                settings,
                key=record.key,
                y=record.pK,
                ligand_index=record.sdf_index,
            )
        except (StructureError, OSError) as exc:
            report.failed.append({"key": record.key, "reason": str(exc)})
            log.warning("complex %s failed: %s", record.key, exc)
            continue
        except Exception as exc:  # an RDKit or numpy surprise still becomes a reported failure
            report.failed.append({"key": record.key, "reason": f"unexpected {type(exc).__name__}: {exc}"})
            log.warning("complex %s failed: %s", record.key, exc)
            continue
        report.notes.extend({"key": record.key, "reason": note} for note in notes)
        kept_records.append(record)
        graphs.append(graph)
    report.featurised = len(graphs)
    loaded = LoadedRoot(kept_records, graphs, report, settings, fingerprint)
    log.info("%s", report.summary())
    if cache_file is not None:
        save_cache(cache_file, loaded)
    return loaded
