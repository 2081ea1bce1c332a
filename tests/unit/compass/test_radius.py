"""The pure-torch radius_graph equals a brute-force reference with torch_cluster semantics."""

from __future__ import annotations

import pytest
import torch

from compass.model.radius import radius_graph


def brute_force(
    pos: torch.Tensor, r: float, batch: torch.Tensor | None, loop: bool, cap: int, flow: str = "source_to_target"
) -> torch.Tensor:
    """Every (j -> i) pair, the simplest way: per target, candidates by (distance, index), first ``cap``."""
    n = pos.size(0)
    batch = torch.zeros(n, dtype=torch.long) if batch is None else batch
    edges = []
    for i in range(n):
        cands = []
        for j in range(n):
            if batch[i] != batch[j] or (i == j and not loop):
                continue
            d2 = float(((pos[i] - pos[j]) ** 2).sum())
            if i == j or d2 < r * r:
                cands.append((d2, j))
        cands.sort()
        for _, j in sorted(cands[:cap], key=lambda c: c[1]):
            edges.append((j, i))
    if not edges:
        return torch.empty(2, 0, dtype=torch.long)
    out = torch.tensor(edges, dtype=torch.long).t()
    return out if flow == "source_to_target" else out.flip(0)


def cloud(sizes: list[int], seed: int, scale: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    pos = torch.randn(sum(sizes), 3, generator=gen) * scale
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return pos, batch


@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("cap", [1, 5, 32])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("block", [None, 2000, 64])  # all graphs padded together / a few per chunk / row blocks
def test_matches_brute_force(loop: bool, cap: int, seed: int, block: int | None) -> None:
    pos, batch = cloud([17, 1, 40, 9], seed)
    got = radius_graph(pos, 4.0, batch, loop=loop, max_num_neighbors=cap, max_block_elems=block)
    assert torch.equal(got, brute_force(pos, 4.0, batch, loop, cap))


def test_no_batch_and_target_to_source() -> None:
    pos, _ = cloud([30], 3)
    expected = brute_force(pos, 3.5, None, loop=False, cap=32, flow="target_to_source")
    assert torch.equal(radius_graph(pos, 3.5, flow="target_to_source"), expected)


def test_unsorted_batch_gives_the_same_edges() -> None:
    pos, batch = cloud([12, 15, 7], 4)
    perm = torch.randperm(pos.size(0), generator=torch.Generator().manual_seed(0))
    got = radius_graph(pos[perm], 4.0, batch[perm], loop=True, max_num_neighbors=6)
    assert torch.equal(got, brute_force(pos[perm], 4.0, batch[perm], True, 6))


def test_row_blocks_do_not_change_the_result() -> None:
    pos, batch = cloud([50, 33], 5)
    whole = radius_graph(pos, 4.0, batch, loop=True, max_num_neighbors=8)
    blocked = radius_graph(pos, 4.0, batch, loop=True, max_num_neighbors=8, max_block_elems=64)
    assert torch.equal(whole, blocked)


def test_cap_keeps_the_nearest_with_index_ties_and_self_counts() -> None:
    # target 0 at the origin; sources at distances 1, 1, 2, 3 (ties broken by the lower index)
    pos = torch.tensor([[0.0, 0, 0], [0, 0, 2], [1, 0, 0], [0, 1, 0], [0, 0, 3], [-1, 0, 0]])
    edges = radius_graph(pos, 10.0, loop=True, max_num_neighbors=3)
    into_zero = edges[0][edges[1] == 0].tolist()
    assert into_zero == [0, 2, 3]  # itself (distance 0) + the two nearest at distance 1 with the lowest indices
    edges = radius_graph(pos, 10.0, loop=False, max_num_neighbors=3)
    assert edges[0][edges[1] == 0].tolist() == [2, 3, 5]


def test_distance_equal_to_r_is_excluded() -> None:
    pos = torch.tensor([[0.0, 0, 0], [2.0, 0, 0], [1.0, 0, 0]])
    edges = radius_graph(pos, 2.0)
    assert {tuple(e) for e in edges.t().tolist()} == {(2, 0), (0, 2), (2, 1), (1, 2)}


def test_empty_and_singletons() -> None:
    assert radius_graph(torch.zeros(0, 3), 1.0).shape == (2, 0)
    assert radius_graph(torch.zeros(1, 3), 1.0).shape == (2, 0)
    assert radius_graph(torch.zeros(1, 3), 1.0, loop=True).tolist() == [[0], [0]]


def test_large_batch_is_bounded_and_correct_per_graph() -> None:
    # 4 graphs of 600 atoms (a realistic pocket) with the default block size: compare one graph by brute force
    pos, batch = cloud([600] * 4, 6, scale=6.0)
    edges = radius_graph(pos, 5.0, batch, loop=True, max_num_neighbors=32)
    assert edges.size(1) <= 4 * 600 * 32
    assert bool((batch[edges[0]] == batch[edges[1]]).all())
    first = edges[:, edges[1] < 600]
    sub = radius_graph(pos[:600], 5.0, None, loop=True, max_num_neighbors=32)
    assert torch.equal(first, sub)
    counts = torch.bincount(edges[1], minlength=pos.size(0))
    assert int(counts.max()) <= 32 and int(counts.min()) >= 1  # self loop always present


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="flow"):
        radius_graph(torch.zeros(3, 3), 1.0, flow="sideways")
    with pytest.raises(ValueError, match="batch"):
        radius_graph(torch.zeros(3, 3), 1.0, batch=torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize("loop", [False, True])
def test_lattice_ties_follow_the_index_rule(loop: bool) -> None:
    # a cubic lattice: many neighbours at exactly the same distance, so the cap cuts through ties
    axis = torch.arange(4, dtype=torch.float32)
    pos = torch.cartesian_prod(axis, axis, axis[:3])
    perm = torch.randperm(pos.size(0), generator=torch.Generator().manual_seed(1))
    pos = pos[perm]
    for cap in (3, 5, 7):
        assert torch.equal(
            radius_graph(pos, 1.5, loop=loop, max_num_neighbors=cap), brute_force(pos, 1.5, None, loop, cap)
        )
