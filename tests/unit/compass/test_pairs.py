"""Descriptor models: quick plan end to end, file round trip, intervals, domain read-out, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio

from compass.data.contacts import N_PAIRS
from compass.data.graph import ComplexRecord
from compass.data.ligand_props import FEATURE_NAMES, FP_BITS
from compass.data.pairs_table import CUTOFFS, GEOMETRY_SPEC, PairSet
from compass.model.checkpoint import CheckpointError, load_checkpoint
from compass.model.descriptors import descriptor_names
from compass.model.lite_format import save_pairs
from compass.model.pairs import Conformal, PairPredictor
from compass.train.pairs import PairPlan, quick_rows, train_pairs

PLANS = Path(__file__).resolve().parents[3] / "compass" / "weights" / "plans"


def synthetic_set(n: int = 300, seed: int = 0) -> PairSet:
    """Counts that carry signal (pK grows with close carbon contacts), 30 proteins, half the ligands known,
    a third of the rows local structures in 10 series whose geometry descriptor 0 orders them."""
    rng = np.random.default_rng(seed)
    base = rng.poisson(3.0, size=(n, 1, N_PAIRS)).astype(np.float32)
    counts = np.cumsum(np.repeat(base, len(CUTOFFS), axis=1), axis=1)
    y = 4.0 + 0.05 * counts[:, 4, :9].sum(1) + rng.normal(0, 0.3, n)
    props = rng.normal(size=(n, len(FEATURE_NAMES)))
    props[::2] = np.nan
    fps = rng.integers(0, 256, size=(n, FP_BITS // 8), dtype=np.uint8)
    geometry = np.full((n, len(descriptor_names(GEOMETRY_SPEC))), np.nan)
    local = np.arange(n) % 3 == 0
    geometry[local] = rng.normal(size=(local.sum(), geometry.shape[1]))
    geometry[local, 0] = np.exp(y[local] - 4.0)  # within a series, more of descriptor 0 means higher pK
    records = [
        ComplexRecord(
            f"pdbbind/x{i:03d}",
            "",
            [],
            float(y[i]),
            f"g{i % 30}",
            extra={"source": "pdbbind", "uniprot": [f"P{i % 30:05d}"]},
        )
        for i in range(n)
    ]
    for i in np.flatnonzero(local):
        records[i].series = f"s{i % 10}"
    return PairSet(records, counts, props, fps, np.arange(n) % 2 == 1, geometry)


def plan(name: str) -> PairPlan:
    return PairPlan.from_dict(json.loads((PLANS / name).read_text())).quickened()


@pytest.mark.parametrize("plan_file", ["pairs-lite.json", "pairs-stack.json"])
def test_quick_plan_trains_saves_and_loads_from_the_file_alone(plan_file: str, tmp_path: Path) -> None:
    data = synthetic_set()
    model = train_pairs(plan(plan_file), data, progress=False)
    path = save_pairs(model, tmp_path / "m.skops")
    loaded = load_checkpoint(path)
    assert isinstance(loaded, PairPredictor) and loaded.kind == model.kind
    cols = [CUTOFFS.index(c) for c in model.cutoffs]
    before = model.predict_arrays(data.counts[:, cols], data.props, data.geometry)
    after = loaded.predict_arrays(data.counts[:, cols], data.props, data.geometry)
    np.testing.assert_array_equal(before, after)
    assert (loaded.geometry is not None) == bool(plan(plan_file).within)
    assert np.corrcoef(before, data.pK)[0, 1] > 0.5  # it learnt the signal
    assert loaded.meta["grouped_cv"]["pearson_r"] > 0.3
    widths = loaded.conformal.halfwidths
    assert np.all(np.isfinite(widths)) and np.all(np.diff(widths) >= 0)  # wider at higher coverage


def test_within_series_term_moves_series_members_only_where_there_is_geometry() -> None:
    data = synthetic_set()
    model = train_pairs(plan("pairs-stack.json"), data, progress=False)
    term = model.geometry(data.geometry)
    table_rows = ~np.isfinite(data.geometry).all(axis=1)
    assert np.all(term[table_rows] == 0.0) and np.any(term[~table_rows] != 0.0)
    assert abs(float(term[~table_rows].mean())) < 1e-9  # centred on the local structures
    local = ~table_rows
    assert np.corrcoef(term[local], data.geometry[local, 0])[0, 1] > 0  # it learnt the within-series signal


def test_intervals_are_finite_ordered_and_cover_their_calibration_residuals() -> None:
    rng = np.random.default_rng(1)
    residuals = rng.normal(0, 1.2, 2000)
    conf = Conformal.fit(residuals)
    inner, outer = conf.interval(7.0, 0.5), conf.interval(7.0, 0.95)
    assert outer["low"] < inner["low"] < 7.0 < inner["high"] < outer["high"]
    assert abs(np.mean(np.abs(residuals) <= conf.halfwidths[1]) - 0.8) < 0.01
    with pytest.raises(ValueError):
        Conformal.fit(np.array([0.1, np.nan]))


def test_domain_read_out_names_nearest_ligand_and_protein(tmp_path: Path) -> None:
    data = synthetic_set()
    model = train_pairs(plan("pairs-lite.json"), data, progress=False)
    model.domain.sequences, model.domain.sequence_counts = [["MKTAYIAKQRQISFVKSHFSRQ"]], [7]
    model.domain.__post_init__()
    known_fp = data.fps[np.flatnonzero(data.has_fp)[0]]
    graph_pairs = {"fingerprint": known_fp, "sequence": ("MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ",), "uniprot": []}
    read = model.domain.read(graph_pairs)
    assert read["nearest_ligand_similarity"] == 1.0 and read["protein_seen"] == "yes"
    assert read["training_complexes_for_protein"] == 7
    by_uniprot = model.domain.read({"fingerprint": None, "sequence": (), "uniprot": ["P00003"]})
    assert by_uniprot["protein_seen"] == "yes" and by_uniprot["training_complexes_for_protein"] == 10
    assert by_uniprot["nearest_ligand_id"] is None and by_uniprot["ligand_note"]
    assert model.domain.read({"fingerprint": None, "sequence": (), "uniprot": ["Q99999"]})["protein_seen"] == "no"
    assert model.domain.read({"fingerprint": None, "sequence": (), "uniprot": []})["protein_seen"] == "unknown"


def test_forged_payload_is_refused(tmp_path: Path) -> None:
    data = synthetic_set()
    model = train_pairs(plan("pairs-lite.json"), data, progress=False)
    path = save_pairs(model, tmp_path / "m.skops")
    payload = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    payload["members"][0]["features_json"] = json.dumps({"shells": [4.0], "ligand_props": False})
    sio.dump(payload, tmp_path / "forged.skops")
    with pytest.raises(CheckpointError, match="features"):
        load_checkpoint(tmp_path / "forged.skops")
    payload = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    payload["kind"] = "something-else"
    sio.dump(payload, tmp_path / "forged-kind.skops")
    with pytest.raises(CheckpointError, match="kind"):
        load_checkpoint(tmp_path / "forged-kind.skops")


def test_quick_rows_is_reproducible() -> None:
    data = synthetic_set()
    a, b = quick_rows(data, 50, 3), quick_rows(data, 50, 3)
    assert [r.key for r in a.records] == [r.key for r in b.records] and len(a) == 50
