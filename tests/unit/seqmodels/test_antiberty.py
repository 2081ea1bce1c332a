"""AntiBERTy with its real weights: shapes, determinism, agreement with the wheel's own runner, PLL ranking."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from seqmodels.antiberty import MAX_RESIDUES, AntibertyModel
from seqmodels.settings import SeqSettings
from services.common.envelope import ApiError
from tests.unit.seqmodels.fixtures import TRASTUZUMAB_VH, TRASTUZUMAB_VL, VH_FRAGMENT

pytest.importorskip("antiberty")


@pytest.fixture(scope="module")
def model() -> AntibertyModel:
    m = AntibertyModel(SeqSettings(batch_size=8, batch_wait_ms=20))
    m.load()
    yield m
    m.batcher.close()


def embed(model: AntibertyModel, seq: str, **options) -> dict:
    return model.predict({"sequence": seq, "task_type": "embedding", "options": options})


def test_embeddings_have_the_documented_shape_and_are_deterministic(model) -> None:
    first = embed(model, TRASTUZUMAB_VH)
    assert (first["dim"], first["num_tokens"], first["layer"]) == (512, len(TRASTUZUMAB_VH), 8)
    assert len(first["per_residue"]) == len(TRASTUZUMAB_VH) and all(len(v) == 512 for v in first["per_residue"])
    mean = torch.tensor(first["per_residue"]).mean(dim=0)
    assert torch.allclose(mean, torch.tensor(first["mean"]), atol=1e-5), "mean is pooled over the residues"
    again = embed(model, TRASTUZUMAB_VH)
    assert again["mean"] == first["mean"] and again["per_residue"] == first["per_residue"]
    short = embed(model, TRASTUZUMAB_VL, per_residue=False, layer=0)
    assert "per_residue" not in short and short["layer"] == 0 and len(short["mean"]) == 512


def test_embeddings_match_the_runner_shipped_in_the_wheel(model) -> None:
    from antiberty import AntiBERTyRunner

    reference = AntiBERTyRunner()
    expected = reference.embed([VH_FRAGMENT])[0][1:-1]  # the runner keeps [CLS] and [SEP]
    ours = torch.tensor(embed(model, VH_FRAGMENT)["per_residue"])
    assert ours.shape == expected.shape and torch.allclose(ours, expected.cpu(), atol=1e-4)
    pll = reference.pseudo_log_likelihood([VH_FRAGMENT[:12]])[0].item()
    ours_pll = model.predict({"sequence": VH_FRAGMENT[:12], "task_type": "pseudo_log_likelihood"})
    assert ours_pll["pseudo_log_likelihood"] == pytest.approx(pll, abs=1e-4)


def test_pseudo_log_likelihood_ranks_a_real_antibody_above_a_scrambled_one(model) -> None:
    scrambled = list(VH_FRAGMENT)
    random.Random(7).shuffle(scrambled)
    real, fake = model.predict_batch(
        [
            {"sequence": VH_FRAGMENT, "task_type": "antibody-likelihood", "options": {"per_residue": True}},
            {"sequence": "".join(scrambled), "task_type": "pseudo_log_likelihood"},
        ]
    )
    assert real["success"] and fake["success"]
    real, fake = real["data"], fake["data"]
    assert real["pseudo_log_likelihood"] > fake["pseudo_log_likelihood"] + 1.0
    assert real["pseudo_perplexity"] < fake["pseudo_perplexity"]
    assert len(real["per_residue"]) == len(VH_FRAGMENT) and "per_residue" not in fake


def test_concurrent_requests_share_forward_passes_and_get_their_own_answers(model) -> None:
    sequences = [TRASTUZUMAB_VH[i : i + 30] for i in range(0, 80, 10)]
    alone = [embed(model, s, per_residue=False)["mean"] for s in sequences[:2]]
    labels = {"service": "antiberty", "task_type": "embedding"}

    def sample(name: str) -> float:
        return model.metrics.registry.get_sample_value(name, labels) or 0.0

    passes_before, sequences_before = sample("seqmodel_batch_size_count"), sample("seqmodel_batch_size_sum")
    with ThreadPoolExecutor(len(sequences)) as pool:
        together = list(pool.map(lambda s: embed(model, s, per_residue=False)["mean"], sequences))
    assert sample("seqmodel_batch_size_sum") - sequences_before == len(sequences)
    assert sample("seqmodel_batch_size_count") - passes_before < len(sequences), "some requests shared a pass"
    for a, b in zip(alone, together[:2], strict=True):
        assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-4), "padding in a batch changes nothing"


def test_limits_and_alphabet(model) -> None:
    assert model.max_length("embedding") == MAX_RESIDUES == 510
    with pytest.raises(ApiError) as info:
        embed(model, "A" * 511)
    assert info.value.code.value == "SEQUENCE_TOO_LONG"
    with pytest.raises(ApiError) as info:
        embed(model, "EVQLX")
    assert info.value.code.value == "INVALID_SEQUENCE"
    with pytest.raises(ApiError) as info:
        embed(model, "EVQL", layer=9)
    assert info.value.code.value == "INVALID_REQUEST"
    info_doc = model.info()
    assert info_doc["capabilities"] == ["protein-embedding", "antibody-likelihood"]
    assert info_doc["model"] == {"hidden_size": 512, "hidden_layers": 9}
