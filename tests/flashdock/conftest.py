"""One real fleet (registry, compass-lite, codon) for every FlashDock page test: workers take seconds to start."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.flashdock.fleet import real_fleet


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with real_fleet(tmp_path_factory.mktemp("flashdock")) as state:
        yield state


@pytest.fixture(autouse=True)
def _flashdock_env(fleet: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """FlashDock's settings for the fleet, for the duration of one test only."""
    for key, value in fleet["env"].items():
        monkeypatch.setenv(key, value)
