"""One real fleet (registry, compass-lite, codon) for every FlashDock test: workers take seconds to start.

The fleet is the session's (``tests.flashdock.fleet.shared_fleet``), shared with tests/e2e when both
run in one session; what only some modules need (sequence-model workers, a hanging worker) is
started by those modules and registered in the same registry.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.flashdock.fleet import shared_fleet, upload_examples
from tests.support import wait_until


@pytest.fixture(scope="session")
def fleet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return shared_fleet(request, tmp_path_factory)


@pytest.fixture(scope="session")
def dataset_id(fleet: dict[str, Any]) -> str:
    """The example complexes as a ready dataset on the compass-lite worker (uploaded once per session)."""
    return upload_examples(fleet)


@pytest.fixture(autouse=True)
def _flashdock_env(fleet: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """FlashDock's settings for the fleet, for the duration of one test only."""
    for key, value in fleet["env"].items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="package", autouse=True)
def _release_meshes() -> Iterator[None]:
    """Close FlashDock's shared Mesh when these tests end.

    The pages run in this process, and ``get_mesh`` keeps one Mesh (with registry watcher threads)
    in Streamlit's resource cache. Left open, those watchers go on calling this fleet's registry
    while later tests run, and tests that record HTTP calls (``responses``) see them.
    """
    yield
    import streamlit as st

    st.cache_resource.clear()  # on_release closes each Mesh and stops its watchers
    wait_until(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("registry-watch")],
        timeout=15,
        what="FlashDock's registry watchers to stop",
    )
