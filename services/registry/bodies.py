"""Request bodies the registry accepts: a small JSON object of bounded depth holding only finite numbers.

Everything a client stores (metadata, load, check, tags) arrives in a body, so bounding the body
bounds every stored value: nothing deeper than :data:`MAX_DEPTH` or holding NaN/Infinity can be
stored and then break the listing (or the restore) for every client. Nesting past the
interpreter's recursion limit is a 400 here, not a 500.
"""

from __future__ import annotations

import math
from typing import Any

from services.common.envelope import ApiError, ErrorCode, json_body
from services.registry.state import MAX_BODY_BYTES

# The body is level 1, metadata level 2: metadata may nest 14 levels of its own.
MAX_DEPTH = 16


def read_body() -> dict[str, Any]:
    """The current request's JSON object, checked by :func:`check_json`; errors in the envelope."""
    try:
        body = json_body(MAX_BODY_BYTES)
    except RecursionError:
        raise _too_deep() from None
    check_json(body)
    return body


def check_json(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """400 INVALID_REQUEST when ``value`` nests deeper than ``max_depth`` or holds a non-finite number.

    Iterative, so a hostile value cannot make the check itself recurse.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            if isinstance(item, float) and not math.isfinite(item):
                raise ApiError(ErrorCode.INVALID_REQUEST, "numbers must be finite (no NaN or Infinity)")
            continue
        if depth > max_depth:
            raise _too_deep(max_depth)
        stack.extend((child, depth + 1) for child in children)


def _too_deep(max_depth: int = MAX_DEPTH) -> ApiError:
    return ApiError(ErrorCode.INVALID_REQUEST, f"the JSON body nests deeper than {max_depth} levels")
