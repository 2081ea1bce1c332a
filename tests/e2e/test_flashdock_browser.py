"""FlashDock end to end in real headless Chromium: home, one prediction, a bad upload, the Monitor after a kill.

Screenshots go to build/test-output/flashdock/ (git-ignored; override with FLASHDOCK_SCREENSHOTS).
Skips when chromium or chromedriver is not installed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.flashdock.fleet import examples_zip, instances, shared_fleet, start_echo
from tests.support import REPO, Proc, free_port, python_env, spawn, wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHOTS = Path(os.environ.get("FLASHDOCK_SCREENSHOTS", REPO / "build" / "test-output" / "flashdock"))

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()), reason="needs Debian chromium + chromium-driver"
)


@pytest.fixture(scope="session")
def fleet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The session's fleet: the same one tests/flashdock uses when both folders run in one session."""
    return shared_fleet(request, tmp_path_factory)


@pytest.fixture(scope="module")
def app(fleet: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`streamlit run flashdock/Home.py` on a free port, against the fleet."""
    tmp = tmp_path_factory.mktemp("e2e")
    port = free_port()
    args = ["-m", "streamlit", "run", "flashdock/Home.py", "--server.headless", "true", "--server.port", str(port)]
    args += ["--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    proc: Proc = spawn(
        args, tmp / "streamlit.log", f"http://127.0.0.1:{port}", env=python_env(OMP_NUM_THREADS="1", **fleet["env"])
    )
    try:
        wait_until(lambda: requests.get(proc.base_url + "/_stcore/health", timeout=1).ok, timeout=60, what="streamlit")
        yield {**fleet, "tmp": tmp, "app": proc}
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="flashdock-chromium-")
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1280,1500", f"--user-data-dir={profile}",
    ):  # fmt: skip
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def body(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def wait_text(driver: Any, text: str, timeout: float = 30) -> None:
    wait_until(lambda: text in body(driver), timeout=timeout, interval=0.25, what=f"{text!r} on the page")


def click_button(driver: Any, label: str) -> None:
    from selenium.webdriver.common.by import By

    def find() -> Any:
        buttons = [b for b in driver.find_elements(By.TAG_NAME, "button") if b.text.strip() == label and b.is_enabled()]
        return buttons[0] if buttons else None

    wait_until(find, timeout=20, interval=0.25, what=f"button {label!r}").click()


def test_home_predict_and_monitor(app: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    base = app["app"].base_url
    browser.get(base + "/")
    wait_text(browser, "Registry reachable")
    wait_text(browser, "compass-lite")  # the table renders after the banner
    browser.save_screenshot(str(SHOTS / "home.png"))

    browser.get(base + "/predict")
    click_button(browser, "Predict")
    wait_text(browser, "Kd equivalent")
    assert "Fallback used" in body(browser)
    wait_until(lambda: browser.find_elements(By.TAG_NAME, "iframe"), timeout=10, what="the 3D view")
    browser.save_screenshot(str(SHOTS / "predict.png"))

    # A bad file is a message on the page, never a traceback.
    browser.find_element(By.XPATH, "//label[.//p[text()='Upload']]").click()
    bad = app["tmp"] / "broken_pocket.pdb"
    bad.write_text("this is not a structure\n")
    wait_until(
        lambda: len(browser.find_elements(By.CSS_SELECTOR, "input[type=file]")) >= 2, timeout=10, what="uploaders"
    )
    inputs = browser.find_elements(By.CSS_SELECTOR, "input[type=file]")
    inputs[0].send_keys(str(bad))
    inputs[1].send_keys(str(REPO / "examples" / "complexes" / "1a30" / "1a30_ligand.sdf"))
    click_button(browser, "Predict")
    wait_text(browser, "Prediction failed")
    assert "INVALID_STRUCTURE" in body(browser) and "Traceback" not in body(browser)
    browser.save_screenshot(str(SHOTS / "predict_bad_file.png"))

    echo = start_echo(app["tmp"], app["registry"], "echo-e2e")
    app["procs"].append(echo)
    echo_id = next(i["instance_id"] for i in instances(app["registry"]) if i["base_url"] == echo.base_url)
    browser.get(base + "/monitor")
    wait_text(browser, "refreshed every")
    wait_until(lambda: "Needs attention" not in body(browser), timeout=15, what="an all-passing fleet")
    browser.save_screenshot(str(SHOTS / "monitor.png"))
    echo.kill9()
    # No reload: the fragment's own refresh must bring the news.
    wait_text(browser, f"{echo_id} is critical", timeout=30)
    browser.save_screenshot(str(SHOTS / "monitor_after_kill.png"))


def test_upload_dataset_then_start_and_stop_training(app: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base = app["app"].base_url
    archive = app["tmp"] / "examples.zip"
    archive.write_bytes(examples_zip())
    browser.get(base + "/data")
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "input[type=file]"), timeout=30, what="the uploader")
    browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(archive))
    wait_text(browser, "examples.zip")
    click_button(browser, "Upload")
    wait_text(browser, "Uploaded as ds-")
    wait_text(browser, "is ready: 3 usable", timeout=60)  # the report fragment follows validation by itself
    browser.save_screenshot(str(SHOTS / "data.png"))

    browser.get(base + "/training")
    wait_text(browser, "New training job")
    browser.find_element(By.XPATH, "//summary[.//*[text()='New training job']]").click()
    epochs = wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "input[aria-label='Epochs']"), timeout=20)[0]
    epochs.send_keys(Keys.CONTROL, "a")
    epochs.send_keys("500", Keys.TAB)
    click_button(browser, "Start job")
    wait_text(browser, "Started job-")
    wait_text(browser, "status running", timeout=30)
    wait_text(browser, "/500", timeout=60)  # the live progress bar of the selected job
    click_button(browser, "Stop job")
    # The job record's own stop line, not the one-off success toast: the detail fragment refreshes
    # on its own timer and may redraw before a poll sees a transient message.
    wait_text(browser, "stop requested at", timeout=30)
    wait_text(browser, "status cancelled", timeout=40)  # the detail fragment shows the transition unaided
    browser.save_screenshot(str(SHOTS / "training.png"))
