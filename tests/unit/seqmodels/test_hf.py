"""The hf adapter on a tiny model the test builds and saves: loading offline, tasks, limits, configuration."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from seqmodels.hf import HFModel, make_hf_model
from seqmodels.settings import SeqSettings
from services.common.envelope import ApiError
from services.common.settings import WorkerSettings
from tests.unit.seqmodels.tiny_hf import build_tiny_esm


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_tiny_esm(tmp_path_factory.mktemp("tiny-esm"))


@pytest.fixture(scope="module")
def model(model_dir) -> HFModel:
    m = HFModel(model_dir, SeqSettings(batch_wait_ms=1), capabilities=["protein-embedding", "protein-likelihood"])
    m.load()
    yield m
    m.batcher.close()


def test_embedding_per_token_and_mean_from_a_model_on_disk(model) -> None:
    out = model.predict({"sequence": "MKTAYIAKQR", "task_type": "protein-embedding"})
    assert (out["dim"], out["num_tokens"], out["layer"]) == (32, 10, 2)
    assert out["tokens"] == list("MKTAYIAKQR"), "ESM tokenises one letter per token; special tokens dropped"
    assert torch.allclose(torch.tensor(out["per_residue"]).mean(0), torch.tensor(out["mean"]), atol=1e-5)
    assert out == model.predict({"sequence": "MKTAYIAKQR", "task_type": "embedding"}), "deterministic"


def test_pseudo_log_likelihood_through_the_masked_lm_head(model) -> None:
    out = model.predict({"sequence": "MKTAYIAKQR", "task_type": "protein-likelihood", "options": {"per_residue": True}})
    assert out["num_tokens"] == 10 and len(out["per_residue"]) == 10
    assert out["pseudo_log_likelihood"] == pytest.approx(sum(out["per_residue"]) / 10, abs=1e-5)
    assert out["pseudo_log_likelihood"] < 0


def test_limits_come_from_the_model_config(model) -> None:
    assert model.max_length("embedding") == 126  # 130 positions less ESM's padding offset, CLS and EOS
    with pytest.raises(ApiError) as info:
        model.predict({"sequence": "M" * 127})
    assert info.value.code.value == "SEQUENCE_TOO_LONG"
    info_doc = model.info()
    assert info_doc["kind"] == "hf" and info_doc["capabilities"] == ["protein-embedding", "protein-likelihood"]
    assert info_doc["task_type_aliases"] == {
        "protein-embedding": "embedding",
        "protein-likelihood": "pseudo_log_likelihood",
    }


def test_an_encoder_without_lm_head_serves_embeddings_only(tmp_path) -> None:
    folder = build_tiny_esm(tmp_path / "encoder", masked_lm=False)
    encoder = HFModel(folder, capabilities=["dna-embedding", "dna-likelihood"], alphabet="dna", service_name="dnabert")
    encoder.load()
    assert encoder.tasks == ("embedding",) and encoder.task_aliases == {"dna-embedding": "embedding"}
    assert encoder.service_name == "dnabert" and encoder.kind == "hf"
    with pytest.raises(ApiError) as info:
        encoder.predict({"sequence": "ACGT", "task_type": "pseudo_log_likelihood"})
    assert info.value.code.value == "INVALID_REQUEST"
    with pytest.raises(ApiError) as info:
        encoder.predict({"sequence": "MKV"})
    assert info.value.code.value == "INVALID_SEQUENCE", "the dna alphabet was configured"
    encoder.batcher.close()


def test_configuration_errors_stop_the_worker_at_start(tmp_path) -> None:
    args = argparse.Namespace(
        model_dir=None,
        max_length=5120,
        max_batch_items=100,
        batch_size=16,
        batch_wait_ms=5.0,
        pll_chunk=64,
        torch_threads=0,
        capabilities=None,
        alphabet="protein",
        name="hf",
        device="cpu",
        space_separated=False,
        trust_remote_code=False,
    )
    with pytest.raises(SystemExit, match="--model-dir"):
        make_hf_model(args, WorkerSettings())
    args.model_dir = tmp_path
    with pytest.raises(SystemExit, match=r"config\.json"):
        make_hf_model(args, WorkerSettings())


def test_a_pll_cut_into_slices_scores_exactly_as_one_pass(model_dir) -> None:
    """Issue 18: the batcher schedules a PLL in pieces of bounded cost; the answer must not change."""
    body = {"sequence": "MKTAYIAKQRQISFVKSHFSRQ", "task_type": "pseudo_log_likelihood"}
    body["options"] = {"per_residue": True}
    whole = HFModel(model_dir, SeqSettings(pass_residues=10_000), capabilities=["protein-likelihood"])
    sliced = HFModel(model_dir, SeqSettings(pass_residues=50), capabilities=["protein-likelihood"])
    for m in (whole, sliced):
        m.load()
    request = sliced.parse(body)
    assert len(sliced.pieces(request)) == 11 and len(whole.pieces(request)) == 1  # 50 // 22 = 2 positions a piece
    assert sliced.cost(request) == 22 * 22 == sum(sliced.cost(p) for p in sliced.pieces(request))
    a, b = whole.predict(body), sliced.predict(body)
    assert b["per_residue"] == pytest.approx(a["per_residue"], abs=1e-5)
    assert b["pseudo_log_likelihood"] == pytest.approx(a["pseudo_log_likelihood"], abs=1e-6)
    for m in (whole, sliced):
        m.batcher.close()
