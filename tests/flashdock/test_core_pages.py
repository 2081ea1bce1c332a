"""Home, Predict and Monitor against a real registry and real workers (AppTest, through Home.py's navigation)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from flashdock.pairs import examples
from tests.flashdock.apptest import by_label, open_page, texts, timed_open
from tests.flashdock.fleet import instances, start_echo
from tests.support import wait_until


@pytest.fixture
def hanging_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A port that accepts connections and never answers: the worst case for a page's responsiveness."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        monkeypatch.setenv("FLASHDOCK_REGISTRY_URL", url)
        yield url


def test_home_shows_fleet(fleet: dict[str, Any]) -> None:
    at = open_page()
    assert "Registry reachable" in texts(at)
    table = at.table[0].value
    assert {"compass-lite", "codon"} <= set(table.index)
    assert "codon-optimization" in " ".join(table["capabilities"])
    passing = next(m for m in at.metric if m.label == "Passing")
    assert int(passing.value) == sum(i["status"] == "passing" for i in instances(fleet["registry"]))


def test_home_registry_hanging_is_said_plainly_and_fast(hanging_registry: str) -> None:
    at, elapsed = timed_open()
    assert f"Registry NOT reachable at {hanging_registry}" in texts(at)
    assert elapsed < 3.0, f"page took {elapsed:.1f}s with a hanging registry"
    at, elapsed = timed_open("predict")  # a second page in the same app reuses the remembered failure
    assert "is not reachable" in texts(at)
    assert elapsed < 2.0


def test_predict_example_reports_fallback_and_matches_worker(fleet: dict[str, Any]) -> None:
    at = open_page("predict")
    assert at.radio[0].value == "auto"
    at.selectbox[0].set_value("1o3f")
    at.button[0].click().run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    pair = examples()["1o3f"]
    direct = requests.post(
        fleet["lite"].base_url + "/predict", files={"protein": pair.protein, "ligand": pair.ligand}, timeout=30
    ).json()["data"]
    assert float(metrics["pK"]) == pytest.approx(direct["pK"], abs=0.01)
    assert metrics["Model"] == "compass-lite"
    assert metrics["Kd equivalent"].endswith(("M", "nM", "µM", "pM", "mM"))
    assert "Fallback used" in texts(at)
    assert "served by **compass-lite**" in texts(at)
    assert at.get("iframe"), "the 3D view is missing"


def test_predict_compass_only_says_no_instance(fleet: dict[str, Any]) -> None:
    at = open_page("predict")
    at.radio[0].set_value("COMPASS").run()
    at.button[0].click().run()
    assert not at.exception
    assert "No usable worker for compass" in texts(at)
    assert not at.metric


def test_uploaded_pair_predicts_and_a_bad_structure_is_a_clear_message(fleet: dict[str, Any]) -> None:
    name, pair = next(iter(examples().items()))
    at = open_page("predict")
    by_label(at.radio, "Complex").set_value("Upload").run()
    by_label(at.file_uploader, "Protein (PDB or PDBQT)").set_value((*pair.protein, "chemical/x-pdb"))
    by_label(at.file_uploader, "Ligand (SDF, MOL2 or PDBQT)").set_value((*pair.ligand, "chemical/x-mdl-sdfile"))
    at.run()
    by_label(at.button, "Predict").click().run()
    assert not at.exception
    direct = requests.post(
        fleet["lite"].base_url + "/predict", files={"protein": pair.protein, "ligand": pair.ligand}, timeout=30
    ).json()["data"]
    assert float(next(m for m in at.metric if m.label == "pK").value) == pytest.approx(direct["pK"], abs=0.01), name

    by_label(at.file_uploader, "Protein (PDB or PDBQT)").set_value(("broken_pocket.pdb", b"not a pdb\n", "text/plain"))
    at.run()
    by_label(at.button, "Predict").click().run()
    assert not at.exception
    said = texts(at)
    assert "Prediction failed" in said and "INVALID_STRUCTURE" in said and "Traceback" not in said
    assert not at.metric, "the previous result must not stay on the page"


def test_monitor_rates_drain_and_dead_worker(fleet: dict[str, Any]) -> None:
    registry = fleet["registry"]
    echo = start_echo(fleet["tmp"], registry, "echo-monitor")
    fleet["procs"].append(echo)
    echo_id = next(i["instance_id"] for i in instances(registry) if i["base_url"] == echo.base_url)
    at = open_page("monitor")
    table = at.dataframe[0].value.set_index("instance")
    assert table.loc[echo_id, "state"] == "passing"
    assert table.loc[echo_id, "metrics"] == "up"

    at.selectbox[0].set_value(echo_id)
    drain = next(b for b in at.button if b.label == "Drain")
    drain.click().run()
    assert f"{echo_id}: maintenance" in texts(at)
    assert next(i for i in instances(registry) if i["instance_id"] == echo_id)["status"] == "maintenance"
    next(b for b in at.button if b.label == "Undrain").click().run()
    assert next(i for i in instances(registry) if i["instance_id"] == echo_id)["status"] != "maintenance"

    echo.kill9()

    def shows_dead() -> bool:
        page = open_page("monitor")
        return f"{echo_id} is critical" in texts(page)

    wait_until(shows_dead, timeout=20, interval=0.5, what="the Monitor to show the killed worker as critical")
