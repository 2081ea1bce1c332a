"""Opening a FlashDock page the way a user does: through Home.py's navigation."""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

from tests.support import REPO

HOME = str(REPO / "flashdock" / "Home.py")


def open_page(page: str | None = None, timeout: float = 30) -> AppTest:
    """Run Home.py, switch to ``views/<page>.py``, and check the page rendered without an exception."""
    at = AppTest.from_file(HOME, default_timeout=timeout).run()
    if page:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def timed_open(page: str | None = None) -> tuple[AppTest, float]:
    start = time.monotonic()
    at = open_page(page)
    return at, time.monotonic() - start


def texts(at: AppTest) -> str:
    """Every message, markdown and caption on the page, joined: what a user reads."""
    parts = [
        e.value for kind in ("error", "warning", "success", "info", "markdown", "caption") for e in getattr(at, kind)
    ]
    return "\n".join(str(p) for p in parts)
