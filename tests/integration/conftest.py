"""Fixtures shared by the integration tests: a token-secured registry on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REGISTRY_FLAGS, Proc, start_registry


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Proc]:
    """A real registry process with a token, fast heartbeats and a 5 s removal."""
    proc = start_registry(tmp_path, *REGISTRY_FLAGS)
    yield proc
    proc.stop()
