"""The ViSNet side of the checkpoint format (:mod:`compass.model.checkpoint`): torch and safetensors.

A ``.safetensors`` file whose metadata key ``"compass"`` holds JSON: ``kind``, ``format``, ``arch``
(the whole :class:`ViSNetConfig`), ``feature_settings``, ``plan``, ``data_hash``, ``metrics``,
``code_version``, ``created`` and ``weights_sha256`` (a digest of every tensor, so a file edited
after saving is refused).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from compass.data.graph import ComplexGraph, FeatureSettings
from compass.model.checkpoint import COMPASS_SUFFIX, FORMAT_VERSION, META_KEY, OPTIONAL_FIELDS, CheckpointError
from compass.version import code_version
from services.common.files import atomic_path

if TYPE_CHECKING:  # torch_geometric is imported only when a ViSNet is built or loaded
    from compass.model.visnet import CompassViSNet


class CompassPredictor:
    """A loaded ViSNet checkpoint: eval mode, no gradients, float32 on ``device``."""

    kind = "compass"

    def __init__(self, model: CompassViSNet, meta: dict[str, Any], device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.meta = meta
        self.feature_settings = FeatureSettings.from_dict(meta["feature_settings"])

    @torch.no_grad()
    def predict(self, graphs: list[ComplexGraph], batch_size: int = 32) -> np.ndarray:
        """pK for each graph, in order (float64 array)."""
        from torch_geometric.data import Batch

        out: list[np.ndarray] = []
        for start in range(0, len(graphs), max(1, batch_size)):
            chunk = graphs[start : start + batch_size]
            batch = Batch.from_data_list([g.to_data() for g in chunk]).to(self.device)
            out.append(self.model(batch).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)


def _weights_digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _state_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage, and we never write GPU memory
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def save_checkpoint(
    model: CompassViSNet,
    path: str | Path,
    *,
    feature_settings: FeatureSettings,
    plan: dict[str, Any] | None = None,
    data_hash: str | None = None,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` and everything needed to rebuild it to ``path`` (atomically)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != COMPASS_SUFFIX:
        raise ValueError(f"a compass checkpoint must end in {COMPASS_SUFFIX}: {path}")
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    tensors = _state_tensors(model)
    meta = {
        "kind": "compass",
        "format": FORMAT_VERSION,
        "arch": model.config.to_dict(),
        "feature_settings": feature_settings.to_dict(),
        "plan": plan,
        "data_hash": data_hash,
        "metrics": metrics or {},
        "code_version": code_version(),
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "weights_sha256": _weights_digest(tensors),
        "extra": extra or {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={META_KEY: json.dumps(meta, sort_keys=True)})
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a compass checkpoint, without building the model (for listings)."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except Exception as exc:  # SafetensorError, OSError, decoding errors: all mean "not ours"
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint: {exc}") from exc
    if raw is None:
        raise CheckpointError(f"{path} has no '{META_KEY}' metadata: not a COMPASS checkpoint")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: checkpoint metadata is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("kind") != "compass":
        raise CheckpointError(f"{path}: checkpoint kind is {meta.get('kind') if isinstance(meta, dict) else None!r}")
    if meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {meta.get('format')!r} is not {FORMAT_VERSION}")
    missing = {"arch", "feature_settings", "weights_sha256"} - set(meta)
    if missing:
        raise CheckpointError(f"{path}: checkpoint metadata lacks {sorted(missing)}")
    return meta


def load_compass_model(path: str | Path) -> tuple[CompassViSNet, dict[str, Any]]:
    """Rebuild the ViSNet from the checkpoint's own config and load its verified weights (CPU)."""
    from safetensors.torch import load_file

    from compass.model.visnet import CompassViSNet, ViSNetConfig

    path = Path(path)
    meta = read_meta(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint tensors: {exc}") from exc
    if _weights_digest(tensors) != meta["weights_sha256"]:
        raise CheckpointError(f"{path}: weights do not match their recorded digest (file altered or truncated)")
    for section, cls in (("arch", ViSNetConfig), ("feature_settings", FeatureSettings)):
        missing = set(cls.__dataclass_fields__) - set(meta[section] or {}) - OPTIONAL_FIELDS
        if missing:  # never fill a gap with today's defaults: that is how the old system mis-rebuilt models
            raise CheckpointError(f"{path}: checkpoint {section} lacks {sorted(missing)}")
    try:
        config = ViSNetConfig.from_dict(meta["arch"])
        feature = FeatureSettings.from_dict(meta["feature_settings"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid architecture or feature settings: {exc}") from exc
    meta["feature_settings"] = feature.to_dict()
    model = CompassViSNet(config)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the recorded architecture: {exc}") from exc
    return model.eval(), meta
