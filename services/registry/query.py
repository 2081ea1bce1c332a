"""Parsing and validating the query string of list calls (every bad value is a clear 400)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from werkzeug.datastructures import MultiDict

from services.common.envelope import ApiError, ErrorCode
from services.common.instance import SERVICE_NAME_RE, STATUSES, TAG_RE
from services.registry.catalog import Query

MAX_WAIT_PARAM_S = 600.0
MAX_INDEX = 10**17
_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")
_META_KEY_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_KNOWN = {"name", "tag", "status", "capability", "index", "wait"}


@dataclass
class ListParams:
    query: Query
    index: int | None
    wait_s: float | None


def _bad(details: str) -> ApiError:
    return ApiError(ErrorCode.INVALID_REQUEST, details)


def parse_duration(text: str) -> float:
    """'30', '30s', '500ms', '1m' → seconds."""
    match = _DURATION_RE.match(text.strip())
    if not match:
        raise _bad(f"wait={text!r} is not a duration such as 30, 30s or 500ms")
    value = float(match.group(1))
    unit = match.group(2) or "s"
    seconds = value / 1000 if unit == "ms" else value * 60 if unit == "m" else value
    if seconds > MAX_WAIT_PARAM_S:
        raise _bad(f"wait may be at most {MAX_WAIT_PARAM_S:.0f}s")
    return seconds


def parse_list_params(args: MultiDict[str, str]) -> ListParams:
    """Validate ``GET /services`` parameters; unknown parameters are refused (typos would match all)."""
    unknown = [key for key in args if key not in _KNOWN and not key.startswith("meta.")]
    if unknown:
        raise _bad(f"unknown query parameter(s): {', '.join(sorted(unknown))}")
    q = Query()
    name = args.get("name")
    if name is not None:
        if not SERVICE_NAME_RE.match(name):
            raise _bad(f"name={name!r} must match [a-z0-9-]{{1,63}}")
        q.name = name
    for tag in args.getlist("tag"):
        if not TAG_RE.match(tag):
            raise _bad(f"tag={tag!r} must match [A-Za-z0-9._:=-]{{1,64}}")
        q.tags.append(tag)
    for value in args.getlist("status"):
        for status in value.split(","):
            if status not in STATUSES:
                raise _bad(f"status={status!r} must be one of {', '.join(STATUSES)}")
            q.statuses.append(status)
    capability = args.get("capability")
    if capability is not None:
        if not TAG_RE.match(capability):
            raise _bad(f"capability={capability!r} must match [A-Za-z0-9._:=-]{{1,64}}")
        q.capability = capability
    for key in args:
        if key.startswith("meta."):
            meta_key = key[5:]
            if not _META_KEY_RE.match(meta_key):
                raise _bad(f"{key!r}: metadata keys must match [A-Za-z0-9_.-]{{1,64}}")
            q.meta[meta_key] = args[key]
    index = None
    if "index" in args:
        raw = args["index"]
        if not raw.isdigit() or len(raw) > 18 or int(raw) > MAX_INDEX:
            raise _bad(f"index={raw!r} must be an integer between 0 and {MAX_INDEX}")
        index = int(raw)
    wait_s = parse_duration(args["wait"]) if "wait" in args else None
    return ListParams(q, index, wait_s)
