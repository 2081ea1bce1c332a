"""Plans name the bad key; splits keep test variants away from training; conflicting labels never straddle."""

from __future__ import annotations

import numpy as np
import pytest

from variants.dataset import build_variant_set
from variants.plan import PlanError, validate
from variants.splits import make_split

BASE = {"data": {"db": "x.db"}}


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ({**BASE, "train": {"lr": -1}}, "plan.train.lr: must be between"),
        ({**BASE, "train": {"batch_sise": 8}}, "plan.train.batch_sise: unknown key (did you mean 'batch_size'?)"),
        ({**BASE, "split": {"strategy": "kmeans"}}, "plan.split.strategy: must be one of random, hamming"),
        ({**BASE, "modle": {}}, "plan.modle: unknown key (did you mean 'model'?)"),
        ({"data": {}}, "plan.data.db: must be a non-empty string"),
        ({**BASE, "data": {"db": "x", "where": [["label; --", "=", 1]]}}, "plan.data.where: [0]: unknown column"),
        ({**BASE, "train": {"max_epochs": 2.5}}, "plan.train.max_epochs: must be an integer"),
    ],
)
def test_plan_errors_name_the_key(plan: dict, message: str) -> None:
    with pytest.raises(PlanError) as err:
        validate(plan)
    assert str(err.value).startswith(message), str(err.value)


def test_plan_defaults_and_model_options_pass_through() -> None:
    plan = validate({**BASE, "model": {"name": "cnn", "filters": 16}})
    assert plan["model"] == {"name": "cnn", "filters": 16}
    assert plan["split"]["strategy"] == "random" and plan["train"]["lr"] == pytest.approx(1e-3)


def random_windows(n: int, seed: int, letters: str = "ACDEFG", length: int = 6) -> list[str]:
    rng = np.random.default_rng(seed)
    return sorted({"".join(rng.choice(list(letters), length)) for _ in range(n)})


def test_hamming_split_keeps_every_test_variant_two_mutations_away() -> None:
    windows = random_windows(3000, 1)
    labels = np.random.default_rng(2).integers(0, 2, len(windows))
    sp = make_split(windows, labels, strategy="hamming", seed=4, test_fraction=0.2)
    codes = np.array([list(w) for w in windows])
    dist = (codes[sp.test][:, None, :] != codes[np.concatenate([sp.train, sp.val])][None, :, :]).sum(axis=2)
    assert dist.min() >= 2 and len(sp.excluded) > 0
    parts = [set(sp.train), set(sp.val), set(sp.test), set(sp.excluded)]
    assert sum(map(len, parts)) == len(windows) and len(set().union(*parts)) == len(windows)
    again = make_split(windows, labels, strategy="hamming", seed=4, test_fraction=0.2)
    assert np.array_equal(again.test, sp.test)  # seeded
    other = make_split(windows, labels, strategy="hamming", seed=5, test_fraction=0.2)
    assert not np.array_equal(other.test, sp.test)


def test_random_split_sets_the_test_class_balance() -> None:
    windows = random_windows(4000, 3)
    labels = (np.arange(len(windows)) % 3 == 0).astype(int)
    sp = make_split(windows, labels, strategy="random", seed=0, test_positive_fraction=0.1)
    assert labels[sp.test].mean() == pytest.approx(0.1, abs=0.01)
    assert labels[sp.train].mean() == pytest.approx(labels.mean(), abs=0.02)


def rows(*items: tuple[str, int, int]) -> list[dict]:
    return [
        {"template_id": "t", "template": "AAAA", "sequence": s, "label": lab, "reads": r, "mutant": s}
        for s, lab, r in items
    ]


def test_sequences_labelled_both_ways_are_dropped_or_resolved_by_reads() -> None:
    data = rows(("AAAC", 1, 5), ("AAAC", 0, 50), ("AAAD", 1, 3), ("AAAD", 1, 4), ("AAAE", 0, 2), ("AAAE", 1, 2))
    dropped = build_variant_set(data, conflicts="drop")
    assert dropped.sequences == ["AAAD"] and dropped.stats["conflicting_sequences"] == 2
    resolved = build_variant_set(data, conflicts="reads")
    assert dict(zip(resolved.sequences, resolved.labels.tolist(), strict=True)) == {"AAAC": 0, "AAAD": 1}
    assert resolved.region == (4, 4) and resolved.reads.tolist() == [55, 7]  # the tie (AAAE) is dropped
