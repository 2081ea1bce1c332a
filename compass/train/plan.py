"""Experiment plans: one JSON file says what data, split, model, optimiser and seed a run uses.

A plan is validated when it is read: unknown keys, wrong types and impossible values are errors
that name the offending key, so a typo never silently falls back to a default. The plan is
stored whole in every checkpoint and in ``runs/<run_id>/plan.json``.

Example::

    {"seed": 0,
     "data": {"roots": ["../shared/data/fep"], "feature": {"crop_radius": 8.0}},
     "split": {"kind": "group-holdout", "val_fraction": 0.1, "seed": 0},
     "model": {"kind": "compass", "config": {"hidden_channels": 128, "num_layers": 6}},
     "optim": {"lr": 5e-4, "epochs": 100, "batch_size": 32, "patience": 20}}
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from compass.data.graph import FeatureSettings

MODEL_KINDS = ("compass", "compass-lite")
SPLIT_KINDS = ("group-holdout", "none")
AMP_MODES = ("auto", "on", "off")
GROUP_WEIGHTINGS = ("none", "inverse_sqrt")
DEVICES = ("auto", "cpu", "cuda")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


# Upper bounds: a plan from the API runs on a shared worker, so no number may ask for unbounded work.
MAX_EPOCHS = 10_000
MAX_WARMUP_STEPS = 10_000_000
MAX_BATCH_SIZE = 4096
MAX_SEED = 2**32 - 1


class PlanError(ValueError):
    """The plan is not valid; the message names the key."""


def _strict(section: str, data: Any, allowed: set[str], required: set[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PlanError(f"{section} must be an object, got {type(data).__name__}")
    unknown = set(data) - allowed
    if unknown:
        raise PlanError(f"{section}: unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})")
    missing = set(required) - set(data)
    if missing:
        raise PlanError(f"{section}: missing required keys {sorted(missing)}")
    return data


def _num(
    section: str, key: str, value: Any, *, integer: bool = False, lo: float | None = None, hi: float | None = None
) -> Any:
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type or not math.isfinite(value):
        raise PlanError(f"{section}.{key} must be a finite {'integer' if integer else 'number'}, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise PlanError(f"{section}.{key} must be in [{lo}, {hi}], got {value!r}")
    return int(value) if integer else float(value)


def _choice(section: str, key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise PlanError(f"{section}.{key} must be one of {list(choices)}, got {value!r}")
    return value


@dataclass(frozen=True)
class DataSpec:
    roots: list[str]
    feature: FeatureSettings = field(default_factory=FeatureSettings)
    exclude_ids_file: str | None = None  # ids never used for training or validation (CASF-2016 core)
    affinity_types: list[str] | None = None  # keep only records whose extra["affinity_type"] is listed
    cache_dir: str | None = None  # featurised-tensor cache for folder roots

    @classmethod
    def from_dict(cls, data: Any) -> DataSpec:
        d = _strict("data", data, {f.name for f in fields(cls)}, {"roots"})
        roots = d["roots"]
        if not isinstance(roots, list) or not roots or not all(isinstance(r, str) and r for r in roots):
            raise PlanError("data.roots must be a non-empty list of paths")
        try:
            feature = FeatureSettings.from_dict(d.get("feature"))
        except (TypeError, ValueError) as exc:
            raise PlanError(f"data.feature: {exc}") from exc
        types = d.get("affinity_types")
        if types is not None and (not isinstance(types, list) or not all(isinstance(t, str) for t in types)):
            raise PlanError("data.affinity_types must be a list of strings such as ['Kd', 'Ki']")
        for key in ("exclude_ids_file", "cache_dir"):
            if d.get(key) is not None and not isinstance(d[key], str):
                raise PlanError(f"data.{key} must be a path string")
        return cls(list(roots), feature, d.get("exclude_ids_file"), types, d.get("cache_dir"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "roots": list(self.roots),
            "feature": self.feature.to_dict(),
            "exclude_ids_file": self.exclude_ids_file,
            "affinity_types": self.affinity_types,
            "cache_dir": self.cache_dir,
        }


@dataclass(frozen=True)
class SplitSpec:
    kind: str = "group-holdout"  # "none": train on everything, no validation (final models)
    val_fraction: float = 0.1
    seed: int = 0

    @classmethod
    def from_dict(cls, data: Any) -> SplitSpec:
        d = _strict("split", data if data is not None else {}, {f.name for f in fields(cls)})
        kind = _choice("split", "kind", d.get("kind", cls.kind), SPLIT_KINDS)
        frac = _num("split", "val_fraction", d.get("val_fraction", cls.val_fraction), lo=0.0, hi=0.9)
        if kind == "group-holdout" and frac <= 0:
            raise PlanError("split.val_fraction must be > 0 for a group-holdout split (kind 'none': no validation)")
        return cls(kind, frac, _num("split", "seed", d.get("seed", cls.seed), integer=True, lo=0, hi=MAX_SEED))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "val_fraction": self.val_fraction, "seed": self.seed}


@dataclass(frozen=True)
class ModelSpec:
    kind: str = "compass"
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any) -> ModelSpec:
        d = _strict("model", data if data is not None else {}, {"kind", "config"})
        kind = _choice("model", "kind", d.get("kind", cls.kind), MODEL_KINDS)
        config = d.get("config") or {}
        if not isinstance(config, dict):
            raise PlanError("model.config must be an object")
        if kind == "compass":
            from compass.model.visnet import ViSNetConfig

            if {"y_mean", "y_std"} & set(config):
                raise PlanError("model.config: y_mean/y_std are set from the training labels, not the plan")
            try:
                ViSNetConfig.from_dict(config)
            except (TypeError, ValueError) as exc:
                raise PlanError(f"model.config: {exc}") from exc
        else:
            try:
                from compass.model.lite import LiteConfig
            except ImportError:  # scikit-learn/skops absent here: validated where compass-lite trains
                LiteConfig = None
            if LiteConfig is not None:
                try:
                    LiteConfig.from_dict(config)
                except (TypeError, ValueError) as exc:
                    raise PlanError(f"model.config: {exc}") from exc
        return cls(kind, dict(config))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "config": dict(self.config)}


@dataclass(frozen=True)
class OptimSpec:
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_steps: int | None = None  # wins over warmup_fraction when given
    warmup_fraction: float = 0.05
    epochs: int = 100
    batch_size: int = 32
    grad_clip: float = 10.0  # max global grad norm; 0 disables
    amp: str = "auto"  # autocast + GradScaler on CUDA only ("auto" = on when training on CUDA)
    patience: int = 20  # epochs without a better validation RMSE before stopping; 0 disables
    # "inverse_sqrt": each complex weighs 1/sqrt(complexes of its protein) in the loss, so 41 FEP
    # proteins with ~1,100 congeneric ligands do not outvote 439 PDBbind proteins; "none": equal weights
    group_weighting: str = "none"
    position_noise: float = 0.0  # Å: Gaussian jitter on training coordinates (regularises; 0 disables)

    @classmethod
    def from_dict(cls, data: Any) -> OptimSpec:
        d = _strict("optim", data if data is not None else {}, {f.name for f in fields(cls)})
        warm = d.get("warmup_steps")
        return cls(
            lr=_num("optim", "lr", d.get("lr", cls.lr), lo=1e-12, hi=10.0),
            weight_decay=_num("optim", "weight_decay", d.get("weight_decay", cls.weight_decay), lo=0.0, hi=10.0),
            warmup_steps=None
            if warm is None
            else _num("optim", "warmup_steps", warm, integer=True, lo=0, hi=MAX_WARMUP_STEPS),
            warmup_fraction=_num("optim", "warmup_fraction", d.get("warmup_fraction", cls.warmup_fraction), lo=0, hi=1),
            epochs=_num("optim", "epochs", d.get("epochs", cls.epochs), integer=True, lo=1, hi=MAX_EPOCHS),
            batch_size=_num(
                "optim", "batch_size", d.get("batch_size", cls.batch_size), integer=True, lo=1, hi=MAX_BATCH_SIZE
            ),
            grad_clip=_num("optim", "grad_clip", d.get("grad_clip", cls.grad_clip), lo=0.0, hi=1e6),
            amp=_choice("optim", "amp", d.get("amp", cls.amp), AMP_MODES),
            patience=_num("optim", "patience", d.get("patience", cls.patience), integer=True, lo=0, hi=MAX_EPOCHS),
            group_weighting=_choice(
                "optim", "group_weighting", d.get("group_weighting", cls.group_weighting), GROUP_WEIGHTINGS
            ),
            position_noise=_num("optim", "position_noise", d.get("position_noise", cls.position_noise), lo=0.0, hi=1.0),
        )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ExperimentPlan:
    """A whole experiment. ``base_dir`` (the plan file's folder) anchors relative paths; not serialised."""

    data: DataSpec
    seed: int = 0
    run_id: str | None = None
    split: SplitSpec = field(default_factory=SplitSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    optim: OptimSpec = field(default_factory=OptimSpec)
    device: str = "auto"
    runs_dir: str = "runs"
    base_dir: str | None = None

    @classmethod
    def from_dict(cls, data: Any, base_dir: str | Path | None = None) -> ExperimentPlan:
        allowed = {f.name for f in fields(cls)} - {"base_dir"}
        d = _strict("plan", data, allowed, {"data"})
        run_id = d.get("run_id")
        if run_id is not None and (not isinstance(run_id, str) or not _RUN_ID.match(run_id)):
            raise PlanError(f"plan.run_id must match {_RUN_ID.pattern}, got {run_id!r}")
        runs_dir = d.get("runs_dir", "runs")
        if not isinstance(runs_dir, str) or not runs_dir:
            raise PlanError("plan.runs_dir must be a path string")
        return cls(
            data=DataSpec.from_dict(d["data"]),
            seed=_num("plan", "seed", d.get("seed", 0), integer=True, lo=0, hi=MAX_SEED),
            run_id=run_id,
            split=SplitSpec.from_dict(d.get("split")),
            model=ModelSpec.from_dict(d.get("model")),
            optim=OptimSpec.from_dict(d.get("optim")),
            device=_choice("plan", "device", d.get("device", "auto"), DEVICES),
            runs_dir=runs_dir,
            base_dir=str(base_dir) if base_dir is not None else None,
        )

    @classmethod
    def from_json(cls, path: str | Path) -> ExperimentPlan:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise PlanError(f"{path}: not valid JSON: {exc}") from exc
        return cls.from_dict(data, base_dir=path.resolve().parent)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "seed": self.seed,
            "data": self.data.to_dict(),
            "split": self.split.to_dict(),
            "model": self.model.to_dict(),
            "optim": self.optim.to_dict(),
            "device": self.device,
            "runs_dir": self.runs_dir,
        }

    def digest(self) -> str:
        """Hash of everything but the run id: two runs of the same plan share it."""
        blob = json.dumps({**self.to_dict(), "run_id": None}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def with_run_id(self, run_id: str | None = None) -> ExperimentPlan:
        """This plan with ``run_id`` set (given, the plan's own, or ``<UTC timestamp>-<plan hash>``)."""
        run_id = run_id or self.run_id or f"{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{self.digest()[:6]}"
        if not _RUN_ID.match(run_id):
            raise PlanError(f"run_id must match {_RUN_ID.pattern}, got {run_id!r}")
        return replace(self, run_id=run_id)

    def resolve_path(self, value: str) -> Path:
        """A path of the plan: absolute as is; relative against the plan's folder, then the CWD."""
        path = Path(value).expanduser()
        if path.is_absolute():
            return path
        tried = []
        if self.base_dir is not None:
            tried.append(Path(self.base_dir) / path)
        tried.append(Path.cwd() / path)
        for candidate in tried:
            if candidate.exists():
                return candidate.resolve()
        raise FileNotFoundError(f"{value!r} not found (tried {', '.join(str(t) for t in tried)})")

    def resolved_roots(self) -> list[Path]:
        return [self.resolve_path(r) for r in self.data.roots]
