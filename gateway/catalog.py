"""The serving models of the mesh, read from the registry's instances, and the "best model" rule.

A *model* here is one registered service (``antiberty``, ``compass-lite``, ``codon``...): the name a
caller passes as ``model_name`` and the Router routes to. Its entry gathers what its instances
advertise (capabilities, served model ids, version, an active model, a validated figure) and their
health and load. Pure functions over :class:`~services.common.instance.Instance` lists: no I/O.

The rule of :func:`rank` (README "Choosing the best model"):

1. **capability**: the service registers the task's capability and reads the sequence type
   (its ``metadata.sequence_types``, else what the capability reads), and has a usable instance
   (passing or warning, not draining);
2. **specialised** before general: a service with a capability made for exactly this sequence
   type (``antibody-likelihood`` for antibodies) ranks first;
3. **validated figure**: ``metadata.validation = {metric, split, value}``; a service with a figure
   ranks above one without, and figures of the same metric compare (higher is better, lower for
   error metrics). A figure measured on a ``test`` split is ignored: choosing on the test set would
   make it a validation set;
4. **load**: fewer requests in flight per usable instance, then more usable instances, then the name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.tasks import CAPABILITY_SEQUENCE_TYPES, Task
from services.common.instance import Instance

GATEWAY_CAPABILITY = "agent-gateway"
USABLE_STATES = frozenset({"passing", "warning"})
# Metrics where a smaller value is better; every other metric (R, Spearman, AUC...) is higher-better.
LOWER_IS_BETTER = frozenset({"rmse", "mae", "mse", "loss", "error", "perplexity", "log_loss"})
# A figure whose split names a test set must not choose a model (it would turn the test set into a validation set).
TEST_SPLIT = re.compile(r"\btest\b", re.IGNORECASE)


def usable(inst: Instance) -> bool:
    return inst.status in USABLE_STATES and not inst.maintenance


@dataclass(frozen=True)
class Validation:
    metric: str
    split: str
    value: float

    @property
    def higher_is_better(self) -> bool:
        return self.metric.lower() not in LOWER_IS_BETTER

    def describe(self) -> str:
        return f"{self.metric}={self.value:g} on {self.split}"


def read_validation(metadata: dict[str, Any]) -> Validation | None:
    """``metadata.validation`` when it is well formed ({metric: str, split: str, value: number}), else None."""
    raw = metadata.get("validation")
    if not isinstance(raw, dict):
        return None
    metric, split, value = raw.get("metric"), raw.get("split"), raw.get("value")
    if not isinstance(metric, str) or not isinstance(split, str):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:  # NaN
        return None
    return Validation(metric, split, float(value))


@dataclass
class Model:
    """One service as a model: what it serves and where."""

    name: str
    instances: list[Instance] = field(default_factory=list)

    @property
    def capabilities(self) -> list[str]:
        return sorted({c for i in self.instances for c in i.capabilities})

    @property
    def usable(self) -> list[Instance]:
        return [i for i in self.instances if usable(i)]

    @property
    def sequence_types(self) -> list[str]:
        advertised = {t for i in self.instances for t in _str_list(i.metadata.get("sequence_types"))}
        if advertised:
            return sorted(advertised)
        return sorted({t for c in self.capabilities for t in CAPABILITY_SEQUENCE_TYPES.get(c, ())})

    def specialised_for(self, sequence_type: str) -> bool:
        """A capability of this service reads only ``sequence_type``."""
        return any(CAPABILITY_SEQUENCE_TYPES.get(c) == (sequence_type,) for c in self.capabilities)

    @property
    def validation(self) -> Validation | None:
        """The figure of the newest-looking instance that advertises one (replicas normally agree)."""
        for inst in sorted(self.usable or self.instances, key=lambda i: i.registered_at or "", reverse=True):
            found = read_validation(inst.metadata)
            if found is not None:
                return found
        return None

    @property
    def load_per_instance(self) -> float:
        live = self.usable
        if not live:
            return float("inf")
        return sum(_number(i.load.get("inflight")) for i in live) / len(live)

    def public(self) -> dict[str, Any]:
        """The entry ``GET /models`` lists."""
        first = self.instances[0]
        validation = self.validation
        return {
            "name": self.name,
            "kind": first.metadata.get("kind") or self.name,
            "capabilities": self.capabilities,
            "sequence_types": self.sequence_types,
            "versions": sorted({i.version for i in self.instances if i.version}),
            "models": sorted({m for i in self.instances for m in i.models}),
            "active_model": next(
                (
                    i.metadata["active_model"]
                    for i in self.instances
                    if isinstance(i.metadata.get("active_model"), dict)
                ),
                None,
            ),
            "validation": None
            if validation is None
            else {"metric": validation.metric, "split": validation.split, "value": validation.value},
            "loaded": bool(self.usable),
            "usable_instances": len(self.usable),
            "instances": [_instance_view(i) for i in self.instances],
        }


def models_of(instances: Iterable[Instance], *, include_gateways: bool = False) -> dict[str, Model]:
    """Instances grouped into models by service name (gateways left out unless asked for)."""
    out: dict[str, Model] = {}
    for inst in instances:
        if not include_gateways and GATEWAY_CAPABILITY in inst.capabilities:
            continue
        out.setdefault(inst.service_name, Model(inst.service_name)).instances.append(inst)
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class Ranked:
    """The candidates for a task, best first, and why the first one won."""

    candidates: list[Model]
    reason: str
    unusable: list[str]  # services with the capability but no usable instance (draining, critical)

    @property
    def best(self) -> Model | None:
        return self.candidates[0] if self.candidates else None


def rank(models: Iterable[Model], task: Task, sequence_type: str) -> Ranked:
    """The services that can serve ``task`` for ``sequence_type``, best first (the module's rule)."""
    able = [m for m in models if task.capability in m.capabilities and sequence_type in m.sequence_types]
    live = [m for m in able if m.usable]
    unusable = [m.name for m in able if not m.usable]
    metric = _shared_metric(live)

    def key(m: Model) -> tuple[Any, ...]:
        figure = _figure(m)
        comparable = figure is not None and figure.metric == metric
        oriented = (figure.value if figure.higher_is_better else -figure.value) if comparable and figure else 0.0
        return (
            not m.specialised_for(sequence_type),
            figure is None,
            -oriented,
            m.load_per_instance,
            -len(m.usable),
            m.name,
        )

    ordered = sorted(live, key=key)
    return Ranked(ordered, _reason(ordered, task, sequence_type, unusable), unusable)


def _figure(m: Model) -> Validation | None:
    """The model's figure, unless it was measured on a split that must not choose models."""
    v = m.validation
    return None if v is None or TEST_SPLIT.search(v.split) else v


def _shared_metric(models: Sequence[Model]) -> str | None:
    """The metric most candidates report (figures of other metrics only count as 'has a figure')."""
    counts: dict[str, int] = {}
    for m in models:
        v = _figure(m)
        if v is not None:
            counts[v.metric] = counts.get(v.metric, 0) + 1
    return max(sorted(counts), key=lambda k: counts[k]) if counts else None


def _reason(ordered: list[Model], task: Task, sequence_type: str, unusable: list[str]) -> str:
    if not ordered:
        why = f"no usable instance serves capability {task.capability} for {sequence_type}"
        return why + (f" ({', '.join(unusable)}: draining or unhealthy)" if unusable else "")
    best, rest = ordered[0], ordered[1:]
    parts = [f"{best.name} serves {task.capability} for {sequence_type}"]
    if best.specialised_for(sequence_type) and any(not m.specialised_for(sequence_type) for m in rest):
        parts.append(f"specialised for {sequence_type}")
    figure = _figure(best)
    if figure is not None:
        parts.append(f"validated {figure.describe()}")
    elif best.validation is not None:
        parts.append(f"its figure ({best.validation.describe()}) is on a test split and not used")
    if rest:
        others = ", ".join(
            f"{m.name} ({_figure(m).describe() if _figure(m) else 'no validated figure'})"  # type: ignore[union-attr]
            for m in rest
        )
        parts.append(f"ahead of {others}")
    parts.append(f"load {best.load_per_instance:g} in flight per instance over {len(best.usable)} instance(s)")
    if unusable:
        parts.append(f"not usable now: {', '.join(unusable)}")
    return "; ".join(parts)


def _instance_view(inst: Instance) -> dict[str, Any]:
    return {
        "instance_id": inst.instance_id,
        "base_url": inst.base_url,
        "host": inst.host,
        "status": inst.status,
        "health": inst.health,
        "draining": inst.maintenance,
        "version": inst.version,
        "pid": inst.metadata.get("pid"),
        "device": inst.metadata.get("device"),
        "load": {k: inst.load.get(k) for k in ("inflight", "queued", "max_inflight") if k in inst.load},
    }


def _str_list(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
