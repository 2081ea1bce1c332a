"""The Instance model shared by registry and clients, and validation of what workers send.

Validation lives here (not in the registry routes) so the native API, the compatibility API
and the tests all apply exactly the same rules.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from services.common.addresses import canonical_host
from services.common.envelope import ApiError, ErrorCode

SERVICE_NAME_RE = re.compile(r"^[a-z0-9-]{1,63}$")
INSTANCE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")
BASE_URL_RE = re.compile(r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$")
TAG_RE = re.compile(r"^[A-Za-z0-9._:=\-]{1,64}$")
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*$"
)

HEALTH_STATES = ("passing", "warning", "critical")
STATUSES = (*HEALTH_STATES, "maintenance")
_SEVERITY = {"passing": 0, "warning": 1, "critical": 2}

# An active check probes the instance's own host and port at this path only: no query string,
# no fragment, nothing that could make the URL name another host; at most once a second.
CHECK_PATH_RE = re.compile(r"^/[A-Za-z0-9._~/-]{0,255}$")
MIN_CHECK_INTERVAL_S = 1.0

MAX_METADATA_BYTES = 8 * 1024
MAX_LOAD_BYTES = 2 * 1024
MAX_TAGS = 32
MAX_WEIGHT = 1000


def worst(*states: str | None) -> str:
    """The most severe of the given health states (None entries are ignored)."""
    present = [s for s in states if s]
    return max(present, key=_SEVERITY.__getitem__) if present else "passing"


def derive_instance_id(service_name: str, host: str, port: int) -> str:
    """A stable id for service+host+port, so a restarted worker replaces its own row."""
    digest = hashlib.sha256(f"{service_name}|{host.lower()}|{port}".encode()).hexdigest()[:12]
    return f"{service_name}-{digest}"


def default_base_url(host: str, port: int, scheme: str = "http") -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"{scheme}://[{host}]:{port}"
    except ValueError:
        pass
    return f"{scheme}://{host}:{port}"


@dataclass(frozen=True)
class CheckSpec:
    """An active HTTP check the registry runs against a worker (Consul-style thresholds)."""

    path: str = "/health/ready"
    interval_s: float = 5.0
    timeout_s: float = 2.0
    failures_before_critical: int = 3
    successes_before_passing: int = 2


@dataclass
class Instance:
    """One registered worker instance as the API shows it."""

    instance_id: str
    service_name: str
    host: str
    port: int
    base_url: str
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    weight: int = 1
    status: str = "passing"
    health: str = "passing"
    maintenance: bool = False
    maintenance_reason: str = ""
    status_reason: str = ""
    last_heartbeat: str | None = None
    registered_at: str | None = None
    load: dict[str, Any] = field(default_factory=dict)
    check: CheckSpec | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; shallow (metadata and load are shared), which is what a listing needs.

        Written out by hand: ``dataclasses.asdict`` deep-copies and made a 1,000-instance
        listing cost ~35 ms.
        """
        return {
            "instance_id": self.instance_id,
            "service_name": self.service_name,
            "host": self.host,
            "port": self.port,
            "base_url": self.base_url,
            "tags": self.tags,
            "metadata": self.metadata,
            "version": self.version,
            "weight": self.weight,
            "status": self.status,
            "health": self.health,
            "maintenance": self.maintenance,
            "maintenance_reason": self.maintenance_reason,
            "status_reason": self.status_reason,
            "last_heartbeat": self.last_heartbeat,
            "registered_at": self.registered_at,
            "load": self.load,
            "check": asdict(self.check) if self.check else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Instance:
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        if kwargs.get("check"):
            kwargs["check"] = CheckSpec(**kwargs["check"])
        return cls(**kwargs)

    @property
    def capabilities(self) -> list[str]:
        caps = self.metadata.get("capabilities") or []
        return [c for c in caps if isinstance(c, str)]

    @property
    def models(self) -> list[str]:
        models = self.metadata.get("models") or []
        return [m for m in models if isinstance(m, str)]


def _parses_as_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        return bool(parts.hostname) and (parts.port is None or 1 <= parts.port <= 65535)
    except ValueError:
        return False


def _bad(details: str) -> ApiError:
    return ApiError(ErrorCode.INVALID_REQUEST, details)


def _require_str(body: dict[str, Any], key: str, *, required: bool = True, max_len: int = 256) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise _bad(f"missing required field '{key}'")
        return None
    if not isinstance(value, str):
        raise _bad(f"'{key}' must be a string, got {type(value).__name__}")
    if len(value) > max_len:
        raise _bad(f"'{key}' is longer than {max_len} characters")
    return value


def validate_service_name(name: Any) -> str:
    if not isinstance(name, str) or not SERVICE_NAME_RE.match(name):
        raise _bad(f"service_name {name!r} must match [a-z0-9-]{{1,63}}")
    return name


def validate_host(host: str) -> str:
    """The canonical spelling of a valid host (:func:`canonical_host`: 127.1 is 127.0.0.1), else 400."""
    try:
        canonical = canonical_host(host)
    except ValueError as exc:
        raise _bad(f"host {host!r}: {exc}") from None
    try:
        ipaddress.ip_address(canonical.split("%", 1)[0])
        return canonical
    except ValueError:
        pass
    if not HOSTNAME_RE.match(canonical):
        raise _bad(f"host {host!r} is neither an IP address nor a valid host name")
    return canonical


def _canonical_base_url(base_url: str) -> str:
    """``base_url`` with its host in canonical spelling, so the row's two addresses agree."""
    parts = urlsplit(base_url)
    host = validate_host(parts.hostname or "")
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def validate_port(port: Any) -> int:
    if isinstance(port, bool) or not isinstance(port, int):
        raise _bad(f"'port' must be an integer, got {type(port).__name__}")
    if not 1 <= port <= 65535:
        raise _bad(f"port {port} is out of range 1-65535")
    return port


def validate_metadata(metadata: Any) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise _bad("'metadata' must be an object")
    size = len(json.dumps(metadata, separators=(",", ":")).encode())
    if size > MAX_METADATA_BYTES:
        raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, f"metadata is {size} bytes; the limit is {MAX_METADATA_BYTES}")
    for key in ("capabilities", "models"):
        value = metadata.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _bad(f"metadata.{key} must be a list of strings")
    return metadata


def validate_tags(tags: Any) -> list[str]:
    if tags is None:
        return []
    if not isinstance(tags, list) or len(tags) > MAX_TAGS:
        raise _bad(f"'tags' must be a list of at most {MAX_TAGS} strings")
    for tag in tags:
        if not isinstance(tag, str) or not TAG_RE.match(tag):
            raise _bad(f"tag {tag!r} must match [A-Za-z0-9._:=-]{{1,64}}")
    return list(dict.fromkeys(tags))


def validate_health(status: Any, *, field_name: str = "status") -> str:
    if status not in HEALTH_STATES:
        raise _bad(f"'{field_name}' must be one of {', '.join(HEALTH_STATES)}")
    return status


def validate_load(load: Any) -> dict[str, Any]:
    if load is None:
        return {}
    if not isinstance(load, dict):
        raise _bad("'load' must be an object")
    for key, value in load.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise _bad(f"load.{key} must be a number or a string")
        if isinstance(value, float) and not math.isfinite(value):
            raise _bad(f"load.{key} must be a finite number")
    if len(json.dumps(load).encode()) > MAX_LOAD_BYTES:
        raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, f"'load' exceeds {MAX_LOAD_BYTES} bytes")
    return load


def validate_check(check: Any) -> CheckSpec | None:
    if check is None:
        return None
    if not isinstance(check, dict):
        raise _bad("'check' must be an object")
    unknown = set(check) - set(CheckSpec.__dataclass_fields__)
    if unknown:
        raise _bad(f"unknown check fields: {', '.join(sorted(unknown))}")
    spec = CheckSpec(**check)
    if not isinstance(spec.path, str) or not CHECK_PATH_RE.match(spec.path):
        raise _bad("check.path must be a plain absolute path such as /health/ready (no query string, at most 256)")
    for name, low, high in (("interval_s", MIN_CHECK_INTERVAL_S, 3600), ("timeout_s", 0.05, 60)):
        value = getattr(spec, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise _bad(f"check.{name} must be a number of seconds between {low:g} and {high:g}")
    for name in ("failures_before_critical", "successes_before_passing"):
        value = getattr(spec, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
            raise _bad(f"check.{name} must be an integer between 1 and 100")
    return spec


def parse_registration(body: dict[str, Any]) -> Instance:
    """Validate a registration body into an :class:`Instance` (timestamps unset)."""
    name = validate_service_name(body.get("service_name"))
    host = validate_host(_require_str(body, "host", max_len=253) or "")
    port = validate_port(body.get("port"))
    instance_id = _require_str(body, "instance_id", required=False, max_len=128)
    if instance_id is not None and (not INSTANCE_ID_RE.match(instance_id) or instance_id == "register"):
        raise _bad("instance_id must match [A-Za-z0-9][A-Za-z0-9._-]{0,127} and not be 'register'")
    base_url = _require_str(body, "base_url", required=False, max_len=512)
    if base_url is None:
        base_url = default_base_url(host, port)
    elif not BASE_URL_RE.match(base_url) or not _parses_as_url(base_url):
        raise _bad("base_url must be an http:// or https:// URL such as http://10.0.0.5:8000")
    else:
        base_url = _canonical_base_url(base_url)
    weight = body.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= MAX_WEIGHT:
        raise _bad(f"'weight' must be an integer between 1 and {MAX_WEIGHT}")
    status = validate_health(body.get("status", "passing"))
    return Instance(
        instance_id=instance_id or derive_instance_id(name, host, port),
        service_name=name,
        host=host,
        port=port,
        base_url=base_url.rstrip("/"),
        tags=validate_tags(body.get("tags")),
        metadata=validate_metadata(body.get("metadata")),
        version=_require_str(body, "version", required=False, max_len=64) or "",
        weight=weight,
        status=status,
        health=status,
        load=validate_load(body.get("load")),
        check=validate_check(body.get("check")),
    )
