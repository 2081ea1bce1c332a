"""AntiBERTy's masked-scoring and in-filling routes with the real weights, through the worker app."""

from __future__ import annotations

import pytest

from seqmodels.antiberty import AntibertyModel
from seqmodels.antiberty_infill import masked_scores
from seqmodels.settings import SeqSettings
from services.common.settings import WorkerSettings
from services.worker.app import create_worker_app
from tests.unit.seqmodels.fixtures import TRASTUZUMAB_VH, VH_FRAGMENT

pytest.importorskip("antiberty")
CDRH3 = list(range(99, 109))  # 1-based: WGGDGFYAMD


@pytest.fixture(scope="module")
def model() -> AntibertyModel:
    m = AntibertyModel(SeqSettings(batch_size=8, rate_limit_per_min=0))
    m.load()
    yield m
    m.batcher.close()


@pytest.fixture(scope="module")
def client(model: AntibertyModel):
    return create_worker_app(model, WorkerSettings(rate_limit_per_min=0)).test_client()


def test_masked_scores_at_every_position_equal_the_pseudo_log_likelihood(model: AntibertyModel) -> None:
    seq = VH_FRAGMENT[:20]
    ours = masked_scores(model.runner, [seq], [list(range(len(seq)))])[0]
    full = model.runner.pseudo_log_likelihood([seq])[0].numpy()
    assert ours == pytest.approx(full, abs=1e-4)


def test_score_route_masks_only_the_asked_positions(client) -> None:
    body = {
        "sequences": [TRASTUZUMAB_VH, TRASTUZUMAB_VH[:98] + "YTICSFYKLQ" + TRASTUZUMAB_VH[108:]],
        "positions": CDRH3,
    }
    data = client.post("/api/v1/antiberty/score", json=body).get_json()["data"]
    assert data["masked_passes"] == 20 and all(r["positions"] == CDRH3 for r in data["results"])
    parent, variant = (r["pseudo_log_likelihood"] for r in data["results"])
    assert parent > variant  # the natural CDR-H3 is likelier than a scrambled DMS non-binder
    bad = client.post("/api/v1/antiberty/score", json={"sequences": [TRASTUZUMAB_VH], "positions": [0]})
    assert bad.status_code == 400 and "outside the sequence" in bad.get_json()["error"]["details"]
    bad = client.post("/api/v1/antiberty/score", json={"sequences": ["EVQLZ"]})
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "INVALID_SEQUENCE"


def test_infill_samples_only_the_masked_positions(client) -> None:
    body = {"sequence": TRASTUZUMAB_VH, "positions": CDRH3, "n": 50, "seed": 3, "temperature": 1.5}
    data = client.post("/api/v1/antiberty/infill", json=body).get_json()["data"]
    variants = data["variants"]
    assert data["masked_passes"] == 1 and 1 <= len(variants) == data["distinct"] <= 50
    for v in variants:
        seq = v["sequence"]
        assert seq[:98] == TRASTUZUMAB_VH[:98] and seq[108:] == TRASTUZUMAB_VH[108:]
        assert all(98 <= int(m[1:-1]) - 1 < 108 for m in v["mutations"])
    assert [v["log_prob"] for v in variants] == sorted((v["log_prob"] for v in variants), reverse=True)
    assert client.post("/api/v1/antiberty/infill", json=body).get_json()["data"]["variants"] == variants  # seeded
    too_many = client.post("/api/v1/antiberty/infill", json={**body, "n": 10_000})
    assert too_many.status_code == 400 and "'n'" in too_many.get_json()["error"]["details"]
