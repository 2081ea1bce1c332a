"""FlashDock end to end in real headless Chromium, as a chemist and as an operator would use it.

Chemist: Home → an example prediction with its 3D view → a series SDF → experimental tag → scatter →
a ligand in 3D. Operator: Monitor → kill a worker → its row turns red → drain it with a reason and a
confirmation. Nothing may be fetched from outside the app (favicon, fonts, viewer). Screenshots of
each step go to .ci/artifacts/screenshots/ (git-ignored; override with FLASHDOCK_SCREENSHOTS).
Skips when chromium or chromedriver is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from flashdock.compass_api import build_plan
from tests.flashdock.fleet import examples_zip, instances, shared_fleet, start_echo
from tests.support import REPO, Proc, free_port, python_env, spawn, wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHOTS = Path(os.environ.get("FLASHDOCK_SCREENSHOTS", REPO / ".ci" / "artifacts" / "screenshots"))

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
    args = ["-m", "flashdock", "--port", str(port)]  # the product's own launcher: its safe defaults are under test
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
        "--headless=new", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
        "--disable-quic", "--no-first-run",
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


def external_requests(driver: Any, base: str) -> list[str]:
    """Every resource the page (and its favicon) loaded from anywhere but the app itself."""
    urls = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".concat([...document.querySelectorAll('link[rel~=icon]')].map(l => l.href))"
    )
    return [u for u in urls if not u.startswith((base, "data:", "blob:"))]


def select_option(driver: Any, label: str, option: str, prefix: bool = False) -> None:
    """Pick ``option`` (or the first option starting with it) in the Streamlit selectbox labelled ``label``."""
    from selenium.webdriver.common.by import By

    def box() -> Any:
        for widget in driver.find_elements(By.CSS_SELECTOR, "div[data-testid=stSelectbox]"):
            if widget.text.startswith(label):
                return widget
        return None

    widget = wait_until(box, timeout=20, interval=0.25, what=f"selectbox {label!r}")

    def pick() -> bool:  # clicks retried: the list may still be opening (not interactable yet)
        options = [
            o
            for o in driver.find_elements(By.CSS_SELECTOR, "[role=option]")
            if o.text.strip() == option or (prefix and o.text.strip().startswith(option))
        ]
        if not options:
            widget.find_element(By.CSS_SELECTOR, "button[aria-haspopup=listbox]").click()  # a react-aria combobox
            return False
        options[0].click()
        return True

    wait_until(pick, timeout=15, interval=0.5, what=f"option {option!r}")


def upload_file(driver: Any, label: str, path: Path) -> None:
    """Give ``path`` to the file uploader whose label starts with ``label``."""
    from selenium.webdriver.common.by import By

    def field() -> Any:
        for widget in driver.find_elements(By.CSS_SELECTOR, "[data-testid=stFileUploader]"):
            if widget.text.startswith(label):
                return widget.find_element(By.CSS_SELECTOR, "input[type=file]")
        return None

    wait_until(field, timeout=20, interval=0.25, what=f"uploader {label!r}").send_keys(str(path))


def viewer_ready(driver: Any, index: int = 0) -> bool:
    """Whether the 3Dmol view in the ``index``-th iframe has drawn (a WebGL canvas and its ready flag)."""
    from selenium.webdriver.common.by import By

    frames = driver.find_elements(By.TAG_NAME, "iframe")
    if len(frames) <= index:
        return False
    driver.switch_to.frame(frames[index])
    try:
        return bool(driver.execute_script("return window.fdViewerReady === true && !!document.querySelector('canvas')"))
    finally:
        driver.switch_to.default_content()


def shoot(driver: Any, name: str) -> None:
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def test_chemist_example_series_scatter_and_3d_view(app: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    base = app["app"].base_url
    browser.get(base + "/")
    wait_text(browser, "predicts how tightly a small molecule binds")
    wait_text(browser, "Fleet:")
    assert "Deploy" not in body(browser), "Streamlit's developer toolbar is on"
    assert "echo" not in body(browser)
    shoot(browser, "chemist_1_home")
    assert not external_requests(browser, base), external_requests(browser, base)

    browser.get(base + "/predict")
    click_button(browser, "Predict")
    wait_text(browser, "Measured pK")
    assert "Fallback used" in body(browser)
    wait_until(lambda: viewer_ready(browser), timeout=30, what="the 3D view to draw")
    wait_text(browser, "Residues within 5 Å")
    browser.execute_script("document.querySelector('iframe').scrollIntoView()")
    shoot(browser, "chemist_2_example_3d")

    folder = REPO.parent / "shared" / "data" / "fep" / "jacs_set" / "tyk2"
    if not folder.is_dir():
        pytest.skip("the series step needs ../shared/data/fep (TYK2)")
    series = app["tmp"] / "tyk2_series.sdf"
    series.write_text("$$$$\n".join((folder / "tyk2_ligands.sdf").read_text().split("$$$$\n")[:8]) + "$$$$\n")
    browser.get(base + "/predict")
    wait_until(
        lambda: browser.find_elements(By.XPATH, "//label[.//p[text()='Upload']]"), timeout=20, what="the Upload choice"
    )[0].click()
    upload_file(browser, "Protein (PDB", folder / "tyk2_protein.pdb")
    upload_file(browser, "Ligands (SDF", series)
    wait_text(browser, "8 ligands in")
    click_button(browser, "Predict")
    wait_text(browser, "8 of 8 ligands scored", timeout=90)
    select_option(browser, "Experimental value (SD tag)", "r_exp_dg")
    wait_text(browser, "Spearman")
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight / 3)")
    shoot(browser, "chemist_3_series_scatter")
    select_option(browser, "Ligand to inspect", "3. ", prefix=True)
    wait_until(lambda: viewer_ready(browser), timeout=30, what="the series ligand in 3D")
    browser.execute_script("document.querySelector('iframe').scrollIntoView()")
    shoot(browser, "chemist_4_series_ligand_3d")
    assert not external_requests(browser, base), external_requests(browser, base)


def test_operator_kill_a_worker_then_drain_it(app: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    base = app["app"].base_url
    echo = start_echo(app["tmp"], app["registry"], "echo-e2e")
    app["procs"].append(echo)
    spare = start_echo(app["tmp"], app["registry"], "echo-e2e-spare")
    app["procs"].append(spare)
    echo_id = next(i["instance_id"] for i in instances(app["registry"]) if i["base_url"] == echo.base_url)
    spare_id = next(i["instance_id"] for i in instances(app["registry"]) if i["base_url"] == spare.base_url)
    browser.get(base + "/monitor")
    wait_text(browser, "live (heartbeat ages every 1 s)")
    wait_until(lambda: "Needs attention" not in body(browser), timeout=15, what="an all-passing fleet")
    wait_text(browser, "Instances")  # the table is drawn on a canvas: the ids are not page text
    shoot(browser, "operator_1_monitor")
    echo.kill9()
    # No reload: the fragment's own refresh must bring the news.
    wait_text(browser, f"{echo_id} is critical", timeout=30)
    shoot(browser, "operator_2_worker_killed")
    # The test fleet forgets a dead instance after 5 s: drain the live spare (a reason, then a confirmation).
    select_option(browser, "Instance", spare_id)
    reason = browser.find_element(By.CSS_SELECTOR, "input[aria-label='Reason (shown to other operators)']")
    reason.send_keys("worker crashed: investigating")
    reason.send_keys("\n")
    click_button(browser, "Drain…")
    wait_text(browser, "Confirm drain")
    shoot(browser, "operator_3_drain_confirmation")
    assert next(i for i in instances(app["registry"]) if i["instance_id"] == spare_id)["status"] != "maintenance"
    click_button(browser, "Confirm drain")
    wait_text(browser, "maintenance (drained)")
    wait_text(browser, "Drained on purpose")
    shoot(browser, "operator_4_drained")
    assert next(i for i in instances(app["registry"]) if i["instance_id"] == spare_id)["status"] == "maintenance"


def test_upload_dataset_then_start_and_stop_training(app: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By

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
    shoot(browser, "training_1_data")

    browser.get(base + "/training")
    wait_text(browser, "New training job")
    browser.find_element(By.XPATH, "//summary[.//*[text()='New training job']]").click()
    # A plan long enough to stop by hand: no validation split (so no early stop), 10,000 epochs.
    plan = app["tmp"] / "long_plan.json"
    plan.write_text(json.dumps(build_plan("compass", "tiny", 10_000, 5e-4, 0, val_fraction=0.0)))
    upload_file(browser, "…or an experiment plan", plan)
    click_button(browser, "Start job")
    wait_text(browser, "Started job-")
    wait_text(browser, "status running", timeout=30)
    wait_text(browser, "/10000", timeout=60)  # the live progress bar of the selected job
    click_button(browser, "Stop job")

    def stop_recorded() -> bool:
        """The job record's own stop line (not the one-off toast). The detail fragment redraws on its own
        timer: a click that lands during a redraw is lost, so the button is pressed again while it shows."""
        if "stop requested at" in body(browser):
            return True
        again = [b for b in browser.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Stop job"]
        if again:
            again[0].click()
        return False

    wait_until(stop_recorded, timeout=40, interval=3, what="the job's stop line")
    wait_text(browser, "status cancelled", timeout=40)  # the detail fragment shows the transition unaided
    shoot(browser, "training_2_stopped")
