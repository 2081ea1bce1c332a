"""Opening a FlashDock page the way a user does: through Home.py's navigation."""

from __future__ import annotations

import time
from pathlib import PurePosixPath
from typing import Any

import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1 import app_test as app_test_module

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


def by_label(widgets: Any, label: str) -> Any:
    """The first widget with this label (a clear failure when there is none)."""
    found = [w for w in widgets if w.label == label]
    assert found, f"no widget labelled {label!r}; have {[w.label for w in widgets]}"
    return found[0]


def capture_downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Keep every file the app hands to st.download_button (AppTest's media store is dropped after a run).

    Returns ``{file_id: bytes}``; :func:`download_bytes` finds a button's file in it.
    """
    files: dict[str, bytes] = {}

    class Capturing(MemoryMediaFileStorage):
        def load_and_get_id(self, path_or_data: Any, mimetype: str, kind: Any, filename: str | None = None) -> str:
            file_id = super().load_and_get_id(path_or_data, mimetype, kind, filename)
            files[file_id] = self.get_file(file_id).content
            return file_id

    monkeypatch.setattr(app_test_module, "MemoryMediaFileStorage", Capturing)
    return files


def download_bytes(at: AppTest, label: str, files: dict[str, bytes]) -> bytes:
    """What the download button ``label`` would save."""
    button = by_label(at.download_button, label)
    file_id = PurePosixPath(button.proto.url).stem
    assert file_id in files, f"{label!r} points at {button.proto.url!r}, not a captured file"
    return files[file_id]
