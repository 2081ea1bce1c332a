"""The descriptor training table: sizes, protein groups that never share a UniProt entry, no CASF id."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from compass.data import FeatureSettings, featurize_files
from compass.data.ligand_props import tanimoto_max
from compass.data.pairs_table import CUTOFFS, load_set
from compass.data.splits import group_kfold, read_id_file
from compass.model.descriptors import describe
from tests.support import shared_data


@pytest.fixture(scope="module")
def train():  # a PairSet
    shared_data("pdbbind_features")
    return load_set("train")


def test_rows_and_sources(train) -> None:
    sources = dict(zip(*np.unique(train.sources, return_counts=True), strict=True))
    assert sources["pdbbind"] == 9299 and sources["fep"] == 1141 - 3  # 3 FEP records are CASF complexes
    assert sources["extra"] == 439 - 88  # pdbqt_extra ids that are table rows are dropped
    assert np.isfinite(train.pK).all() and len({r.key for r in train.records}) == len(train)
    assert (np.diff(train.counts, axis=1) >= 0).all()  # cumulative over cutoffs
    local = train.sources != "pdbbind"
    assert np.isfinite(train.geometry[local]).all() and np.isnan(train.geometry[~local]).all()


def test_no_casf_complex_in_training(train) -> None:
    """No CASF id among the rows; FEP series built on a CASF structure keep none of its ligand."""
    casf = read_id_file(shared_data("pdbbind", "casf2016_core_ids.txt"))
    assert len(casf) == 285 and not ({r.extra.get("pdb_id") for r in train.records} & casf)
    casf_set = load_set("casf")
    casf_fp = {r.key: casf_set.fps[i] for i, r in enumerate(casf_set.records)}
    on_casf = [i for i, r in enumerate(train.records) if str(r.extra.get("reference_pdb", "")).lower() in casf]
    assert on_casf  # 2qbp (PTP1B) and 4ivd (JAK1) are FEP reference structures
    for i in on_casf:
        ref = str(train.records[i].extra["reference_pdb"]).lower()
        assert tanimoto_max(train.fps[i], casf_fp[ref][None])[0] < 0.999, train.records[i].key


def test_grouped_folds_never_share_a_uniprot_entry(train) -> None:
    fold_of = {}
    for k, fold in enumerate(group_kfold(train.records, 5, seed=0)):
        for i in fold:
            fold_of[i] = k
    folds_of_entry: dict[str, set[int]] = defaultdict(set)
    for i, rec in enumerate(train.records):
        for entry in rec.extra.get("uniprot") or []:
            folds_of_entry[entry].add(fold_of[i])
    assert len(folds_of_entry) > 2000
    assert all(len(f) == 1 for f in folds_of_entry.values())
    # FEP series of one protein sit in one group (BACE1 appears under several reference structures).
    bace = {r.group for r in train.records if r.extra["source"] == "fep" and r.group and "bace" in r.key}
    assert len(bace) == 1


def test_serving_path_gives_the_training_features() -> None:
    """What a worker computes from uploaded files equals the evaluation table's row for the same complex."""
    casf = load_set("casf")
    folder = shared_data("casf2016", "1bcu")
    graph, _ = featurize_files(
        folder / "1bcu_pocket.pdb", [folder / "1bcu_ligand.sdf"], FeatureSettings(pair_cutoffs=CUTOFFS)
    )
    row = next(i for i, r in enumerate(casf.records) if r.key == "1bcu")
    np.testing.assert_array_equal(graph.pairs["counts"], casf.counts[row])
    np.testing.assert_allclose(graph.pairs["props"], casf.props[row])
    from compass.data.pairs_table import GEOMETRY_SPEC

    np.testing.assert_allclose(describe(graph, GEOMETRY_SPEC), casf.geometry[row], rtol=1e-6)


def test_quick_plan_trains_end_to_end_from_the_command_line(train, tmp_path) -> None:
    """``python -m compass.train.pairs --quick`` on the real table: a model file that loads and predicts."""
    import subprocess
    import sys

    from compass.model.checkpoint import load_checkpoint
    from tests.support import REPO

    out = tmp_path / "quick.skops"
    plan = REPO / "compass" / "weights" / "plans" / "pairs-stack.json"
    done = subprocess.run(
        [sys.executable, "-m", "compass.train.pairs", "--plan", str(plan), "--out", str(out), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "grouped CV R" in done.stdout
    model = load_checkpoint(out)
    assert model.kind == "compass" and model.meta["n_train"] == 1500
    casf = load_set("casf")
    cols = [CUTOFFS.index(c) for c in model.cutoffs]
    pred = model.predict_arrays(casf.counts[:, cols], casf.props, casf.geometry)
    assert np.isfinite(pred).all() and np.corrcoef(pred, casf.pK)[0, 1] > 0.3
    bad = subprocess.run(
        [sys.executable, "-m", "compass.train.pairs", "--plan", str(tmp_path / "missing.json"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert bad.returncode == 2 and "bad plan" in bad.stderr
