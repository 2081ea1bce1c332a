"""The Dock page in real headless Chromium: an example protein, a SMILES, one docking, the pose in 3D.

Reuses the FlashDock browser test's fixtures (the app on a free port, Chromium) and adds a dock
worker to the session fleet. Vina runs at exhaustiveness 1 so the docking takes seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_flashdock_browser import (  # noqa: F401 - fixtures are found by name
    app,
    body,
    browser,
    click_button,
    external_requests,
    fleet,
    select_option,
    shoot,
    viewer_ready,
    wait_text,
)
from tests.flashdock.fleet import instances, spawn_worker, wait_ready
from tests.support import Proc, wait_until

pytest.importorskip("vina")


@pytest.fixture(scope="module")
def dock_worker(app: dict[str, Any]) -> Iterator[Proc]:  # noqa: F811 - the imported fixture
    registry = app["registry"]
    args = ["-m", "docking.worker", "--state-dir", str(app["tmp"] / "dock"), "--drain-timeout", "5"]
    proc = wait_ready(spawn_worker(app["tmp"], registry, "dock-e2e", args), "dock", timeout=120)
    try:
        wait_until(lambda: any(i["service_name"] == "dock" for i in instances(registry)), timeout=20)
        yield proc
    finally:
        proc.stop()


def set_number(driver: Any, label: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = wait_until(lambda: driver.find_element(By.CSS_SELECTOR, f"input[aria-label='{label}']"), timeout=10)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(value, Keys.ENTER)


def test_dock_a_smiles_and_see_the_pose(app: dict[str, Any], browser: Any, dock_worker: Proc) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base = app["app"].base_url
    browser.get(base + "/dock")
    wait_text(browser, "SMILES (one per line")
    select_option(browser, "Example complex", "1o3f")
    area = browser.find_element(By.CSS_SELECTOR, "textarea")
    area.send_keys("NC(=N)c1ccccc1 benzamidine", Keys.CONTROL, Keys.ENTER)
    browser.find_element(By.XPATH, "//*[text()='Docking settings']").click()
    set_number(browser, "Exhaustiveness", "1")
    set_number(browser, "Poses", "2")
    wait_text(browser, "Box: padding")
    assert "Ring conformers" in body(browser)
    shoot(browser, "chemist_5_dock_settings")
    click_button(browser, "Dock")
    wait_text(browser, "compass-lite", timeout=300)
    wait_until(lambda: viewer_ready(browser), timeout=60, what="the docked pose in 3D")
    assert "benzamidine" in body(browser)
    browser.execute_script("document.querySelector('iframe').scrollIntoView()")
    shoot(browser, "chemist_5_dock_pose_3d")
    assert not external_requests(browser, base), external_requests(browser, base)
