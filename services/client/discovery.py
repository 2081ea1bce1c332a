"""Discovery: which instances exist for a service name or a capability (tower's ``discover``).

The Router depends only on the :class:`Discovery` protocol; :class:`RegistryClient` is the real
one, :class:`StaticDiscovery` a fixed list for tests, benchmarks and registry-less setups.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.common.instance import SERVICE_NAME_RE, Instance


@dataclass(frozen=True)
class Snapshot:
    """The instances known for one lookup, and how fresh that knowledge is.

    ``stale`` is True when the registry could not be reached and these are the last known
    instances; ``error`` then says why, and ``age_s`` how old the last good answer is.
    """

    key: str
    instances: tuple[Instance, ...] = ()
    index: int = 0
    stale: bool = False
    error: str = ""
    age_s: float = 0.0
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Discovery(Protocol):
    """Resolves a service name or capability to a :class:`Snapshot`; cheap enough per request."""

    def lookup(self, target: str) -> Snapshot: ...


def looks_like_service_name(target: str) -> bool:
    return bool(SERVICE_NAME_RE.match(target))


class StaticDiscovery:
    """A fixed set of instances, matched by service name, else by capability. Thread-safe.

    Tests change it with :meth:`set`; it never goes stale.
    """

    def __init__(self, instances: Iterable[Instance | Mapping[str, Any]] = ()) -> None:
        self._lock = threading.Lock()
        self._instances: tuple[Instance, ...] = ()
        self._index = 0
        self.set(instances)

    def set(self, instances: Iterable[Instance | Mapping[str, Any]]) -> None:
        parsed = tuple(i if isinstance(i, Instance) else Instance.from_dict(dict(i)) for i in instances)
        with self._lock:
            self._instances = parsed
            self._index += 1

    @property
    def instances(self) -> Sequence[Instance]:
        with self._lock:
            return self._instances

    def lookup(self, target: str) -> Snapshot:
        with self._lock:
            by_name = tuple(i for i in self._instances if i.service_name == target)
            found = by_name or tuple(i for i in self._instances if target in i.capabilities)
            return Snapshot(key=target, instances=found, index=self._index, source="static")
