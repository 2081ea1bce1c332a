"""CompassViSNet: shapes, invariances, the ligand readout, config validation, and that it can learn."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from torch_geometric.data import Batch

from compass.data.graph import ComplexGraph
from compass.model.visnet import CompassViSNet, ViSNetConfig, neighbour_edges
from compass.train.synthetic import synthetic_set

TINY = {"hidden_channels": 16, "num_layers": 2, "num_heads": 2, "num_rbf": 8, "cutoff": 4.0, "max_num_neighbors": 16}


def batch_of(graphs: list[ComplexGraph]) -> Batch:
    return Batch.from_data_list([g.to_data() for g in graphs])


def moved(graph: ComplexGraph, rotation: torch.Tensor, shift: torch.Tensor) -> ComplexGraph:
    pos = torch.from_numpy(graph.pos) @ rotation.T + shift
    return ComplexGraph(graph.key, graph.atom_type, pos, graph.is_ligand, graph.y)


def random_rotation(seed: int) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed)))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread (and do not fight other test processes for cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def model() -> CompassViSNet:
    torch.manual_seed(0)
    return CompassViSNet(ViSNetConfig(**TINY, y_mean=6.0, y_std=1.5)).eval()


def test_forward_gives_one_finite_pk_per_complex(model: CompassViSNet) -> None:
    graphs, _ = synthetic_set(3, seed=1)
    out = model(batch_of(graphs))
    assert out.shape == (3,) and bool(torch.isfinite(out).all())


def test_rotation_and_translation_do_not_change_the_output(model: CompassViSNet) -> None:
    graphs, _ = synthetic_set(4, seed=2)
    rot, shift = random_rotation(3), torch.tensor([12.0, -7.5, 3.25])
    with torch.no_grad():
        before = model(batch_of(graphs))
        after = model(batch_of([moved(g, rot, shift) for g in graphs]))
    assert torch.allclose(before, after, atol=1e-4), (before, after)


def test_atom_order_does_not_change_the_output(model: CompassViSNet) -> None:
    (graph,), _ = synthetic_set(1, seed=4)
    perm = np.random.default_rng(0).permutation(graph.num_atoms)
    shuffled = ComplexGraph(graph.key, graph.atom_type[perm], graph.pos[perm], graph.is_ligand[perm], graph.y)
    with torch.no_grad():
        assert torch.allclose(model(batch_of([graph])), model(batch_of([shuffled])), atol=1e-4)


def test_a_complex_scores_the_same_alone_and_in_a_batch(model: CompassViSNet) -> None:
    graphs, _ = synthetic_set(5, seed=5)
    with torch.no_grad():
        together = model(batch_of(graphs))
        alone = torch.cat([model(batch_of([g])) for g in graphs])
    assert torch.allclose(together, alone, atol=1e-5)


def test_ligand_readout_sums_ligand_atoms_only(model: CompassViSNet) -> None:
    (graph,), _ = synthetic_set(1, seed=6)
    batch = batch_of([graph])
    with torch.no_grad():
        contrib = model.atom_contributions(batch.z, batch.pos, batch.batch, batch.is_ligand)
        expected = 6.0 + 1.5 * contrib[graph.is_ligand].sum()
        assert torch.allclose(model(batch), expected.view(1), atol=1e-5)
        everything = CompassViSNet(ViSNetConfig(**TINY, y_mean=6.0, y_std=1.5, readout="all"))
        everything.load_state_dict(model.state_dict())
        assert not torch.allclose(everything.eval()(batch), model(batch))  # protein atoms add in "all"


def test_protein_atoms_beyond_the_receptive_field_do_not_matter(model: CompassViSNet) -> None:
    (graph,), _ = synthetic_set(1, seed=7)
    far = np.array([[60.0, 0.0, 0.0]])  # > num_layers * cutoff from every ligand atom
    extra = ComplexGraph(
        graph.key,
        np.append(graph.atom_type, 0),
        np.concatenate([graph.pos, far]),
        np.append(graph.is_ligand, False),
        graph.y,
    )
    with torch.no_grad():
        assert torch.allclose(model(batch_of([graph])), model(batch_of([extra])), atol=1e-5)


def test_normalisation_buffers_travel_in_the_state_dict(model: CompassViSNet) -> None:
    state = model.state_dict()
    assert float(state["y_mean"]) == 6.0 and float(state["y_std"]) == 1.5
    assert not any(k.startswith("representation.distance.") for k in state)  # the neighbour search has no weights


def test_config_is_strict() -> None:
    with pytest.raises(ValueError, match="unknown ViSNet config keys"):
        ViSNetConfig.from_dict({"hidden_channel": 64})
    with pytest.raises(ValueError, match="readout"):
        ViSNetConfig(readout="mean")
    with pytest.raises(ValueError, match="num_heads"):
        ViSNetConfig(hidden_channels=30, num_heads=8)
    assert ViSNetConfig.from_dict(ViSNetConfig(**TINY).to_dict()) == ViSNetConfig(**TINY)


def test_atom_types_beyond_the_embedding_are_refused(model: CompassViSNet) -> None:
    (graph,), _ = synthetic_set(1, seed=8)
    graph.atom_type[0] = model.config.max_z
    with pytest.raises(ValueError, match="max_z"):
        model(batch_of([graph]))


def test_tiny_visnet_overfits_eight_complexes() -> None:
    graphs, _ = synthetic_set(8, seed=9, protein_atoms=(15, 25), ligand_atoms=(6, 12))
    ys = torch.tensor([g.y for g in graphs])
    torch.manual_seed(0)
    model = CompassViSNet(ViSNetConfig(**TINY, y_mean=float(ys.mean()), y_std=float(ys.std())))
    batch = batch_of(graphs)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss() -> torch.Tensor:
        return ((model(batch) - ys) ** 2).mean()

    with torch.no_grad():
        first = float(loss())
    for _ in range(60):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    with torch.no_grad():
        last = float(loss())
    assert math.isfinite(last) and last < first / 10, (first, last)


def test_ligand_edge_mode_drops_only_pocket_internal_messages() -> None:
    (graph,), _ = synthetic_set(1, seed=8)
    batch = batch_of([graph])
    full = neighbour_edges(batch.pos, batch.batch, batch.is_ligand, 4.0, 64, "all")[0]
    lig = neighbour_edges(batch.pos, batch.batch, batch.is_ligand, 4.0, 64, "ligand")[0]
    is_ligand = torch.from_numpy(graph.is_ligand)
    touches = is_ligand[full[0]] | is_ligand[full[1]] | (full[0] == full[1])
    assert torch.equal(lig, full[:, touches]) and lig.size(1) < full.size(1)
    model = CompassViSNet(ViSNetConfig(**TINY, edges="ligand")).eval()
    # A protein atom's position only matters through its edges to ligand atoms: moving a protein atom
    # that is farther than the cutoff from every ligand atom changes nothing in ligand mode.
    with torch.no_grad():
        before = model(batch)
        d = cdist(graph.pos[~graph.is_ligand], graph.pos[graph.is_ligand]).min(1)
        far = int(np.flatnonzero(d > 4.5)[0]) + graph.num_ligand_atoms
        moved = graph.pos.copy()
        moved[far] += np.array([0.3, -0.2, 0.1], dtype=np.float32)
        shifted = ComplexGraph(graph.key, graph.atom_type, moved, graph.is_ligand, graph.y)
        assert torch.allclose(model(batch_of([shifted])), before, atol=1e-5)
