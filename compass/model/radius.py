"""A pure-torch ``radius_graph`` with torch_cluster / PyG semantics, so no compiled extension is needed.

PyG's ``radius_graph`` needs pyg-lib or torch_cluster, which are not installable everywhere we
train (CPU boxes, new CUDA/torch pairs). This one is exact brute force over each graph's pairs,
chunked so memory stays bounded: graphs are padded to a common size and processed a few at a
time (one kernel sequence for many small graphs, which is what keeps a GPU busy), and a graph too
big for one chunk is processed in blocks of target rows. A chunk never holds more than
``max_block_elems`` pairwise distances (default 2**21 on CPU, 2**24 on CUDA: ~32 MB / ~500 MB).

Semantics (the same as ``torch_cluster.radius_graph``):

- an edge ``j -> i`` exists when ``i`` and ``j`` are in the same graph and
  ``||pos[i] - pos[j]||^2 < r^2`` (strictly less, as torch_cluster);
- ``loop=False`` never produces ``i -> i``; ``loop=True`` adds every self loop (distance 0,
  so it always survives the neighbour cap and counts towards it);
- for ``flow="source_to_target"``, ``edge_index[0]`` is the source (neighbour ``j``) and
  ``edge_index[1]`` the target (centre ``i``); ``"target_to_source"`` swaps the rows;
- each target keeps at most ``max_num_neighbors`` sources.

Selection rule under the cap (torch_cluster leaves it to the kernel: the CUDA kernel keeps the
first sources by index, the CPU one whatever its kd-tree visits first): we keep the
``max_num_neighbors`` *nearest* sources, ties broken by the lower source index. This is
deterministic, identical on CPU and GPU, and rotation/translation invariant up to ties.
Edges come out sorted by target, then by source index.
"""

from __future__ import annotations

import torch
from torch import Tensor

_CPU_BLOCK_ELEMS = 1 << 21
_CUDA_BLOCK_ELEMS = 1 << 24


def radius_graph(
    pos: Tensor,
    r: float,
    batch: Tensor | None = None,
    loop: bool = False,
    max_num_neighbors: int = 32,
    flow: str = "source_to_target",
    max_block_elems: int | None = None,
) -> Tensor:
    """Edges between points of the same graph closer than ``r`` (see the module docstring).

    :param pos: ``[N, D]`` coordinates.
    :param batch: ``[N]`` graph index of each point (any order; sorted is fastest), or ``None``.
    :param max_block_elems: pairwise distances held at once (default by device).
    :returns: ``[2, E]`` long tensor on ``pos.device``.
    """
    if flow not in ("source_to_target", "target_to_source"):
        raise ValueError(f"flow must be 'source_to_target' or 'target_to_source', not {flow!r}")
    if pos.dim() != 2:
        raise ValueError(f"pos must be [N, D], got shape {tuple(pos.shape)}")
    if max_num_neighbors < 0:
        raise ValueError("max_num_neighbors must be >= 0")
    n, device = pos.size(0), pos.device
    if max_block_elems is None:
        max_block_elems = _CUDA_BLOCK_ELEMS if device.type == "cuda" else _CPU_BLOCK_ELEMS
    if n == 0 or max_num_neighbors == 0:
        return torch.empty(2, 0, dtype=torch.long, device=device)
    pos = pos.detach()
    order = None
    if batch is None:
        batch = torch.zeros(n, dtype=torch.long, device=device)
    else:
        if batch.numel() != n:
            raise ValueError("batch must have one entry per point")
        batch = batch.to(device)
        if n > 1 and bool((batch[1:] < batch[:-1]).any()):
            order = torch.argsort(batch, stable=True)  # work on sorted points, map back at the end
            pos, batch = pos[order], batch[order]
    graph, counts = torch.unique_consecutive(batch, return_counts=True)
    local_graph = torch.repeat_interleave(torch.arange(graph.numel(), device=device), counts)
    sizes = counts.tolist()
    starts = [0]
    for size in sizes[:-1]:
        starts.append(starts[-1] + size)

    r2 = float(r) * float(r)
    sources, targets = [], []
    for g0, g1 in _chunks(sizes, max_block_elems):
        lo, hi = starts[g0], starts[g1 - 1] + sizes[g1 - 1]
        width = max(sizes[g0:g1])
        slot = local_graph[lo:hi] - g0  # graph of each point within the chunk
        first = torch.tensor(starts[g0:g1], device=device)
        col = torch.arange(lo, hi, device=device) - first[slot]  # position of each point within its graph
        padded = pos.new_zeros(g1 - g0, width, pos.size(1))
        padded[slot, col] = pos[lo:hi]
        valid = torch.zeros(g1 - g0, width, dtype=torch.bool, device=device)
        valid[slot, col] = True
        rows = max(1, min(width, max_block_elems // max((g1 - g0) * width, 1)))
        for start in range(0, width, rows):
            b, i, j = _block_edges(padded, valid, start, min(width, start + rows), r2, loop, max_num_neighbors)
            targets.append(first[b] + i)
            sources.append(first[b] + j)
    src, dst = torch.cat(sources), torch.cat(targets)
    # Chunks run in graph order and only a lone graph is split into row blocks, so edges are already
    # sorted by target; an unsorted batch needs one sort after mapping back to the original indices.
    if order is not None:
        src, dst = order[src], order[dst]
        perm = torch.argsort(dst * n + src)
        src, dst = src[perm], dst[perm]
    return torch.stack([src, dst]) if flow == "source_to_target" else torch.stack([dst, src])


def _chunks(sizes: list[int], max_elems: int) -> list[tuple[int, int]]:
    """Consecutive graph ranges ``[g0, g1)`` whose padded pair count (graphs x width^2) fits."""
    out, g0, width = [], 0, 0
    for g, size in enumerate(sizes):
        new_width = max(width, size)
        if g > g0 and (g - g0 + 1) * new_width * new_width > max_elems:
            out.append((g0, g))
            g0, new_width = g, size
        width = new_width
    out.append((g0, len(sizes)))
    return out


def _block_edges(
    padded: Tensor, valid: Tensor, start: int, stop: int, r2: float, loop: bool, cap: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Edges into target rows ``[start, stop)`` of every padded graph: (graph, target, source) local indices.

    Squared distances, with out-of-range, padding and (``loop=False``) self entries set to ``inf``;
    then either every finite entry (no cap in reach) or :func:`_capped`.
    """
    b, width = padded.size(0), padded.size(1)
    diff = padded[:, start:stop, None, :] - padded[:, None, :, :]  # [B, R, W, D]: centre minus neighbour
    keyed = (diff * diff).sum(-1)
    outside = (keyed >= r2) | ~valid[:, None, :] | ~valid[:, start:stop, None]
    keyed = keyed.masked_fill_(outside, float("inf"))
    diag = keyed[:, :, start:stop].diagonal(dim1=1, dim2=2)  # [B, R] view: each target with itself
    self_value = torch.zeros_like(diag) if loop else torch.full_like(diag, float("inf"))
    diag.copy_(torch.where(valid[:, start:stop], self_value, float("inf")))
    flat = keyed.view(b * (stop - start), width)
    if cap >= width:
        t, s = torch.isfinite(flat).nonzero(as_tuple=True)  # row-major: by target, then source
    else:
        t, s = _capped(flat, cap)
    return t // (stop - start), t % (stop - start) + start, s


def _capped(keyed: Tensor, cap: int) -> tuple[Tensor, Tensor]:
    """(row, column) of each row's ``cap`` nearest finite entries, by row then column.

    ``topk(cap + 1)`` finds the nearest candidates in one pass; rows whose ``cap``-th and
    ``cap + 1``-th candidates tie at the cut (rare with real coordinates) are redone exactly so
    the lower index wins.
    """
    rows, width = keyed.shape
    vals, idx = torch.topk(keyed, cap + 1, dim=1, largest=False)  # ascending
    tie = torch.isfinite(vals[:, cap]) & (vals[:, cap - 1] == vals[:, cap])
    valid = torch.isfinite(vals[:, :cap])
    idx = idx[:, :cap]
    tied = tie.nonzero().squeeze(1)
    if tied.numel():
        sub = keyed[tied]
        exact = _nearest(sub, torch.isfinite(sub), cap)  # exactly `cap` per row: they had cap + 1 candidates
        idx = idx.clone()
        idx[tied] = exact.nonzero(as_tuple=True)[1].view(-1, cap)
        valid[tied] = True
    ordered = torch.where(valid, idx, width).sort(dim=1).values  # sources in index order, invalid (= width) last
    keep = ordered < width
    t = torch.arange(rows, device=keyed.device)[:, None].expand(rows, cap)[keep]
    return t, ordered[keep]


def _nearest(d2: Tensor, within: Tensor, cap: int) -> Tensor:
    """Of each row's candidates, the ``cap`` nearest; at the cut-off distance, the lowest indices."""
    keyed = d2.masked_fill(~within, float("inf"))
    kth = torch.topk(keyed, cap, dim=1, largest=False).values[:, -1:]  # the cap-th smallest distance
    closer = within & (keyed < kth)
    tied = within & (keyed == kth)
    room = cap - closer.sum(1, keepdim=True)
    return closer | (tied & (tied.cumsum(1) <= room))  # cumsum runs in index order: lower indices first
