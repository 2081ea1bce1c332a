"""SpliceAI with the wheel's real weights: the annotated sites of HBB, context handling, strands, batching."""

from __future__ import annotations

import random

import pytest
import torch
from Bio.Seq import Seq

from seqmodels.settings import SeqSettings
from seqmodels.splice import FLANK, SpliceModel, reverse_complement, spliceai_model_files
from seqmodels.splice_net import SpliceAI, load_keras_h5, one_hot
from services.common.envelope import ApiError
from tests.unit.seqmodels.fixtures import (
    HBB_CDS_START,
    HBB_EXON1_DONOR,
    HBB_EXON2_ACCEPTOR,
    HBB_EXON2_DONOR,
    HBB_PROTEIN_EXONS_1_2,
    HBB_REGION,
)


@pytest.fixture(scope="module")
def model() -> SpliceModel:
    m = SpliceModel(SeqSettings(batch_wait_ms=1))
    m.load()
    yield m
    m.batcher.close()


@pytest.fixture(scope="module")
def hbb(model) -> dict:
    return model.predict({"sequence": HBB_REGION, "task_type": "splice-site"})


def test_the_fixture_is_the_annotated_gene() -> None:
    s = HBB_REGION
    exon1 = s[HBB_CDS_START - 1 : HBB_EXON1_DONOR]
    exon2 = s[HBB_EXON2_ACCEPTOR - 1 : HBB_EXON2_DONOR]
    assert str(Seq(exon1 + exon2).translate()) == HBB_PROTEIN_EXONS_1_2
    assert (
        s[HBB_EXON1_DONOR : HBB_EXON1_DONOR + 2] == "GT" and s[HBB_EXON2_ACCEPTOR - 3 : HBB_EXON2_ACCEPTOR - 1] == "AG"
    )
    assert HBB_EXON2_ACCEPTOR - HBB_EXON1_DONOR - 1 == 130 and HBB_EXON2_DONOR - HBB_EXON2_ACCEPTOR + 1 == 223


def test_spliceai_finds_the_annotated_donor_and_acceptor_above_background(hbb) -> None:
    acceptor, donor = torch.tensor(hbb["acceptor"]), torch.tensor(hbb["donor"])
    assert len(acceptor) == len(donor) == len(HBB_REGION)
    assert acceptor[HBB_EXON2_ACCEPTOR - 1] > 0.9 and donor[HBB_EXON1_DONOR - 1] > 0.9
    assert hbb["max_acceptor"]["position"] == HBB_EXON2_ACCEPTOR and hbb["max_donor"]["position"] == HBB_EXON1_DONOR
    assert float(acceptor.median()) < 1e-3 and float(donor.median()) < 1e-3
    # The exon-2 donor has 117 nt of real sequence downstream and N beyond: weaker, still far above background.
    assert donor[HBB_EXON2_DONOR - 1] > 100 * float(donor.median())
    sites = {(s["position"], s["type"]) for s in hbb["sites"]}
    assert sites == {(HBB_EXON1_DONOR, "donor"), (HBB_EXON2_ACCEPTOR, "acceptor")}


def test_flanking_context_is_used_exactly_like_the_same_nucleotides_in_the_sequence(model, hbb) -> None:
    start, end = 250, 560
    part = model.predict(
        {
            "sequence": HBB_REGION[start:end],
            "options": {"upstream": HBB_REGION[:start], "downstream": HBB_REGION[end:], "threshold": 0.3},
        }
    )
    assert part["context"] == {"upstream": start, "downstream": len(HBB_REGION) - end}
    assert torch.allclose(torch.tensor(part["acceptor"]), torch.tensor(hbb["acceptor"][start:end]), atol=1e-5)
    assert torch.allclose(torch.tensor(part["donor"]), torch.tensor(hbb["donor"][start:end]), atol=1e-5)
    assert {(s["position"] + start, s["type"]) for s in part["sites"]} >= {(HBB_EXON2_ACCEPTOR, "acceptor")}


def test_the_minus_strand_is_scored_on_the_reverse_complement_in_the_given_coordinates(model, hbb) -> None:
    minus = model.predict({"sequence": reverse_complement(HBB_REGION), "options": {"strand": "-", "scores": False}})
    assert "acceptor" not in minus
    assert {(len(HBB_REGION) + 1 - s["position"], s["type"]) for s in minus["sites"]} == {
        (s["position"], s["type"]) for s in hbb["sites"]
    }


def test_a_batch_with_different_lengths_answers_each_as_if_alone(model, hbb) -> None:
    items = [{"sequence": HBB_REGION, "options": {"scores": True}}, {"sequence": HBB_REGION[:200]}]
    full, short = (r["data"] for r in model.predict_batch(items))
    assert full["acceptor"] == hbb["acceptor"]
    alone = model.predict({"sequence": HBB_REGION[:200]})
    assert torch.allclose(torch.tensor(short["donor"]), torch.tensor(alone["donor"]), atol=1e-6)


def test_the_fused_ensemble_is_the_mean_of_its_members() -> None:
    files = spliceai_model_files()[:2]
    x = one_hot("N" * FLANK + HBB_REGION[:120] + "N" * FLANK)[None]
    with torch.inference_mode():
        fused = load_keras_h5(files)(x)
        members = torch.stack([load_keras_h5([f])(x) for f in files]).mean(dim=0)
    assert fused.shape == (1, 3, 120) and torch.allclose(fused, members, atol=1e-6)


def test_unpadded_convolutions_equal_keras_same_padding_then_crop() -> None:
    torch.manual_seed(0)
    net = SpliceAI().eval()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
    rng = random.Random(3)
    x = one_hot("".join(rng.choice("ACGTN") for _ in range(2 * FLANK + 150)))[None]

    def same_then_crop(x: torch.Tensor) -> torch.Tensor:  # the Keras graph, literally
        h = net.stem(x)
        skip = net.skip(h)
        for i, unit in enumerate(net.units):
            c1, c2 = unit.conv1, unit.conv2
            y = torch.conv1d(torch.relu(unit.bn1(h)), c1.weight, c1.bias, padding="same", dilation=c1.dilation)
            y = torch.conv1d(torch.relu(unit.bn2(y)), c2.weight, c2.bias, padding="same", dilation=c2.dilation)
            h = h + y
            if (i + 1) % 4 == 0:
                skip = skip + net.dense[i // 4](h)
        return torch.softmax(net.head(skip[:, :, FLANK:-FLANK]), dim=1)

    with torch.inference_mode():
        assert torch.allclose(net(x), same_then_crop(x), atol=1e-5)


def test_bad_input_and_options(model) -> None:
    for body, code in (
        ({"sequence": "ACGU"}, "INVALID_SEQUENCE"),
        ({"sequence": "ACGT", "options": {"upstream": "ACGX"}}, "INVALID_SEQUENCE"),
        ({"sequence": "ACGT", "options": {"strand": "+-"}}, "INVALID_REQUEST"),
        ({"sequence": "A" * 5121}, "SEQUENCE_TOO_LONG"),
    ):
        with pytest.raises(ApiError) as info:
            model.predict(body)
        assert info.value.code.value == code
    assert model.info()["limits"]["flank_context"] == FLANK
