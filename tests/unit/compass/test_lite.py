"""compass-lite: descriptors checked by hand, training, exact round trip, and refusal of untrusted files."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import skops.io as sio
import torch
from threadpoolctl import threadpool_limits

from compass.data.graph import ELEMENTS, NUM_ELEMENTS, ComplexGraph, ComplexRecord, FeatureSettings
from compass.model.descriptors import DescriptorSpec, describe, describe_many, descriptor_names
from compass.model.lite import (
    TRUSTED_TYPES,
    LiteConfig,
    LitePredictor,
    PackedForest,
    UntrustedModelError,
    WithinSeries,
    file_types,
    load_lite,
    save_lite,
    train_lite,
)
from compass.train.metrics import spearman
from tests.support import shared_data

E = {name: i for i, name in enumerate(ELEMENTS)}


def _graph(lig: list[tuple[str, tuple[float, float, float]]], prot: list[tuple[str, tuple[float, float, float]]]):
    elements = [E[e] + NUM_ELEMENTS for e, _ in lig] + [E[e] for e, _ in prot]
    pos = torch.tensor([p for _, p in lig] + [p for _, p in prot], dtype=torch.float32)
    is_ligand = torch.tensor([True] * len(lig) + [False] * len(prot))
    return ComplexGraph("hand", torch.tensor(elements), pos, is_ligand, 5.0)


def _synthetic(n: int, seed: int = 0) -> tuple[list[ComplexGraph], list[ComplexRecord]]:
    """Seeded blobs: the label grows with ligand size and close contacts, so there is signal to learn."""
    rng = np.random.default_rng(seed)
    graphs, records = [], []
    for i in range(n):
        n_lig, n_prot = int(rng.integers(8, 30)), int(rng.integers(60, 160))
        lig = rng.normal(0, 1.5, (n_lig, 3))
        direction = rng.normal(size=(n_prot, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        prot = direction * rng.uniform(3.0 + 2 * (i % 3), 9.0, (n_prot, 1))
        el = np.concatenate([rng.integers(0, 4, n_lig) + NUM_ELEMENTS, rng.integers(0, 4, n_prot)])
        y = 3.0 + 0.12 * n_lig - 0.5 * (i % 3) + rng.normal(0, 0.1)
        key, group = f"c{i}", f"p{i % 4}"
        pos = torch.tensor(np.vstack([lig, prot]), dtype=torch.float32)
        is_lig = torch.tensor([True] * n_lig + [False] * n_prot)
        graphs.append(ComplexGraph(key, torch.tensor(el), pos, is_lig, float(y)))
        records.append(ComplexRecord(key, "", [], float(y), group, series=group, molecule=key))
    return graphs, records


def test_names_match_vector_for_every_spec() -> None:
    graph = _graph([("C", (0, 0, 0))], [("O", (3.0, 0, 0))])
    for spec in (
        DescriptorSpec(),
        DescriptorSpec(shells=(0, 3.5, 4.5, 6, 8)),
        DescriptorSpec(vina=False, burial=False),
        DescriptorSpec(chemistry=True),
        DescriptorSpec(contacts=False, vina=False, ligand=False, burial=False, chemistry=True),
    ):
        assert describe(graph, spec).shape == (len(descriptor_names(spec)),)
    with pytest.raises(ValueError):
        DescriptorSpec(shells=(0, 4, 3))


def test_contact_counts_land_in_the_right_shell() -> None:
    lig = [("C", (0, 0, 0)), ("N", (1.4, 0, 0)), ("Cl", (-1.8, 0, 0))]
    prot = [("O", (0, 3.0, 0)), ("O", (0, -4.0, 0)), ("C", (1.4, 0, 5.0)), ("metal", (0, 0, 7.9)), ("C", (0, 0, 8.5))]
    spec = DescriptorSpec(shells=(0.0, 3.5, 4.5, 6.0, 8.0))
    x = dict(zip(descriptor_names(spec), describe(_graph(lig, prot), spec), strict=True))
    assert x["contact_LC_PO_0-3.5"] == 1 and x["contact_LC_PO_3.5-4.5"] == 1
    assert x["contact_LN_PC_4.5-6"] == 1  # exactly 5.0 Å from N
    assert x["contact_LC_Pmetal_6-8"] == 1  # metals share one protein group
    assert x["contact_LCl_PC_4.5-6"] == 1  # 5.96 Å
    lig_xyz, prot_xyz = np.array([p for _, p in lig]), np.array([p for _, p in prot])
    within_8 = (np.linalg.norm(lig_xyz[:, None] - prot_xyz[None], axis=-1) < 8.0).sum()
    assert sum(v for k, v in x.items() if k.startswith("contact_")) == within_8 == 10  # 8.5 Å pairs are out
    assert x["lig_heavy_atoms"] == 3 and x["lig_n_halogen"] == 1 and x["lig_bonds"] == 2 and x["lig_rings"] == 0


def test_ligand_block_finds_a_ring_and_burial_counts_neighbours() -> None:
    ring = [("C", (1.39 * np.cos(a), 1.39 * np.sin(a), 0.0)) for a in np.linspace(0, 2 * np.pi, 6, endpoint=False)]
    shell = [("C", (4.0 * np.cos(a), 4.0 * np.sin(a), z)) for a in np.linspace(0, 2 * np.pi, 12) for z in (-1, 1)]
    x = dict(zip(descriptor_names(), describe(_graph(ring, shell)), strict=True))
    assert x["lig_bonds"] == 6 and x["lig_rings"] == 1 and x["lig_degree_2"] == 6
    assert x["burial_buried_fraction"] == 1.0 and x["burial_exposed_fraction"] == 0.0
    assert x["vina_hydrophobic"] > 0 and x["vina_polar"] == 0


def test_chemistry_block_matches_a_hand_count_on_benzyl_alcohol() -> None:
    # Benzene (1.39 Å bonds: "multiple"), C7 at 1.51 Å from C1 (single), O8 at 1.43 Å from C7 (single).
    ring = [("C", (1.39 * np.cos(a), 1.39 * np.sin(a), 0.0)) for a in np.linspace(0, 2 * np.pi, 6, endpoint=False)]
    lig = [*ring, ("C", (2.90, 0.0, 0.0)), ("O", (2.90 + 1.43 * np.cos(np.pi / 3), 1.43 * np.sin(np.pi / 3), 0.0))]
    spec = DescriptorSpec(chemistry=True)
    x = dict(zip(descriptor_names(spec), describe(_graph(lig, []), spec), strict=True))
    assert x["chem_rotatable_bonds"] == 1  # C1-C7 (as RDKit); C7-O8 ends in a terminal atom, ring bonds are cyclic
    assert x["chem_ring_atoms"] == 6 and x["chem_aromatic_atoms"] == 6 and x["chem_sp2_atoms"] == 6
    assert x["chem_donors"] == 1 and x["chem_polar_hydrogens"] == 1  # O: valence 2 - 1 bond
    assert x["chem_acceptors"] == 1 and x["chem_polar_atoms"] == 1
    # logP: 6 aromatic C x (0.25 + 0.15) + C7 (0.25 - 0.35, bonded to O) + O (-0.5) = 2.4 - 0.1 - 0.5
    assert x["chem_logp"] == pytest.approx(1.8)
    assert x["chem_sp3_carbon_fraction"] == pytest.approx(1 / 7)
    assert x["chem_buried_unpaired_polar"] == 0 and x["chem_exposed_apolar"] == 7  # no protein at all
    # A ligand O inside 8 protein carbons at 4 Å is buried and unpaired, until a protein N comes within 3.5 Å.
    cage = [("C", (4.0 * np.cos(a), 4.0 * np.sin(a), 0.0)) for a in np.linspace(0, 2 * np.pi, 8, endpoint=False)]
    names = descriptor_names(spec)
    alone = dict(zip(names, describe(_graph([("O", (0, 0, 0))], cage), spec), strict=True))
    paired = dict(zip(names, describe(_graph([("O", (0, 0, 0))], [*cage, ("N", (0, 0, 3.0))]), spec), strict=True))
    assert alone["chem_buried_unpaired_polar"] == 1 and paired["chem_buried_unpaired_polar"] == 0
    assert alone["chem_exposed_apolar"] == 0 and alone["chem_donors"] == 1 and alone["chem_polar_hydrogens"] == 2


def test_describe_many_and_empty_protein_are_finite() -> None:
    lonely = _graph([("C", (0, 0, 0)), ("O", (1.2, 0, 0))], [])
    m = describe_many([lonely, lonely])
    assert m.shape == (2, len(descriptor_names())) and np.isfinite(m).all()
    assert describe_many([]).shape == (0, len(descriptor_names()))


@pytest.mark.parametrize("estimator", ["hgb", "et", "rf"])
def test_train_predict_save_load_round_trip_is_exact(estimator: str, tmp_path: Path) -> None:
    graphs, records = _synthetic(40)
    config = {"estimator": estimator, "max_iter": 20, "n_estimators": 20, "drop_affinity_types": []}
    with threadpool_limits(1):  # HGB's OpenMP threads crawl on a busy 2-core machine
        predictor = train_lite(graphs[:32], records[:32], config, 3, FeatureSettings(crop_radius=7.0))
    pred = predictor.predict(graphs[32:])
    assert pred.shape == (8,) and np.isfinite(pred).all()
    assert predictor.kind == "compass-lite" and predictor.meta["config"]["seed"] == 3
    path = save_lite(predictor, tmp_path / "m.skops", meta={"data_hash": "abc", "metrics": {"r": np.float64(0.5)}})
    assert file_types(path) <= TRUSTED_TYPES
    loaded = load_lite(path)
    assert isinstance(loaded, LitePredictor)
    np.testing.assert_array_equal(loaded.predict(graphs[32:]), pred)
    assert loaded.meta["data_hash"] == "abc" and loaded.meta["metrics"] == {"r": 0.5}
    assert loaded.meta["kind"] == "compass-lite" and "created" in loaded.meta and "code_version" in loaded.meta
    assert loaded.feature_settings == FeatureSettings(crop_radius=7.0)
    assert loaded.spec == LiteConfig().spec == DescriptorSpec(chemistry=True)
    assert loaded.within is not None and predictor.within is not None
    np.testing.assert_array_equal(loaded.within.coef, predictor.within.coef)


def test_within_series_term_learns_the_ranking_inside_series_not_the_offsets() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(1, 30, size=(60, 4))
    series = [f"s{i % 6}" for i in range(60)]
    offset = np.array([10.0 * (i % 6) for i in range(60)])  # big protein offsets, unrelated to x
    y = offset + 0.2 * x[:, 0]
    term = WithinSeries.fit(x, y, series, alpha=1.0, weight=1.0)
    assert term is not None
    assert np.argmax(np.abs(term.coef)) == 0 and term.coef[0] > 0
    inside = [i for i in range(60) if series[i] == "s3"]
    assert spearman(term(x[inside]), y[inside]) > 0.95
    assert WithinSeries.fit(x, y, [f"u{i}" for i in range(60)], alpha=1.0, weight=1.0) is None  # no series
    assert WithinSeries.fit(x, y, series, alpha=1.0, weight=0.0) is None


@pytest.mark.parametrize("forest", ["et", "rf"])
def test_packed_forest_matches_scikit_learn(forest: str) -> None:
    graphs, records = _synthetic(60, seed=2)
    predictor = train_lite(graphs[:40], records[:40], {"estimator": forest, "n_estimators": 30, "within_weight": 0})
    x = predictor.describe(graphs)
    fast = PackedForest(predictor.estimator).predict(x)
    np.testing.assert_allclose(fast, predictor.estimator.predict(x), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(predictor.predict(graphs), fast)
    np.testing.assert_array_equal(PackedForest(predictor.estimator).predict(x[7:8]), fast[7:8])  # batch-independent


def _fake_forest(left: list[int], right: list[int]) -> SimpleNamespace:
    n = len(left)
    tree = SimpleNamespace(
        node_count=n,
        children_left=np.array(left),
        children_right=np.array(right),
        feature=np.zeros(n, dtype=np.int64),
        threshold=np.full(n, 0.5),
        value=np.arange(n, dtype=float).reshape(n, 1, 1),
    )
    return SimpleNamespace(estimators_=[SimpleNamespace(tree_=tree)], n_features_in_=1)


def test_packed_forest_refuses_out_of_range_nodes_and_stops_on_cycles() -> None:
    with pytest.raises(ValueError, match="out of range"):
        PackedForest(_fake_forest([5, -1], [1, -1]))
    cyclic = PackedForest(_fake_forest([1, 0], [1, 0]))  # a forged file: node 1 points back to the root
    assert cyclic.predict(np.zeros((2, 1))).shape == (2,)


def test_training_learns_the_synthetic_signal() -> None:
    graphs, records = _synthetic(80, seed=1)
    predictor = train_lite(graphs[:60], records[:60], LiteConfig(n_estimators=100), seed=0)
    pred = predictor.predict(graphs[60:])
    truth = np.array([r.pK for r in records[60:]])
    assert np.corrcoef(pred, truth)[0, 1] > 0.7


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="estimator"):
        LiteConfig(estimator="svm")
    with pytest.raises(ValueError, match="unknown"):
        LiteConfig.from_dict({"n_trees": 5})
    graphs, records = _synthetic(3)
    with pytest.raises(ValueError, match="aligned"):
        train_lite(graphs, records[:2])


class Gadget:
    """A custom class: exactly what a hostile model file would smuggle in."""

    def __init__(self) -> None:
        self.payload = "rm -rf /"


def _payload(predictor: LitePredictor, **extra: object) -> dict[str, object]:
    return {
        "format": "compass-lite/1",
        "meta_json": json.dumps({"kind": "compass-lite"}),
        "descriptors_json": json.dumps(predictor.spec.to_dict()),
        "feature_settings_json": json.dumps(FeatureSettings().to_dict()),
        "estimator": predictor.estimator,
        **extra,
    }


def test_untrusted_types_are_refused(tmp_path: Path) -> None:
    graphs, records = _synthetic(12)
    predictor = train_lite(graphs, records, {"n_estimators": 5})
    custom = tmp_path / "custom.skops"
    sio.dump(_payload(predictor, extra=Gadget()), custom)
    with pytest.raises(UntrustedModelError, match="Gadget"):
        load_lite(custom)
    # Types skops itself trusts by default are still refused when we did not allow them.
    ordered = tmp_path / "ordered.skops"
    sio.dump(_payload(predictor, extra=collections.OrderedDict(a=1)), ordered)
    with pytest.raises(UntrustedModelError, match="OrderedDict"):
        load_lite(ordered)
    from sklearn.linear_model import LinearRegression

    other = tmp_path / "other.skops"
    sio.dump({**_payload(predictor), "estimator": LinearRegression()}, other)
    with pytest.raises(UntrustedModelError, match="LinearRegression"):
        load_lite(other)


def test_files_that_are_not_compass_lite_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.skops"
    junk.write_bytes(b"\x80\x04not a zip")
    with pytest.raises(UntrustedModelError, match="not a skops file"):
        load_lite(junk)
    wrong = tmp_path / "wrong.skops"
    sio.dump({"format": "something-else"}, wrong)
    with pytest.raises(UntrustedModelError, match="not a compass-lite"):
        load_lite(wrong)
    with zipfile.ZipFile(wrong) as zf:
        assert "schema.json" in zf.namelist()


def test_trained_on_a_few_real_fep_series_predicts_finite_values() -> None:
    root = shared_data("fep")
    pytest.importorskip("rdkit", reason="featurising real structures needs RDKit")
    from compass.data import featurize_files
    from compass.data.roots import list_records

    _, records, _ = list_records(root)
    series = sorted({r.series for r in records})[:3]
    chosen = [r for r in records if r.series in series][:36]
    graphs = [
        featurize_files(r.protein_path, r.ligand_paths, FeatureSettings(), key=r.key, y=r.pK, ligand_index=r.sdf_index)[
            0
        ]
        for r in chosen
    ]
    predictor = train_lite(graphs[::2], chosen[::2], {"n_estimators": 50})
    pred = predictor.predict(graphs[1::2])
    assert len(pred) == len(graphs[1::2]) and np.isfinite(pred).all()
    assert pred.min() > 0 and pred.max() < 15


def test_format_module_loads_the_shipped_model_on_its_own() -> None:
    """The loader (lite_format) needs neither the training module nor an import order; lite re-exports it."""
    from compass.model import lite, lite_format, lite_predictor

    assert lite.load_lite is lite_format.load_lite and lite.save_lite is lite_format.save_lite
    assert lite.UntrustedModelError is lite_format.UntrustedModelError
    assert lite.LitePredictor is lite_predictor.LitePredictor and lite.PackedForest is lite_predictor.PackedForest
    shipped = Path(lite_format.__file__).resolve().parents[1] / "weights" / "compass-lite.skops"
    code = (
        "import sys; from compass.model.lite_format import load_lite; "
        f"p = load_lite({str(shipped)!r}); "
        "assert 'compass.model.lite' not in sys.modules; print(p.kind)"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    repo = shipped.parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=repo, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "compass-lite"
