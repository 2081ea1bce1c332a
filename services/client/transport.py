"""The HTTP edge of the Router: pooled sessions, replayable bodies, and what a failure proves.

The one question that decides a retry is *could the request have run on the worker?*
:func:`classify_exception` and :func:`classify_response` answer it once, here, from the
``requests``/urllib3 error chain and the status code, so the Router's rules stay readable.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter

from services.common.envelope_read import error_fields

# Statuses that prove the request did not run: the worker refused it up front (503 OVERLOADED,
# MODEL_NOT_LOADED or draining; 429 rate limited) or a gateway never got it through (502, 504).
NOT_RUN_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
IDEMPOTENT_PATHS = ("/predict", "/predict/batch")


def make_session(pool_maxsize: int = 64) -> requests.Session:
    """A keep-alive session whose adapter never retries by itself (the Router decides)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=32, pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def is_idempotent(method: str, path: str, declared: bool | None) -> bool:
    """The caller's word if given; else GET/PUT/DELETE (and HEAD/OPTIONS) and the predict routes."""
    if declared is not None:
        return declared
    return method.upper() in IDEMPOTENT_METHODS or path.split("?", 1)[0].rstrip("/") in IDEMPOTENT_PATHS


@dataclass(frozen=True)
class Failure:
    """What went wrong with one try, in the terms the retry rules need."""

    outcome: str
    reached: bool  # the request may have run on the worker
    refused: bool = False  # the worker's port refused the connection (the process is gone)
    details: str = ""


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it wraps (args, cause, context, urllib3's ``reason``)."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        cur = todo.pop()
        if any(cur is s for s in seen):
            continue
        seen.append(cur)
        for nxt in (cur.__cause__, cur.__context__, getattr(cur, "reason", None), *getattr(cur, "args", ())):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return seen


def classify_exception(exc: requests.RequestException) -> Failure:
    """Map a ``requests`` error to a :class:`Failure`; anything unclear counts as *reached*."""
    chain = _chain(exc)
    details = f"{type(exc).__name__}: {exc}"[:300]
    if any(isinstance(e, (urllib3.exceptions.NewConnectionError, ConnectionRefusedError)) for e in chain):
        return Failure("refused", reached=False, refused=True, details=details)
    if isinstance(exc, requests.ConnectTimeout):
        return Failure("connect-timeout", reached=False, details=details)
    if isinstance(exc, requests.Timeout):
        return Failure("read-timeout", reached=True, details=details)
    if isinstance(exc, requests.ConnectionError):
        return Failure("connection-lost", reached=True, details=details)
    return Failure("request-error", reached=True, details=details)


def classify_response(resp: requests.Response, body: Any) -> Failure | None:
    """None for an answer to hand back (2xx/3xx) or a final error (see :func:`is_final_error`)."""
    if resp.status_code < 400 or is_final_error(resp.status_code):
        return None
    _, details = error_fields(body)
    return Failure(
        f"http-{resp.status_code}",
        reached=resp.status_code not in NOT_RUN_STATUSES,
        details=details or resp.reason or "",
    )


def is_final_error(status: int) -> bool:
    """A 4xx other than 429: the worker understood and refused; no other instance will differ."""
    return 400 <= status < 500 and status != 429


def replayable_files(files: Any) -> Any:
    """Read file objects once into bytes, so a retry can send the same multipart body again."""
    if files is None:
        return None
    items = files.items() if isinstance(files, Mapping) else files
    out = []
    for name, value in items:
        if isinstance(value, tuple):
            filename, content, *rest = value
            out.append((name, (filename, _read(content), *rest)))
        elif hasattr(value, "read"):
            out.append((name, (os.path.basename(str(getattr(value, "name", name))), _read(value))))
        else:
            out.append((name, value))
    return out


def _read(content: Any) -> Any:
    if isinstance(content, io.IOBase) or hasattr(content, "read"):
        data = content.read()
        return data.encode() if isinstance(data, str) else data
    return content
