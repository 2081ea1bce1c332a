"""Registered models: checkpoints kept under ``<state>/models/<id><suffix>``, named by their content.

The id is :func:`compass.model.model_id` (sha256 of the file), so it never changes across
restarts, copies or replicas, and registering the same weights twice is a no-op. A checkpoint is
loaded once before it is registered: a file that cannot be served is never listed as a model.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

from compass.model.checkpoint import COMPASS_SUFFIX, LITE_SUFFIX, CheckpointError, Predictor, load_checkpoint, model_id
from compass.service.store import Store, now_iso
from services.common.envelope import ApiError, ErrorCode
from services.common.files import atomic_path

log = logging.getLogger(__name__)

SUFFIXES = {"compass": COMPASS_SUFFIX, "compass-lite": LITE_SUFFIX}
# Meta keys kept in the record (the rest, e.g. the whole architecture, stays in the file).
_META_KEYS = (
    "plan",
    "data_hash",
    "feature_settings",
    "code_version",
    "created",
    "arch",
    "config",
    "n_train",
    "grouped_cv",
)


def _jsonable(value: Any) -> Any:
    """Plain JSON (strict: NaN and infinities become null, as every JSON parser accepts that)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return json.loads(json.dumps(value, default=str))


class ModelRegistry:
    """Register, list, describe and delete model files; which one is served is :class:`Store.active`."""

    def __init__(self, store: Store, state_dir: Path, device: str = "cpu") -> None:
        self.store = store
        self.dir = state_dir / "models"
        self.device = device
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, row: dict[str, Any]) -> Path:
        return self.dir / row["file"]

    def load(self, row: dict[str, Any]) -> Predictor:
        """The model ready to predict; CheckpointError when the file is gone or damaged."""
        return load_checkpoint(self.path(row), device=self.device)

    def register(
        self,
        src: Path,
        *,
        name: str,
        source: str,
        job_id: str | None = None,
        dataset_id: str | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Copy ``src`` in and record it (or return the record of identical weights already here)."""
        mid = model_id(src)
        existing = self.store.get("models", mid)
        if existing is not None and self.path(existing).is_file():
            return existing
        predictor = load_checkpoint(src, device="cpu")  # refuses what could not be served
        kind = predictor.kind
        meta = dict(predictor.meta or {})
        dest = self.dir / f"{mid}{Path(src).suffix}"  # a kind has more than one format (compass: stack or ViSNet)
        with atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
        row = {
            "id": mid,
            "kind": kind,
            "name": name[:128],
            "file": dest.name,
            "size_bytes": dest.stat().st_size,
            "created_at": now_iso(),
            "source": source,
            "job_id": job_id,
            "dataset_id": dataset_id,
            "meta_json": _jsonable({k: meta[k] for k in _META_KEYS if k in meta}),
            "metrics_json": _jsonable(metrics if metrics is not None else meta.get("metrics") or {}),
        }
        if existing is not None:  # the record outlived its file: replace both
            self.store.delete("models", mid)
        record = self.store.insert("models", row)
        log.info("registered %s model %s (%s) from %s", kind, mid, name, source)
        return record

    def get(self, mid: str) -> dict[str, Any]:
        return self.store.require("models", mid, "model")

    def list(self, kind: str | None, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        return self.store.list("models", where={"kind": kind} if kind else None, limit=limit, offset=offset)

    def public(self, row: dict[str, Any], detail: bool = False) -> dict[str, Any]:
        out = {k: v for k, v in row.items() if k not in ("file", "meta")}
        out["active_for"] = self.store.active_kinds(row["id"])
        if detail:
            out["meta"] = row.get("meta") or {}
            out["model_card"] = self.card(row)
        return out

    def delete(self, mid: str) -> None:
        row = self.get(mid)
        active = self.store.active_kinds(mid)
        if active:
            raise ApiError(ErrorCode.CONFLICT, f"model {mid} is active for {', '.join(active)}: activate another first")
        self.store.delete("models", mid)
        self.path(row).unlink(missing_ok=True)
        log.info("model %s deleted", mid)

    def card(self, row: dict[str, Any]) -> str:
        """A model card in Markdown: what it is, what it was trained on, how well it did, how to use it."""
        meta = row.get("meta") or {}
        plan = meta.get("plan") or {}
        metrics = row.get("metrics") or {}
        lines = [
            f"# {row['name']} ({row['kind']})",
            "",
            f"- id: `{row['id']}` (sha256 of the checkpoint file)",
            f"- registered: {row['created_at']} from {row['source']}"
            + (f", job `{row['job_id']}`" if row.get("job_id") else ""),
            f"- dataset: `{row['dataset_id']}`" if row.get("dataset_id") else "- dataset: not recorded",
            f"- data hash: `{meta.get('data_hash')}`",
            f"- created: {meta.get('created')}, code {meta.get('code_version')}",
            f"- feature settings: {json.dumps(meta.get('feature_settings'))}",
            "",
            "## Intended use",
            "",
            "Binding affinity (pK) of a protein–ligand complex in a bound pose (PDB pocket or protein + SDF/MOL2"
            " ligand). Not a docking tool: the pose is taken as given. Scores outside the training distribution"
            " (new protein families, unusual chemistry) deserve suspicion.",
            "",
            "## Training",
            "",
            f"- model: {json.dumps(plan.get('model') or meta.get('config') or meta.get('arch'))}",
            f"- optimiser: {json.dumps(plan.get('optim'))}",
            f"- split: {json.dumps(plan.get('split'))}, seed {plan.get('seed')}",
            "",
            "## Metrics",
            "",
        ]
        shown = {k: v for k, v in metrics.items() if isinstance(v, int | float | str | None)}
        lines += [f"- {k}: {v}" for k, v in sorted(shown.items())] or ["- none recorded"]
        return "\n".join(lines) + "\n"


def checkpoint_error(exc: CheckpointError) -> ApiError:
    return ApiError(ErrorCode.CONFLICT, f"checkpoint cannot be loaded: {exc}")
