"""Predict affinity in batch mode: a zip of pairs uploaded through the page, the results table, CSV and chart.

The zip is built here from examples/complexes (the same files the page offers as examples), and every
pK the page reports is checked against the compass-lite worker answering the same pair directly.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pandas as pd
import pytest
import requests

from flashdock.pairs import Pair, examples
from tests.flashdock.apptest import by_label, capture_downloads, download_bytes, open_page, texts
from tests.flashdock.fleet import EXAMPLES


def pairs_zip(extra: dict[str, bytes] | None = None) -> bytes:
    """``batch/<id>/<id>_pocket.pdb`` + ``<id>_ligand.sdf`` for each example complex, plus ``extra`` entries."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for folder in sorted(p for p in EXAMPLES.iterdir() if p.is_dir()):
            for suffix in ("_pocket.pdb", "_ligand.sdf"):
                zf.write(folder / f"{folder.name}{suffix}", f"batch/{folder.name}/{folder.name}{suffix}")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def direct_pk(fleet: dict[str, Any], pair: Pair) -> float:
    files = {"protein": pair.protein, "ligand": pair.ligand}
    resp = requests.post(fleet["lite"].base_url + "/predict", files=files, timeout=30)
    assert resp.ok, resp.text
    return float(resp.json()["data"]["pK"])


def upload_and_run(data: bytes, name: str = "pairs.zip") -> Any:
    at = open_page("predict")
    at.file_uploader(key="batch_zip").set_value((name, data, "application/zip")).run()
    by_label(at.button, "Run batch").click().run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_batch_zip_gives_table_csv_and_chart(fleet: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    downloads = capture_downloads(monkeypatch)
    shipped = examples()
    assert len(shipped) >= 2, "examples/complexes should hold a few complexes"
    at = upload_and_run(pairs_zip({"batch/9xyz/9xyz_pocket.pdb": b"HEADER lonely pocket\n"}))

    said = texts(at)
    assert "Skipped files without a partner: 9xyz" in said
    assert f"{len(shipped)} of {len(shipped)} complexes scored." in said
    bar = at.get("progress")
    assert bar and bar[-1].value == 100, "the progress bar should end full"

    table = at.dataframe[0].value
    assert sorted(table["complex"]) == sorted(shipped)
    for row in table.to_dict("records"):
        assert row["pK"] == pytest.approx(direct_pk(fleet, shipped[row["complex"]]), abs=0.001), row
        assert (row["model"], row["fallback"], row["error"]) == ("compass-lite", True, ""), row  # "auto" fell back
        assert row["Kd"].endswith("M")

    csv = pd.read_csv(io.StringIO(download_bytes(at, "Download CSV", downloads).decode()))
    assert list(csv["complex"]) == list(table["complex"])
    assert list(csv["pK"]) == pytest.approx(list(table["pK"]))
    assert {"Kd", "model", "instance", "fallback", "ms", "error"} <= set(csv.columns)

    chart = at.get("vega_lite_chart")
    assert chart, "the pK chart is missing"


def test_batch_with_one_model_only_says_why_per_complex(fleet: dict[str, Any]) -> None:
    """COMPASS alone (no fallback) has no worker in this fleet: every row carries the reason, the page stays up."""
    at = open_page("predict")
    at.radio[0].set_value("COMPASS").run()
    at.file_uploader(key="batch_zip").set_value(("pairs.zip", pairs_zip(), "application/zip")).run()
    by_label(at.button, "Run batch").click().run(timeout=60)
    assert not at.exception
    assert f"0 of {len(examples())} complexes scored." in texts(at)
    errors = set(at.dataframe[0].value["error"])
    assert len(errors) == 1 and next(iter(errors)).startswith("No usable worker for compass"), errors
    assert not at.get("vega_lite_chart"), "no chart without a single score"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"this is not a zip", "Bad file: this file is not a zip archive"),
        (None, "Bad file: no pairs found"),
    ],
    ids=["not-a-zip", "no-pairs"],
)
def test_a_bad_zip_is_one_clear_message(fleet: dict[str, Any], data: bytes | None, message: str) -> None:
    if data is None:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("readme.txt", "no structures here")
        data = buf.getvalue()
    at = upload_and_run(data)
    assert message in texts(at)
    assert not at.dataframe and not at.download_button, "no results table for a bad file"
    assert "Traceback" not in texts(at)
