"""Metrics against scipy on known arrays, the merging and series rules, NaN edge cases, and the anchors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats

from compass.data.graph import NUM_ELEMENTS, ComplexGraph, ComplexRecord
from compass.train.metrics import (
    KCAL_PER_PK,
    bootstrap_pearson_ci,
    centred_rmse,
    fep_plus_anchor,
    fit_heavy_atom_line,
    heavy_atom_anchor,
    mae,
    merge_duplicates,
    pearson,
    per_series,
    rmse,
    score,
    score_anchors,
    score_records,
    spearman,
)

PRED = np.array([5.1, 6.3, 4.8, 7.9, 6.0, 5.5, 8.2, 3.9])
LABEL = np.array([5.0, 6.0, 5.5, 7.0, 6.5, 5.0, 8.0, 4.5])


def test_pooled_metrics_match_scipy_and_numpy() -> None:
    assert pearson(PRED, LABEL) == pytest.approx(stats.pearsonr(PRED, LABEL).statistic, abs=1e-12)
    assert spearman(PRED, LABEL) == pytest.approx(stats.spearmanr(PRED, LABEL).statistic, abs=1e-12)
    assert rmse(PRED, LABEL) == pytest.approx(math.sqrt(np.mean((PRED - LABEL) ** 2)))
    assert mae(PRED, LABEL) == pytest.approx(np.mean(np.abs(PRED - LABEL)))
    # Ties use average ranks, as scipy does.
    tied = np.array([1.0, 1.0, 2.0, 3.0])
    assert spearman(tied, [1, 2, 3, 4]) == pytest.approx(stats.spearmanr(tied, [1, 2, 3, 4]).statistic)


def test_constant_and_tiny_inputs_give_nan_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(pearson([5, 5, 5], [1, 2, 3]))
        assert math.isnan(spearman([1, 2, 3], [4, 4, 4]))
        assert math.isnan(pearson([1.0], [2.0]))
        assert math.isnan(rmse([], []))
        assert bootstrap_pearson_ci([1, 1, 1, 1], [1, 2, 3, 4]) == [pytest.approx(math.nan, nan_ok=True)] * 2
    with pytest.raises(ValueError, match="shapes"):
        pearson([1, 2], [1, 2, 3])


def test_centred_rmse_removes_each_series_offset() -> None:
    label = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    series = ["a", "a", "a", "b", "b", "b"]
    shifted = label + np.array([2, 2, 2, -1, -1, -1])  # a pure per-series offset: zero centred error
    assert centred_rmse(shifted, label, series) == pytest.approx(0.0)
    noisy = shifted + np.array([0.1, -0.1, 0.0, 0.3, 0.0, -0.3])
    expected = math.sqrt(np.mean(np.array([0.1, -0.1, 0.0, 0.3, 0.0, -0.3]) ** 2))
    assert centred_rmse(noisy, label, series) == pytest.approx(expected)
    assert centred_rmse(noisy, label) > 1.0  # without series, the offsets count


def test_duplicates_merge_by_mean_in_first_seen_order() -> None:
    mols = merge_duplicates(["s", "s", "s", "t"], ["m1", "m2", "m1", "m1"], [4.0, 6.0, 6.0, 1.0], [5.0, 7.0, 5.0, 2.0])
    assert list(mols.molecule) == ["m1", "m2", "m1"] and list(mols.series) == ["s", "s", "t"]
    np.testing.assert_allclose(mols.pred, [5.0, 6.0, 1.0])
    np.testing.assert_allclose(mols.label, [5.0, 7.0, 2.0])
    assert list(mols.n_records) == [2, 1, 1]
    # NaN predictions are ignored in the mean; an all-NaN molecule stays NaN.
    mols = merge_duplicates(["s", "s", "s"], ["a", "a", "b"], [np.nan, 3.0, np.nan], [1.0, 1.0, 2.0])
    assert mols.pred[0] == 3.0 and math.isnan(mols.pred[1])


def test_per_series_keeps_only_series_with_five_molecules() -> None:
    rng = np.random.default_rng(0)
    label = rng.normal(6, 1, 13)
    pred = label + rng.normal(0, 0.5, 13)
    series = ["big"] * 6 + ["five"] * 5 + ["tiny"] * 2
    out = per_series(pred, label, series)
    assert set(out["series"]) == {"big", "five"} and out["n_series"] == 2
    rhos = [stats.spearmanr(pred[s], label[s]).statistic for s in (slice(0, 6), slice(6, 11))]
    assert out["spearman"] == pytest.approx(np.mean(rhos))
    rs = [stats.pearsonr(pred[s], label[s]).statistic for s in (slice(0, 6), slice(6, 11))]
    assert out["pearson"] == pytest.approx(np.mean(rs))
    assert out["series"]["five"]["centred_rmse"] == pytest.approx(np.std(pred[6:11] - label[6:11]))


def test_constant_predictions_in_a_series_score_zero_constant_labels_are_left_out() -> None:
    label = np.array([1.0, 2, 3, 4, 5, 6, 6, 6, 6, 6, 1, 2, 3, 4, 5])
    pred = np.array([1.0, 2, 3, 4, 5, 1, 2, 3, 4, 5, 7, 7, 7, 7, 7])
    series = ["ok"] * 5 + ["flat-label"] * 5 + ["flat-pred"] * 5
    out = per_series(pred, label, series)
    assert set(out["series"]) == {"ok", "flat-pred"} and out["n_series_constant"] == 1
    assert out["series"]["flat-pred"]["spearman"] == 0.0 and out["spearman"] == pytest.approx(0.5)


def test_score_has_designs_keys_kcal_and_a_seeded_ci() -> None:
    series = ["a"] * 4 + ["b"] * 4
    out = score(PRED, LABEL, series, kcal=True, min_series_size=4, seed=7)
    assert out["n_molecules"] == 8 and out["n_series"] == 2
    assert set(out["pooled"]) == {"pearson", "spearman", "rmse", "mae"}
    assert set(out["per_series_mean"]) == {"spearman", "pearson", "centred_rmse"}
    assert out["kcal_mol"]["rmse"] == pytest.approx(out["pooled"]["rmse"] * KCAL_PER_PK)
    lo, hi = out["pooled_pearson_ci95"]
    assert lo < out["pooled"]["pearson"] < hi
    assert score(PRED, LABEL, series, seed=7)["pooled_pearson_ci95"] == [lo, hi]
    # NaN labels/predictions are not scored.
    pred = PRED.copy()
    pred[0] = np.nan
    assert score(pred, LABEL, series)["n_molecules"] == 7


def _graph(n_lig: int) -> ComplexGraph:
    n = n_lig + 3
    is_lig = torch.tensor([True] * n_lig + [False] * 3)
    atom_type = torch.zeros(n, dtype=torch.long) + NUM_ELEMENTS * is_lig.long()
    return ComplexGraph("k", atom_type, torch.zeros(n, 3), is_lig)


def test_anchors_heavy_atoms_and_fep_plus_where_present() -> None:
    records = [
        ComplexRecord(f"k{i}", "", [], pK=float(p), group="g", series="s", molecule=f"m{i // 2}", fep_plus_pK=f)
        for i, (p, f) in enumerate([(5, 5.2), (5, 5.0), (6, None), (6, None), (7, 7.1), (7, None), (8, 7.7), (8, 7.9)])
    ]
    graphs = [_graph(n) for n in (10, 10, 20, 20, 25, 25, 40, 40)]
    np.testing.assert_array_equal(heavy_atom_anchor(graphs), [10, 10, 20, 20, 25, 25, 40, 40])
    assert math.isnan(fep_plus_anchor(records)[2])
    anchors = score_anchors(records, graphs, min_series_size=2)
    assert anchors["heavy_atoms"]["n_molecules"] == 4 and anchors["heavy_atoms"]["pooled"]["spearman"] == pytest.approx(
        1
    )
    assert anchors["fep_plus"]["n_molecules"] == 3  # m1 has no FEP+ value
    assert anchors["fep_plus"]["pooled"]["mae"] == pytest.approx(np.mean([0.1, 0.1, 0.2]))
    assert set(anchors["fep_plus"]) == set(anchors["heavy_atoms"])
    assert math.isnan(anchors["heavy_atoms"]["pooled"]["rmse"])  # raw counts are not pK
    line = fit_heavy_atom_line(graphs, [r.pK for r in records])
    assert line[0] > 0
    calibrated = score_anchors(records, graphs, line, min_series_size=2)["heavy_atoms"]
    expected = heavy_atom_anchor(graphs, line)[::2] - np.array([5, 6, 7, 8])
    assert calibrated["pooled"]["rmse"] == pytest.approx(math.sqrt(np.mean(expected**2)))
    casf_like = [ComplexRecord("x", "", [], 5.0, "g"), ComplexRecord("y", "", [], 6.0, "g")]
    empty = score_anchors(casf_like, [_graph(3), _graph(4)])["fep_plus"]
    assert empty["n_molecules"] == 0 and math.isnan(empty["pooled"]["pearson"])


def test_score_records_merges_by_series_and_molecule() -> None:
    records = [ComplexRecord(f"k{i}", "", [], 5.0 + i // 2, "g", series="s", molecule=f"m{i // 2}") for i in range(10)]
    out = score_records(records, np.arange(10, dtype=float))
    assert out["n_molecules"] == 5 and out["n_series"] == 1
    assert out["pooled"]["pearson"] == pytest.approx(1.0)
