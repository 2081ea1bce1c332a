"""COMPASS: a ViSNet equivariant GNN over the ligand + pocket point cloud, predicting pK.

Built from torch_geometric's ViSNet blocks, with two changes that matter here:

- the neighbour search is our pure-torch :func:`compass.model.radius.radius_graph` (PyG's needs
  pyg-lib or torch_cluster, compiled extensions we cannot count on);
- the readout sums per-atom contributions over the *ligand* atoms only (``readout="ligand"``):
  the protein atoms shape the ligand atoms' features through message passing, but a big pocket
  does not add to the affinity by itself. ``readout="all"`` sums over every atom.

The output is ``y_mean + y_std * sum(contributions)``; ``y_mean``/``y_std`` are buffers, so they
travel in the checkpoint with the weights. The model knows nothing of files or training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor
from torch_geometric.nn.models.visnet import EquivariantScalar, ViSNetBlock

from compass.data.graph import NUM_ATOM_TYPES
from compass.model.radius import radius_graph

READOUTS = ("ligand", "all")
EDGE_MODES = ("all", "ligand")
VECNORM_TYPES = (None, "max_min", "none")


@dataclass(frozen=True)
class ViSNetConfig:
    """Architecture of :class:`CompassViSNet`; stored whole in every checkpoint.

    ``y_mean``/``y_std`` normalise the output (set from the training labels by the trainer).
    ``max_z`` is the size of the atom-type embedding (:data:`NUM_ATOM_TYPES`).
    """

    hidden_channels: int = 128
    num_layers: int = 6
    num_heads: int = 8
    num_rbf: int = 32
    cutoff: float = 5.0
    max_num_neighbors: int = 32
    lmax: int = 1
    vecnorm_type: str | None = None
    trainable_vecnorm: bool = False
    trainable_rbf: bool = False
    vertex: bool = False
    readout: str = "ligand"
    edges: str = "all"  # "ligand": only edges touching a ligand atom (5x fewer; no pocket-internal messages)
    dropout: float = 0.0
    y_mean: float = 0.0
    y_std: float = 1.0
    max_z: int = NUM_ATOM_TYPES

    def __post_init__(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(f"ViSNetConfig: {message}")

        check(self.hidden_channels > 0 and self.hidden_channels % 2 == 0, "hidden_channels must be a positive even int")
        check(self.num_heads > 0 and self.hidden_channels % self.num_heads == 0, "num_heads must divide hidden")
        check(self.num_layers >= 1, "num_layers must be >= 1")
        check(self.num_rbf >= 1, "num_rbf must be >= 1")
        check(self.cutoff > 0, "cutoff must be > 0")
        check(self.max_num_neighbors >= 1, "max_num_neighbors must be >= 1")
        check(self.lmax in (1, 2), "lmax must be 1 or 2")
        check(self.vecnorm_type in VECNORM_TYPES, f"vecnorm_type must be one of {VECNORM_TYPES}")
        check(self.readout in READOUTS, f"readout must be one of {READOUTS}")
        check(self.edges in EDGE_MODES, f"edges must be one of {EDGE_MODES}")
        check(0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)")
        check(self.y_std > 0, "y_std must be > 0")
        check(self.max_z >= NUM_ATOM_TYPES, f"max_z must be >= NUM_ATOM_TYPES ({NUM_ATOM_TYPES})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ViSNetConfig:
        """Strict: unknown keys are an error, so a typo never silently falls back to a default."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown ViSNet config keys: {sorted(unknown)} (known: {sorted(names)})")
        return cls(**data)


def neighbour_edges(
    pos: Tensor, batch: Tensor, is_ligand: Tensor, cutoff: float, max_num_neighbors: int, mode: str
) -> tuple[Tensor, Tensor, Tensor]:
    """ViSNet's ``Distance`` output (self loops included) from our pure-torch neighbour search.

    ``mode="ligand"`` keeps only edges with a ligand atom at one end (and self loops): the
    messages that carry the interaction, without the pocket's internal ones, at a fifth the cost.
    """
    edge_index = radius_graph(pos, r=cutoff, batch=batch, loop=True, max_num_neighbors=max_num_neighbors)
    if mode == "ligand":
        src, dst = edge_index
        edge_index = edge_index[:, is_ligand[src] | is_ligand[dst] | (src == dst)]
    edge_vec = pos[edge_index[0]] - pos[edge_index[1]]
    mask = edge_index[0] != edge_index[1]
    edge_weight = torch.zeros(edge_vec.size(0), device=edge_vec.device, dtype=edge_vec.dtype)
    edge_weight[mask] = torch.norm(edge_vec[mask], dim=-1)
    return edge_index, edge_weight, edge_vec


class CompassViSNetBlock(ViSNetBlock):
    """PyG's ``ViSNetBlock`` with the neighbour search above (no pyg-lib/torch_cluster needed).

    ``forward`` repeats the upstream one (torch_geometric 2.8) except for the edge source, because
    upstream computes edges inside and has no hook for a ligand mask.
    """

    def forward_edges(
        self, z: Tensor, pos: Tensor, batch: Tensor, is_ligand: Tensor, mode: str
    ) -> tuple[Tensor, Tensor]:
        x = self.embedding(z)
        edge_index, edge_weight, edge_vec = neighbour_edges(
            pos, batch, is_ligand, self.cutoff, self.distance.max_num_neighbors, mode
        )
        edge_attr = self.distance_expansion(edge_weight)
        mask = edge_index[0] != edge_index[1]
        edge_vec[mask] = edge_vec[mask] / torch.norm(edge_vec[mask], dim=1).unsqueeze(1)
        edge_vec = self.sphere(edge_vec)
        x = self.neighbor_embedding(z, x, edge_index, edge_weight, edge_attr)
        vec = torch.zeros(x.size(0), ((self.lmax + 1) ** 2) - 1, x.size(1), dtype=x.dtype, device=x.device)
        edge_attr = self.edge_embedding(edge_index, edge_attr, x)
        for attn in self.vis_mp_layers[:-1]:
            dx, dvec, dedge_attr = attn(x, vec, edge_index, edge_weight, edge_attr, edge_vec)
            x, vec, edge_attr = x + dx, vec + dvec, edge_attr + dedge_attr
        dx, dvec, _ = self.vis_mp_layers[-1](x, vec, edge_index, edge_weight, edge_attr, edge_vec)
        return self.out_norm(x + dx), self.vec_out_norm(vec + dvec)


class CompassViSNet(torch.nn.Module):
    """pK of a batch of complexes: ``forward(batch) -> [num_graphs]``.

    ``batch`` is a torch_geometric ``Batch`` of :meth:`ComplexGraph.to_data` items
    (``z``, ``pos``, ``is_ligand``, ``batch``).
    """

    def __init__(self, config: ViSNetConfig) -> None:
        super().__init__()
        self.config = config
        self.representation = CompassViSNetBlock(
            lmax=config.lmax,
            vecnorm_type=config.vecnorm_type,
            trainable_vecnorm=config.trainable_vecnorm,
            num_heads=config.num_heads,
            num_layers=config.num_layers,
            hidden_channels=config.hidden_channels,
            num_rbf=config.num_rbf,
            trainable_rbf=config.trainable_rbf,
            max_z=config.max_z,
            cutoff=config.cutoff,
            max_num_neighbors=config.max_num_neighbors,
            vertex=config.vertex,
        )
        self.dropout = torch.nn.Dropout(config.dropout)
        self.head = EquivariantScalar(config.hidden_channels)
        self.register_buffer("y_mean", torch.tensor(float(config.y_mean)))
        self.register_buffer("y_std", torch.tensor(float(config.y_std)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.representation.reset_parameters()
        self.head.reset_parameters()

    def atom_contributions(self, z: Tensor, pos: Tensor, batch: Tensor, is_ligand: Tensor) -> Tensor:
        """Per-atom contribution ``[N]`` in normalised units (before the readout mask)."""
        if z.numel() and int(z.max()) >= self.config.max_z:
            raise ValueError(f"atom type {int(z.max())} >= max_z {self.config.max_z}")
        x, vec = self.representation.forward_edges(z, pos, batch, is_ligand, self.config.edges)
        x = self.dropout(x)  # scalars only: dropping vector channels would still be equivariant, but unneeded
        return self.head.pre_reduce(x, vec).squeeze(-1)

    def forward(self, batch: Any) -> Tensor:
        num_graphs = int(batch.num_graphs)
        contrib = self.atom_contributions(batch.z, batch.pos, batch.batch, batch.is_ligand).float()
        if self.config.readout == "ligand":
            contrib = contrib * batch.is_ligand.to(contrib.dtype)
        total = torch.zeros(num_graphs, dtype=contrib.dtype, device=contrib.device)
        total = total.index_add(0, batch.batch, contrib)
        return self.y_mean + self.y_std * total

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
