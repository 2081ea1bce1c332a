"""The Variants page against a real variant worker holding a real DMS slice and a model trained on it."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import requests

from tests.flashdock.apptest import by_label, capture_downloads, download_bytes, open_page, texts
from tests.flashdock.fleet import instances, start_worker
from tests.support import Proc, wait_until
from tests.unit.variants.dms import IMPORT_ARGS, TRASTUZUMAB_VH, dms_slice
from variants import store as store_cli
from variants import train


@pytest.fixture(scope="module")
def variant_worker(fleet: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A worker whose state holds 300 real DMS rows and serves a tiny CNN trained on them."""
    tmp = tmp_path_factory.mktemp("variant-page")
    state = tmp / "state"
    db = state / "variants.db"
    state.mkdir()
    assert store_cli.main(["add-source", "--db", str(db), "--id", "tz", "--sequence", TRASTUZUMAB_VH]) == 0
    assert store_cli.main(["import", "--db", str(db), "--csv", str(dms_slice(tmp, 150)), *IMPORT_ARGS]) == 0
    plan = tmp / "plan.json"
    plan.write_text(
        f'{{"data": {{"db": "{db}", "label": "AgClass"}}, "model": {{"name": "cnn", "filters": 8, "dense": 8}},'
        ' "train": {"max_epochs": 2}}'
    )
    assert train.main([str(plan), "--runs-dir", str(tmp / "runs"), "--run-id", "seeded", "--no-progress"]) == 0
    args = ["-m", "variants.service.worker", "--state-dir", str(state), "--run", str(tmp / "runs" / "seeded")]
    proc = start_worker(fleet["tmp"], fleet["registry"], "variant-page", args)
    wait_until(
        lambda: any(i["service_name"] == "variant" and i["status"] == "passing" for i in instances(fleet["registry"])),
        timeout=20,
        what="variant passing",
    )
    yield proc
    proc.stop()
    wait_until(lambda: not any(i["service_name"] == "variant" for i in instances(fleet["registry"])), timeout=20)


def test_data_score_and_design(variant_worker: Proc, monkeypatch: pytest.MonkeyPatch) -> None:
    downloads = capture_downloads(monkeypatch)
    at = open_page("variants")
    groups = at.dataframe[0].value
    assert set(groups["label"]) == {0.0, 1.0} and int(groups["n"].sum()) == 300
    lines = ["W99F", "WGGDGFYAMD", "YTICSFYKLQ"]
    at.text_area(key="variants_pasted").input("\n".join(lines))
    at.button(key="variants_score").click().run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    shown = next(d.value for d in at.dataframe if "score" in d.value.columns)
    direct = requests.post(variant_worker.base_url + "/predict", json={"variants": lines}, timeout=10).json()["data"]
    assert shown["score"].tolist() == pytest.approx(direct["scores"], rel=1e-5)
    assert "served by **variant**" in texts(at)

    by_label(at.selectbox, "Library").set_value("singles-doubles")
    by_label(at.number_input, "Top N").set_value(7)
    at.button(key="variants_design").click().run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    ranked = next(d.value for d in at.dataframe if "rank" in d.value.columns)
    assert ranked["rank"].tolist() == list(range(1, 8)) and ranked["score"].is_monotonic_decreasing
    csv = pd.read_csv(io.BytesIO(download_bytes(at, "Download library (CSV)", downloads)))
    assert csv["sequence"].str.len().eq(len(TRASTUZUMAB_VH)).all() and len(csv) == 7


def test_train_shows_live_status_then_roc_and_confusion_matrix(variant_worker: Proc) -> None:
    at = open_page("variants")
    by_label(at.number_input, "Max epochs").set_value(1)
    by_label(at.button, "Train").click().run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    task_id = at.session_state["variant_task"]
    assert task_id in texts(at) and "status **running**" in texts(at)
    wait_until(
        lambda: (
            requests.get(f"{variant_worker.base_url}/api/v1/training/tasks/{task_id}", timeout=5).json()["data"][
                "status"
            ]
            == "completed"
        ),
        timeout=120,
        interval=0.5,
        what="training",
    )
    at.run(timeout=60)
    metrics = {m.label: m.value for m in at.metric}
    worker = requests.get(f"{variant_worker.base_url}/api/v1/training/tasks/{task_id}/metrics", timeout=5).json()
    assert float(metrics["Test ROC-AUC"]) == pytest.approx(worker["data"]["metrics"]["test"]["roc_auc"], abs=1e-3)
    cm = worker["data"]["metrics"]["test"]["confusion_matrix"]
    table = at.table[0].value
    assert table.values.tolist() == [[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]]
    assert at.get("vega_lite_chart"), "the ROC curve is not drawn"
