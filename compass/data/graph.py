"""What a featurised complex is: the one contract between the data pipeline and both models.

A complex becomes a small point cloud: every heavy atom of the ligand plus the protein heavy
atoms within ``crop_radius`` of it. Each atom has an *atom type* that encodes both its element
and whether it belongs to the ligand, so a model can never confuse the two:
``atom_type = element_index + NUM_ELEMENTS * is_ligand``.

Everything here is plain numpy arrays, so a descriptor-model worker never imports torch; ViSNet
gets torch tensors at the batching boundary (:meth:`ComplexGraph.to_data`, zero-copy), and caches
store the arrays as tensors so they load with ``torch.load(weights_only=True)``. The training code
never needs RDKit (the GPU machine has none).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# Bump when featurisation changes in a way the settings do not capture: it invalidates caches.
FEATURE_VERSION = 1

# Element vocabulary. Metals share one slot (few examples each); anything else is "other".
ELEMENTS: tuple[str, ...] = ("C", "N", "O", "S", "P", "F", "Cl", "Br", "I", "metal", "other")
NUM_ELEMENTS = len(ELEMENTS)
NUM_ATOM_TYPES = 2 * NUM_ELEMENTS
METALS = frozenset(
    {"Li", "Na", "K", "Mg", "Ca", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Cd", "Hg", "Sr", "Cs", "Pt", "Ga", "In"}
)
_ELEMENT_INDEX = {name: i for i, name in enumerate(ELEMENTS)}


def element_index(symbol: str) -> int:
    """Index of an element symbol in :data:`ELEMENTS` (case-insensitive, metals pooled)."""
    sym = symbol.strip().capitalize()
    if sym in _ELEMENT_INDEX and sym not in ("Metal", "Other"):
        return _ELEMENT_INDEX[sym]
    if sym in METALS:
        return _ELEMENT_INDEX["metal"]
    return _ELEMENT_INDEX["other"]


@dataclass(frozen=True)
class FeatureSettings:
    """How a complex is turned into a point cloud. Its digest keys the tensor cache."""

    crop_radius: float = 8.0  # Å: protein heavy atoms kept within this distance of any ligand heavy atom
    max_protein_atoms: int = 800  # after cropping, keep the nearest ones if there are more
    keep_waters: bool = False
    max_ligand_atoms: int = 200  # larger "ligands" (peptides, sugars chains) are refused with a reason
    # Element-pair counts (compass.data.contacts) at these cutoffs, from the whole input protein, plus
    # RDKit ligand chemistry and protein identity: what the descriptor models (compass.model.pairs) read.
    pair_cutoffs: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "pair_cutoffs", tuple(float(c) for c in self.pair_cutoffs))

    def to_dict(self) -> dict[str, Any]:
        """Plain fields; ``pair_cutoffs`` only when set, so older settings keep their digest and files."""
        out = asdict(self)
        if not self.pair_cutoffs:
            del out["pair_cutoffs"]
        else:
            out["pair_cutoffs"] = list(self.pair_cutoffs)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> FeatureSettings:
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown feature settings: {sorted(unknown)}")
        return cls(**data)

    def digest(self) -> str:
        """Stable hash of the settings and :data:`FEATURE_VERSION`."""
        blob = json.dumps({"v": FEATURE_VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class ComplexRecord:
    """One labelled complex of a data root: where its files are and what it is.

    ``key`` is unique within a root (e.g. ``jacs_set/bace/3`` or ``1a30``). ``group`` is the
    protein identity used by grouped splits; ``series`` is the congeneric series (FEP) or the
    CASF cluster; ``molecule`` names the molecule so duplicate records (protomers, poses) can be
    merged at evaluation time.
    """

    key: str
    protein_path: str
    ligand_paths: list[str]
    pK: float | None
    group: str
    series: str = ""
    molecule: str = ""
    sdf_index: int = 0
    fep_plus_pK: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComplexRecord:
        return cls(**data)


@dataclass
class ComplexGraph:
    """A featurised complex: atom types, coordinates, ligand mask and label.

    The arrays are numpy (int64, float32 [N, 3], bool); anything array-like is converted on
    construction, so tests and tools may pass torch tensors.
    """

    key: str
    atom_type: np.ndarray  # int64 [N]
    pos: np.ndarray  # float32 [N, 3], Å
    is_ligand: np.ndarray  # bool [N]
    y: float = float("nan")  # pK, NaN when unlabelled (inference)
    # Set when FeatureSettings.pair_cutoffs is: counts, ligand chemistry, protein identity (compass.data.pair_inputs)
    pairs: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.atom_type = np.asarray(self.atom_type, dtype=np.int64)
        self.pos = np.ascontiguousarray(self.pos, dtype=np.float32).reshape(-1, 3)
        self.is_ligand = np.asarray(self.is_ligand, dtype=bool)

    @property
    def num_atoms(self) -> int:
        return int(self.atom_type.size)

    @property
    def num_ligand_atoms(self) -> int:
        return int(self.is_ligand.sum())

    def to_data(self) -> Any:
        """A torch_geometric ``Data`` (``z`` = atom type) for batching with its DataLoader."""
        import torch
        from torch_geometric.data import Data

        return Data(
            z=torch.from_numpy(self.atom_type),
            pos=torch.from_numpy(self.pos),
            is_ligand=torch.from_numpy(self.is_ligand),
            y=torch.tensor([self.y], dtype=torch.float32),
            num_nodes=self.num_atoms,
        )


def pack(graphs: list[ComplexGraph]) -> dict[str, Any]:
    """Concatenate graphs into a few flat arrays (compact; :mod:`compass.data.dataset` stores them as tensors)."""
    ptr = np.zeros(len(graphs) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([g.num_atoms for g in graphs])
    return {
        "keys": [g.key for g in graphs],
        "ptr": ptr,
        "atom_type": np.concatenate([g.atom_type for g in graphs]) if graphs else np.zeros(0, np.int64),
        "pos": np.concatenate([g.pos for g in graphs]) if graphs else np.zeros((0, 3), np.float32),
        "is_ligand": np.concatenate([g.is_ligand for g in graphs]) if graphs else np.zeros(0, bool),
        "y": np.array([g.y for g in graphs], dtype=np.float32),
    }


def unpack(packed: dict[str, Any]) -> list[ComplexGraph]:
    """Inverse of :func:`pack` (the arrays may also be tensors, as a cache file holds them)."""
    arrays = {k: np.asarray(packed[k]) for k in ("ptr", "atom_type", "pos", "is_ligand", "y")}
    ptr = arrays["ptr"].tolist()
    out = []
    for i, key in enumerate(packed["keys"]):
        lo, hi = ptr[i], ptr[i + 1]
        out.append(
            ComplexGraph(
                key=key,
                atom_type=arrays["atom_type"][lo:hi],
                pos=arrays["pos"][lo:hi],
                is_ligand=arrays["is_ligand"][lo:hi],
                y=float(arrays["y"][i]),
            )
        )
    return out
