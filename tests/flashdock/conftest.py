"""One real fleet (registry, compass-lite, codon) for every FlashDock test: workers take seconds to start.

The fleet is the session's (``tests.flashdock.fleet.shared_fleet``), shared with tests/e2e when both
run in one session; what only some modules need (sequence-model workers, a hanging worker) is
started by those modules and registered in the same registry.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.flashdock.fleet import shared_fleet, upload_examples


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
