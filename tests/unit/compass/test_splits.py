"""Splits never leak a protein across folds and never contain a CASF-2016 core id."""

from __future__ import annotations

import pytest

from compass.data import load_root
from compass.data.graph import ComplexRecord
from compass.data.roots import list_records
from compass.data.splits import exclude_ids, group_kfold, holdout_groups, read_id_file, record_id, sample_weights
from tests.support import shared_data


def _records(groups: list[str]) -> list[ComplexRecord]:
    return [ComplexRecord(key=f"k{i}", protein_path="", ligand_paths=[], pK=5.0, group=g) for i, g in enumerate(groups)]


def test_group_weights_balance_proteins() -> None:
    records = _records(["big"] * 9 + ["small"])
    w = sample_weights(records, "inverse_sqrt")
    assert w is not None and w[:9].sum() == pytest.approx(3 * w[9]) and w.mean() == pytest.approx(1.0)
    assert sample_weights(records, "none") is None
    with pytest.raises(ValueError, match="group weighting"):
        sample_weights(records, "log")


def test_group_kfold_on_fep_never_shares_a_protein_and_covers_every_record() -> None:
    _, records, _ = list_records(shared_data("fep"))
    folds = group_kfold(records, n_folds=5, seed=0)
    assert sorted(i for f in folds for i in f) == list(range(len(records)))
    proteins = [{records[i].group for i in fold} for fold in folds]
    for a in range(5):
        for b in range(a + 1, 5):
            assert not proteins[a] & proteins[b]
    sizes = [len(f) for f in folds]
    assert max(sizes) < 2 * min(sizes)  # balanced enough that every fold is a real test
    assert folds == group_kfold(records, n_folds=5, seed=0)  # reproducible
    assert folds != group_kfold(records, n_folds=5, seed=1)


def test_holdout_is_grouped_and_near_the_fraction() -> None:
    records = _records([f"p{i // 10}" for i in range(200)])
    train, val = holdout_groups(records, fraction=0.2, seed=3)
    assert not {records[i].group for i in train} & {records[i].group for i in val}
    assert 30 <= len(val) <= 50 and len(train) + len(val) == 200
    with pytest.raises(ValueError, match="two groups"):
        holdout_groups(_records(["a", "a"]), 0.5)


def test_too_few_groups_for_folds_is_an_error() -> None:
    with pytest.raises(ValueError, match="3 groups cannot fill 5 folds"):
        group_kfold(_records(["a", "b", "c"]), n_folds=5)


def test_pdbbind_split_never_contains_a_core_id() -> None:
    core = read_id_file(shared_data("pdbbind", "casf2016_core_ids.txt"))
    assert len(core) == 285 and "4x6p" in core
    loaded = load_root(shared_data("pdbbind", "sample"), progress=False)
    kept, excluded = exclude_ids(loaded.records, core)
    assert excluded, "the sample holds core complexes (4x6p, 1ps3...), so some must be excluded"
    train, val = holdout_groups([loaded.records[i] for i in kept], fraction=0.25, seed=0)
    used = {record_id(loaded.records[kept[i]]) for i in train + val}
    assert not used & core
    assert {record_id(loaded.records[i]) for i in excluded} <= core


def test_pdbqt_extra_already_excludes_casf2016() -> None:
    core = read_id_file(shared_data("pdbbind", "casf2016_core_ids.txt"))
    _, records, _ = list_records(shared_data("pdbqt_extra"))
    assert not {record_id(r) for r in records} & core
