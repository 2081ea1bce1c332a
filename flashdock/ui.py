"""Turning failures into one clear sentence in the page: never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import streamlit as st

from flashdock.text import code_span
from services.client import (
    AllAttemptsFailed,
    ClientError,
    DeadlineExceeded,
    NoInstanceAvailable,
    RegistryUnavailable,
    RequestFailed,
)
from services.client.call import CallResult
from services.common.kinds import KIND_FOR_CAPABILITY

T = TypeVar("T")

NO_COMPASS = "No COMPASS worker is running. Ask your operator to start the fleet (scripts/run.sh starts all of it)."
START_HINT = "ask your operator to start one (kind `{kind}`; scripts/run.sh starts the whole fleet)"


def explain(exc: BaseException) -> str:
    """What went wrong, in the user's words, with what to do next."""
    if isinstance(exc, RegistryUnavailable):
        return f"The registry is not reachable ({exc}). Start it (scripts/run.sh) or set FLASHDOCK_REGISTRY_URL."
    if isinstance(exc, NoInstanceAvailable):
        chain = " → ".join(exc.services) or exc.target
        kind = KIND_FOR_CAPABILITY.get(exc.target, exc.target)
        return f"No usable worker for {chain}: {START_HINT.format(kind=kind)}."
    if isinstance(exc, RequestFailed):
        return f"The worker refused the request ({exc.code or exc.status}): {exc.details}"
    if isinstance(exc, DeadlineExceeded):
        return f"The call took too long and was abandoned: {exc}"
    if isinstance(exc, AllAttemptsFailed):
        last = exc.last.describe() if exc.last else ""
        return f"Every worker tried failed ({len(exc.attempts)} tries). Last: {last}"
    if isinstance(exc, ClientError):
        return str(exc)
    return f"Unexpected error ({type(exc).__name__}): {exc}"


def attempt(fn: Callable[[], T], what: str) -> T | None:
    """Run ``fn``; on failure show ``what`` failed and why, and return None."""
    try:
        return fn()
    except Exception as exc:
        st.error(f"{what} failed. {explain(exc)}")
        return None


def attempt_all(*calls: tuple[Callable[[], Any], str]) -> list[Any]:
    """:func:`attempt` for independent reads, sent at once: a page waits for the slowest, not the sum.

    Only the calls run in threads; the messages are written afterwards, in the page's own thread.
    """
    with ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="flashdock-read") as pool:
        futures = [pool.submit(fn) for fn, _ in calls]
    results: list[Any] = []
    for future, (_, what) in zip(futures, calls, strict=True):
        try:
            results.append(future.result())
        except Exception as exc:
            st.error(f"{what} failed. {explain(exc)}")
            results.append(None)
    return results


def served_by(result: CallResult) -> str:
    """One line saying who answered, flagging a fallback plainly (registry strings as code spans: never links)."""
    line = f"served by **{result.service}** · instance {code_span(result.instance)} · {result.attempts} attempt(s)"
    return line + (" · fallback used" if result.fallback_used else "")


def validation_text(validation: dict[str, Any] | None) -> str:
    """A model's advertised validation figure in one line (strings from the worker as code spans)."""
    if not validation or not isinstance(validation.get("value"), int | float):
        return "no validation figure"
    n = f", n={validation['n']}" if isinstance(validation.get("n"), int) else ""
    metric, split = code_span(validation.get("metric", "?"), 40), code_span(validation.get("split", "?"), 80)
    return f"{metric} {validation['value']:.2f} on {split}{n}"


def compass_page(title: str) -> tuple[Any, str]:
    """The head of every COMPASS page: title, registry banner, and the worker service to use.

    Stops the page with one message when no COMPASS service is up. Returns (mesh, service).
    """
    from flashdock import compass_api as api
    from flashdock.client import get_mesh

    st.title(title)
    registry_banner()
    mesh = get_mesh()
    services = api.services_up(mesh)
    if not services:
        st.error(NO_COMPASS)
        st.stop()
    service = st.selectbox("Worker service", services, help="jobs, datasets and models live on this service's workers")
    return mesh, service


def registry_banner() -> bool:
    """Show a red banner when the registry is down; True when it is reachable."""
    from flashdock.client import get_mesh

    fleet = get_mesh().fleet()
    if not fleet.reachable:
        st.error(
            f"Registry {get_mesh().settings.registry_url} is not reachable: {fleet.error or 'no answer'}. "
            "Showing the last known state, if any."
        )
    return fleet.reachable
