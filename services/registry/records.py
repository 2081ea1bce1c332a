"""What the catalog keeps per instance and hands out: the health record, copies, and list filters.

Apart from :mod:`services.registry.catalog` so that module is the catalog's locking and index
alone, and the SQLite and etcd catalogs visibly share one record and one set of health rules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from services.common.envelope import ApiError, ErrorCode
from services.common.instance import Instance, default_base_url, worst
from services.registry.ownership import Owner
from services.registry.store import StoredInstance


@dataclass
class Entry:
    """An instance plus the bookkeeping the health logic needs."""

    inst: Instance
    last_beat: float  # monotonic time of the last heartbeat (or of registration / restore)
    reported: str = "passing"  # what the worker itself said
    ttl_critical: bool = False
    check_state: str | None = None
    check_fails: int = 0
    check_oks: int = 0
    next_check: float = 0.0
    beat_dirty: bool = False
    state_dirty: bool = False  # health changed by a heartbeat: written with the next flush
    owner: Owner | None = None  # who may change it (services.registry.ownership)

    def stored(self) -> StoredInstance:
        return StoredInstance(self.inst, self.reported, self.ttl_critical, self.check_state, self.owner)

    def live(self, now: float, ttl_s: float) -> bool:
        """Heard from within the TTL: a re-registration of its id then needs its secret."""
        return not self.ttl_critical and now - self.last_beat <= ttl_s

    def recompute(self) -> bool:
        """Refresh health/status from the three sources; True when the visible state changed."""
        health = worst(self.reported, "critical" if self.ttl_critical else None, self.check_state)
        status = "maintenance" if self.inst.maintenance else health
        if self.ttl_critical:
            reason = "no heartbeat within the TTL"
        elif self.check_state == "critical":
            reason = "active check failing"
        elif self.reported != "passing":
            reason = f"reported {self.reported} by the worker"
        else:
            reason = ""
        changed = (health, status, reason) != (self.inst.health, self.inst.status, self.inst.status_reason)
        self.inst.health, self.inst.status, self.inst.status_reason = health, status, reason
        return changed

    def renew(self, now: float, stamp: str, status: str | None, load: dict[str, Any] | None) -> bool:
        """Apply one heartbeat (catalog lock held); True when the visible state changed.

        The one renewal rule for a worker's own beat (``Catalog.heartbeat``) and a node agent's
        (``NodeBeats.node_heartbeat``): a visible change is marked for the next flush.
        """
        self.last_beat = now
        self.inst.last_heartbeat = stamp
        self.beat_dirty = True
        if load is not None:
            self.inst.load = load
        if status is not None:
            self.reported = status
        was_ttl_critical = self.ttl_critical
        self.ttl_critical = False
        if self.recompute() or was_ttl_critical:
            self.state_dirty = True
            return True
        return False


class Beat(NamedTuple):
    """What a heartbeat reply says: the resulting status and the recorded time."""

    status: str
    last_heartbeat: str | None


@dataclass
class Query:
    """Filters of a list query; every given filter must match."""

    name: str | None = None
    tags: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    capability: str | None = None
    meta: dict[str, str] = field(default_factory=dict)

    def matches(self, inst: Instance) -> bool:
        if self.name is not None and inst.service_name != self.name:
            return False
        if self.statuses and inst.status not in self.statuses:
            return False
        if self.tags and not all(t in inst.tags for t in self.tags):
            return False
        if self.capability is not None and self.capability not in inst.capabilities:
            return False
        for key, want in self.meta.items():
            have = inst.metadata.get(key)
            if have is None:
                return False
            if isinstance(have, list):
                if want not in [str(v) for v in have]:
                    return False
            elif _meta_str(have) != want:
                return False
        return True


def _meta_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def next_check_state(entry: Entry, success: bool) -> str | None:
    """Count one active-check result; the check state once the spec's thresholds are applied."""
    spec = entry.inst.check
    assert spec is not None
    if success:
        entry.check_oks, entry.check_fails = entry.check_oks + 1, 0
        recovered = entry.check_state == "critical" and entry.check_oks >= spec.successes_before_passing
        return "passing" if recovered or entry.check_state is None else entry.check_state
    entry.check_fails, entry.check_oks = entry.check_fails + 1, 0
    return "critical" if entry.check_fails >= spec.failures_before_critical else entry.check_state


def stored_copy(entry: Entry) -> StoredInstance:
    return StoredInstance(copy_instance(entry.inst), entry.reported, entry.ttl_critical, entry.check_state, entry.owner)


def copy_instance(inst: Instance) -> Instance:
    """A detached copy, so callers never see (or mutate) state under the lock."""
    return Instance(
        **{
            **inst.__dict__,
            "tags": list(inst.tags),
            "metadata": dict(inst.metadata),
            "load": dict(inst.load),
        }
    )


def require_serialisable(inst: Instance) -> None:
    """400 unless the instance survives the store's own encoding and reads back the same.

    Validation bounds every field; this is the last guard, so a record that could not be listed
    or restored (a value JSON cannot carry, nesting past the interpreter's limit) is never committed.
    """
    try:
        data = inst.to_dict()
        same = json.loads(json.dumps(data, separators=(",", ":"), allow_nan=False)) == data
    except (TypeError, ValueError, RecursionError) as exc:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"the registration cannot be stored as JSON: {exc}") from None
    if not same:
        raise ApiError(ErrorCode.INVALID_REQUEST, "the registration does not read back as it was sent")


def check_url(inst: Instance) -> str:
    """Where an active check probes: the instance's own host and port (never another netloc the
    base URL might name), the base URL's scheme and path prefix, then the check's plain path."""
    assert inst.check is not None
    scheme, _, rest = inst.base_url.partition("://")
    _, slash, prefix = rest.partition("/")
    origin = default_base_url(inst.host, inst.port, scheme or "http")
    return origin + (slash + prefix.rstrip("/") if prefix else "") + inst.check.path
