"""The query string of a worker's list routes: integers in range, ``limit``/``offset`` pages, ``?status=``.

Every kind's lists (jobs, datasets, models) page alike and answer ``{items, total, limit, offset}``;
a bad value is a 400 INVALID_REQUEST that names it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, request

from services.common.envelope import ApiError, ErrorCode, ok

MAX_LIMIT = 500
Lister = Callable[[list[str] | None, int, int], tuple[list[dict[str, Any]], int]]


def int_arg(name: str, default: int, lo: int, hi: int) -> int:
    """Query argument ``name`` as an integer in ``[lo, hi]``; ``default`` when absent or empty."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"{name} must be between {lo} and {hi}")
    return value


def paging() -> tuple[int, int]:
    """``(limit, offset)`` of a list call: 1 to :data:`MAX_LIMIT` items (50 by default) from ``offset``."""
    return int_arg("limit", 50, 1, MAX_LIMIT), int_arg("offset", 0, 0, 10**9)


def status_filter(allowed: tuple[str, ...]) -> list[str] | None:
    """The statuses of ``?status=a,b`` (None: every status); one outside ``allowed`` is a 400."""
    wanted = [s.strip() for s in request.args.get("status", "").split(",") if s.strip()]
    bad = [s for s in wanted if s not in allowed]
    if bad:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"unknown status {bad[0]!r}; use {', '.join(allowed)}")
    return wanted or None


def page(items: list[dict[str, Any]], total: int, limit: int, offset: int) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": limit, "offset": offset}


def listing(lister: Lister, statuses: tuple[str, ...]) -> Response:
    """One page of records filtered by ``?status=``: every list of jobs or datasets answers alike."""
    limit, offset = paging()
    items, total = lister(status_filter(statuses), limit, offset)
    return ok(page(items, total, limit, offset))
