"""Home, Predict and Monitor against a real registry and real workers (AppTest, through Home.py's navigation)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from flashdock.pairs import examples
from tests.flashdock.apptest import by_label, open_page, texts, timed_open
from tests.flashdock.fleet import EXAMPLES, instances, start_echo
from tests.support import wait_until

PROTEIN_LABEL = "Protein (PDB or PDBQT)"
LIGAND_LABEL = "Ligands (SDF with one or many molecules, MOL2 or PDBQT)"


@pytest.fixture
def hanging_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A port that accepts connections and never answers: the worst case for a page's responsiveness."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        monkeypatch.setenv("FLASHDOCK_REGISTRY_URL", url)
        yield url


def direct(fleet: dict[str, Any], protein: tuple[str, bytes], ligand: tuple[str, bytes]) -> dict[str, Any]:
    resp = requests.post(fleet["lite"].base_url + "/predict", files={"protein": protein, "ligand": ligand}, timeout=30)
    assert resp.ok, resp.text
    return resp.json()["data"]


def test_home_says_what_flashdock_does_and_hides_internal_services(fleet: dict[str, Any]) -> None:
    echo = start_echo(fleet["tmp"], fleet["registry"], "echo-home")
    try:
        at = open_page()
        said = texts(at)
        assert "predicts how tightly a small molecule binds" in said
        assert "Score an example complex" in said and "Rank your series" in said and "Run a sequence model" in said
        assert "Fleet: 2 of 2 services up (codon, compass-lite)" in said, said
        assert "echo" not in said, "the internal echo service is shown to end users"
        pages = {link.proto.page for link in at.get("page_link")}
        for page in ("predict", "training", "data", "models", "sequence", "monitor"):
            assert any(page in p for p in pages), (page, pages)
    finally:
        echo.stop()


def test_home_registry_hanging_is_said_plainly_and_fast(hanging_registry: str) -> None:
    at, elapsed = timed_open()
    assert "The fleet is not reachable right now" in texts(at)
    assert elapsed < 3.0, f"page took {elapsed:.1f}s with a hanging registry"
    at, elapsed = timed_open("predict")  # a second page in the same app reuses the remembered failure
    assert "is not reachable" in texts(at)
    assert elapsed < 3.0, f"the second page took {elapsed:.1f}s: it waited on the registry again"


def test_predict_example_matches_worker_shows_measured_pk_and_a_3d_view(fleet: dict[str, Any]) -> None:
    at = open_page("predict")
    assert at.radio[0].value == "auto"
    assert "Validated figures of the models served now" in texts(at)
    at.selectbox[0].set_value("1o3f")
    by_label(at.button, "Predict").click().run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    pair = examples()["1o3f"]
    assert float(metrics["pK"]) == pytest.approx(direct(fleet, pair.protein, pair.ligand)["pK"], abs=0.01)
    assert metrics["Measured pK"] == f"{pair.experimental_pk:.2f}"
    assert metrics["Model"] == "compass-lite"
    said = texts(at)
    assert "Fallback used" in said and "served by **compass-lite**" in said
    assert "no validation figure" in said, "the tiny test model has no figure and the page must say so"
    [frame] = at.get("iframe")
    html = frame.proto.srcdoc
    assert "$3Dmol.createViewer" in html and "cartoon" in html and "addLabel" in html
    assert "https://" not in html.split("<script>", 2)[-1], "the set-up script must not load anything"
    assert "Residues within 5 Å:" in "\n".join(t.value for t in at.text)


def test_changing_an_input_clears_the_card(fleet: dict[str, Any]) -> None:
    at = open_page("predict")
    at.selectbox[0].set_value("1a30").run()
    by_label(at.button, "Predict").click().run()
    assert any(m.label == "pK" for m in at.metric)
    at.selectbox[0].set_value("2qbp").run()  # another complex: the 1a30 answer must not stand under it
    assert not at.metric and not at.get("iframe")
    assert "The inputs changed: press Predict" in texts(at)
    by_label(at.button, "Predict").click().run()
    assert any(m.label == "pK" for m in at.metric)
    at.radio[0].set_value("compass-lite").run()  # another model: the same
    assert not at.metric


def test_predict_compass_only_says_no_instance(fleet: dict[str, Any]) -> None:
    at = open_page("predict")
    at.radio[0].set_value("COMPASS").run()
    by_label(at.button, "Predict").click().run()
    assert not at.exception
    assert "No usable worker for compass" in texts(at)
    assert not at.metric


def upload(at: Any, protein: tuple[str, bytes], ligand: tuple[str, bytes]) -> None:
    by_label(at.file_uploader, PROTEIN_LABEL).set_value((*protein, "chemical/x-pdb"))
    by_label(at.file_uploader, LIGAND_LABEL).set_value((*ligand, "chemical/x-mdl-sdfile"))
    at.run()


def test_uploaded_mol2_is_predicted_and_drawn_and_a_bad_structure_is_a_clear_message(fleet: dict[str, Any]) -> None:
    folder = EXAMPLES / "1a30"
    protein = ("1a30_pocket.pdb", (folder / "1a30_pocket.pdb").read_bytes())
    mol2 = ("1a30_ligand.mol2", (folder / "1a30_ligand.mol2").read_bytes())
    at = open_page("predict")
    by_label(at.radio, "Complex").set_value("Upload").run()
    upload(at, protein, mol2)
    by_label(at.button, "Predict").click().run()
    assert not at.exception
    assert float(next(m for m in at.metric if m.label == "pK").value) == pytest.approx(
        direct(fleet, protein, mol2)["pK"], abs=0.01
    )
    caption = next(c.value for c in at.caption if "ligand heavy atoms" in c.value)
    assert " · 0 ligand heavy atoms" not in caption, caption
    assert '"format": "mol2"' in at.get("iframe")[0].proto.srcdoc

    by_label(at.file_uploader, PROTEIN_LABEL).set_value(("broken_pocket.pdb", b"not a pdb\n", "text/plain"))
    at.run()
    assert not at.metric, "the previous result must not stay on the page"
    by_label(at.button, "Predict").click().run()
    said = texts(at)
    assert "Prediction failed" in said and "INVALID_STRUCTURE" in said and "Traceback" not in said


def test_monitor_colours_totals_drain_confirmation_and_dead_worker(fleet: dict[str, Any]) -> None:
    registry = fleet["registry"]
    echo = start_echo(fleet["tmp"], registry, "echo-monitor")
    fleet["procs"].append(echo)
    echo_id = next(i["instance_id"] for i in instances(registry) if i["base_url"] == echo.base_url)
    at = open_page("monitor")
    totals, table = at.dataframe[0].value, at.dataframe[1].value
    assert {"compass-lite", "echo"} <= set(totals.index)
    assert int(totals.loc["compass-lite", "passing"]) >= 1
    table = table.data if hasattr(table, "data") else table  # a Styler (state colours) or its frame
    rows = table.set_index("instance")
    assert rows.loc[echo_id, "state"] == "passing" and rows.loc[echo_id, "metrics"] == "up"

    at.selectbox[0].set_value(echo_id)
    by_label(at.button, "Drain…").click().run()
    assert "Give a reason" in texts(at), "a drain without a reason must be refused"
    by_label(at.text_input, "Reason (shown to other operators)").input("kernel update")
    by_label(at.button, "Drain…").click().run()
    assert f"Drain `{echo_id}`?" in texts(at)
    assert next(i for i in instances(registry) if i["instance_id"] == echo_id)["status"] == "passing", (
        "nothing may change before the confirmation"
    )
    by_label(at.button, "Confirm drain").click().run()
    drained = next(i for i in instances(registry) if i["instance_id"] == echo_id)
    assert drained["status"] == "maintenance" and drained["maintenance_reason"] == "kernel update"
    at = open_page("monitor")
    assert "Drained on purpose" in texts(at) and "Needs attention" not in texts(at)
    at.selectbox[0].set_value(echo_id)
    by_label(at.button, "Undrain").click().run()
    assert next(i for i in instances(registry) if i["instance_id"] == echo_id)["status"] != "maintenance"

    echo.kill9()

    def shows_dead() -> bool:
        return f"{echo_id} is critical" in texts(open_page("monitor"))

    wait_until(shows_dead, timeout=20, interval=0.5, what="the Monitor to show the killed worker as critical")
