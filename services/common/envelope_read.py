"""Reading the envelope (:mod:`services.common.envelope`) on the client side: the one parser of its error.

Kept apart from the server half so that clients (Router, registry client, FlashDock, benchmarks)
do not import Flask to read an answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests


def response_json(resp: requests.Response) -> Any:
    """The JSON body, or None when there is no body or it is not JSON."""
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return None


def error_fields(body: Any) -> tuple[str | None, str]:
    """``(code, details)`` of an error envelope (None, '' when it is not one)."""
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        err = body["error"]
        return (str(err["code"]) if err.get("code") else None), str(err.get("details") or "")
    return None, ""


def error_text(resp: requests.Response) -> str:
    """One line for a log or an exception: the envelope's details (else its code), else the raw body or reason."""
    body = response_json(resp)
    code, details = error_fields(body)
    if details or code:
        return details or str(code)
    if body is None and resp.text:
        return resp.text[:200]
    return str(resp.reason or "")
