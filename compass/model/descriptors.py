"""compass-lite descriptors: a fixed-length vector per complex, computed from a ComplexGraph alone.

No RDKit and no file I/O: the same code runs on the worker, on the GPU machine and in tests. One
ligand-to-protein distance matrix per complex feeds every block:

* ``contacts``: ligand-element × protein-element counts in distance shells (RF-Score / OnionNet
  style). Default shells 0–3, 3–4, 4–5, 5–6, 6–8 Å: below 3 Å are hydrogen bonds, salt bridges
  and metal coordination; 3–4 Å weak polar and close van der Waals contact (C···C optimum ≈ 4 Å);
  4–5 and 5–6 Å the first and second contact shells; 6–8 Å long range, up to the featuriser's
  8 Å crop radius. 1 Å shells beat 0–3.5/3.5–4.5/4.5–6/6–8 on the CASF-free read-outs
  (pdbqt_extra CV and fep-lpo) of an earlier version of bench/compass_lite_select.py.
* ``vina``: AutoDock-Vina-like smooth terms on surface distances (gauss1, gauss2, repulsion,
  hydrophobic, polar contact), the physics prior that lifted RF-Score v3 above RF-Score.
* ``ligand``: heavy-atom count, element counts, bonds and rings inferred from coordinates, radius
  of gyration — the size/shape information the heavy-atom anchor lives on.
* ``burial``: per ligand atom, protein atoms within 4.5 Å; buried and exposed fractions.
* ``chemistry``: ligand physchem read off the heavy-atom geometry (hydrogens and bond orders are not
  in a ComplexGraph, so no RDKit): a bond shorter than its covalent-radius sum by more than 0.09 Å is
  "multiple" (C=C 1.34, aromatic 1.39, amide C–N 1.33 Å against sums of 1.52 and 1.47 Å); ring bonds
  are the non-bridges of the bond graph. From these: rotatable bonds (acyclic, single, both ends
  non-terminal), ring and aromatic-like atoms (ring atoms with a multiple bond), sp2 atoms, N/O
  hydrogens by valence (donors), acceptors, a Crippen-like logP (one signed sum: it beat a split
  into lipophilic and hydrophilic sums on fep-lpo and the grouped CV), the sp3 share of carbons,
  buried polar atoms with no protein N/O within 3.5 Å (desolvation left uncompensated) and exposed
  apolar atoms. Approximate by construction (an amide N–H counts
  as no donor), but the same approximation at training and prediction time.

Element groups are coarser than :data:`ELEMENTS` where the data is thin (metal/other pooled).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

import numpy as np
from scipy.spatial.distance import cdist

from compass.data.graph import ELEMENTS, NUM_ELEMENTS, ComplexGraph

DESCRIPTOR_VERSION = 1

# Ligand groups: every organic element on its own, metal and other pooled.
LIGAND_GROUPS: tuple[str, ...] = ("C", "N", "O", "S", "P", "F", "Cl", "Br", "I", "other")
# Protein groups: the four residue elements, metals (catalytic ions), the rest (cofactor P, Se, halogens).
PROTEIN_GROUPS: tuple[str, ...] = ("C", "N", "O", "S", "metal", "other")

_LIG_OF_ELEMENT = np.array(
    [LIGAND_GROUPS.index(e) if e in LIGAND_GROUPS else LIGAND_GROUPS.index("other") for e in ELEMENTS], dtype=np.int64
)
_PROT_OF_ELEMENT = np.array(
    [PROTEIN_GROUPS.index(e) if e in PROTEIN_GROUPS else PROTEIN_GROUPS.index("other") for e in ELEMENTS],
    dtype=np.int64,
)
# Per element of ELEMENTS: van der Waals radius (Vina's xs radii), covalent radius (bond perception).
_VDW = dict(C=1.9, N=1.8, O=1.7, S=2.0, P=2.1, F=1.5, Cl=1.8, Br=2.0, I=2.2, metal=1.2, other=2.0)
_COV = dict(C=0.76, N=0.71, O=0.66, S=1.05, P=1.07, F=0.57, Cl=1.02, Br=1.20, I=1.39, metal=1.40, other=1.20)
_VDW_R = np.array([_VDW[e] for e in ELEMENTS])
_COV_R = np.array([_COV[e] for e in ELEMENTS])
_IDX = {e: i for i, e in enumerate(ELEMENTS)}
_POLAR = np.zeros(NUM_ELEMENTS, dtype=bool)
_POLAR[[_IDX["N"], _IDX["O"]]] = True
_HALOGEN = np.zeros(NUM_ELEMENTS, dtype=bool)
_HALOGEN[[_IDX["F"], _IDX["Cl"], _IDX["Br"], _IDX["I"]]] = True
_BOND_TOLERANCE = 0.45  # Å above the sum of covalent radii still counts as a bond
_VINA_CUTOFF = 8.0  # Å, as in Vina
_BURIAL_RADIUS = 4.5  # Å
_BURIED_MIN = 8  # protein atoms within 4.5 Å that make a ligand atom "buried"
_LIGAND_ELEMENT_BLOCK = ("C", "N", "O", "S", "P", "halogen", "other")
_DEGREES = (1, 2, 3, 4)
_MULTIPLE_MARGIN = 0.09  # Å below the covalent-radius sum: a double, aromatic or amide bond
_VALENCE = np.zeros(NUM_ELEMENTS)
_VALENCE[[_IDX["N"], _IDX["O"]]] = (3, 2)
# Crippen-like heavy-atom logP contributions (rounded Wildman–Crippen means); C bonded to N/O and
# aromatic C get corrections in _chemistry.
_LOGP = np.zeros(NUM_ELEMENTS)
for _e, _v in dict(C=0.25, N=-0.7, O=-0.5, S=0.4, P=-0.3, F=0.4, Cl=0.7, Br=0.9, I=1.1).items():
    _LOGP[_IDX[_e]] = _v
_LOGP_POLAR_C = -0.35
_LOGP_AROMATIC_C = 0.15
_PAIRED_RADIUS = 3.5  # Å: a ligand N/O with a protein N/O this close has a polar partner
_EXPOSED_MAX = 4  # fewer protein atoms than this within 4.5 Å: an exposed ligand atom
_CHEMISTRY = (
    "rotatable_bonds",
    "ring_atoms",
    "aromatic_atoms",
    "sp2_atoms",
    "donors",
    "acceptors",
    "logp",
    "sp3_carbon_fraction",
    "buried_unpaired_polar",
    "exposed_apolar",
    "polar_atoms",
    "polar_hydrogens",
)


@dataclass(frozen=True)
class DescriptorSpec:
    """Which descriptor blocks and shells; stored in every compass-lite file so prediction matches training."""

    shells: tuple[float, ...] = (0.0, 3.0, 4.0, 5.0, 6.0, 8.0)  # shell edges, Å
    contacts: bool = True
    vina: bool = True
    ligand: bool = True
    burial: bool = True
    # Added after version 1 files were shipped: False here keeps those files' stored specs meaning what they
    # meant; compass-lite's config turns it on (LiteConfig.descriptors).
    chemistry: bool = False
    version: int = DESCRIPTOR_VERSION

    def __post_init__(self) -> None:
        edges = tuple(float(x) for x in self.shells)
        if len(edges) < 2 or any(b <= a for a, b in pairwise(edges)) or edges[0] < 0:
            raise ValueError(f"shell edges must be increasing and non-negative, got {self.shells}")
        object.__setattr__(self, "shells", edges)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["shells"] = list(self.shells)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> DescriptorSpec:
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown descriptor settings: {sorted(unknown)}")
        if data.get("version", DESCRIPTOR_VERSION) != DESCRIPTOR_VERSION:
            raise ValueError(f"descriptor version {data['version']} is not {DESCRIPTOR_VERSION}; retrain the model")
        if "shells" in data:
            data["shells"] = tuple(data["shells"])
        return cls(**data)


def descriptor_names(spec: DescriptorSpec | None = None) -> list[str]:
    """Column names of :func:`describe`, in order (for the model card and feature importances)."""
    spec = spec or DescriptorSpec()
    names: list[str] = []
    if spec.contacts:
        edges = spec.shells
        for s in range(len(edges) - 1):
            for lg in LIGAND_GROUPS:
                names += [f"contact_L{lg}_P{pg}_{edges[s]:g}-{edges[s + 1]:g}" for pg in PROTEIN_GROUPS]
    if spec.vina:
        names += ["vina_gauss1", "vina_gauss2", "vina_repulsion", "vina_hydrophobic", "vina_polar"]
    if spec.ligand:
        names += ["lig_heavy_atoms", *(f"lig_n_{e}" for e in _LIGAND_ELEMENT_BLOCK)]
        names += ["lig_bonds", "lig_rings", *(f"lig_degree_{d}" for d in _DEGREES), "lig_apolar_C", "lig_rgyr"]
    if spec.burial:
        names += ["burial_mean_neighbours", "burial_buried_fraction", "burial_exposed_fraction", "burial_pocket_atoms"]
    if spec.chemistry:
        names += [f"chem_{n}" for n in _CHEMISTRY]
    return names


def describe(graph: ComplexGraph, spec: DescriptorSpec | None = None) -> np.ndarray:
    """Descriptor vector (float64) of one complex; all blocks share one ligand×protein ``cdist``."""
    spec = spec or DescriptorSpec()
    atom_type, lig_mask, pos = graph.atom_type, graph.is_ligand, graph.pos.astype(np.float64)
    elem = atom_type % NUM_ELEMENTS
    lig_pos, prot_pos = pos[lig_mask], pos[~lig_mask]
    lig_el, prot_el = elem[lig_mask], elem[~lig_mask]
    dist = cdist(lig_pos, prot_pos) if len(lig_pos) and len(prot_pos) else np.zeros((len(lig_pos), len(prot_pos)))

    parts: list[np.ndarray] = []
    if spec.contacts:
        parts.append(_contacts(dist, lig_el, prot_el, np.asarray(spec.shells)))
    bonds = _ligand_bonds(lig_pos, lig_el) if (spec.vina or spec.ligand or spec.chemistry) else None
    if spec.vina:
        parts.append(_vina(dist, lig_el, prot_el, prot_pos, bonds))
    if spec.ligand:
        parts.append(_ligand(lig_pos, lig_el, bonds))
    if spec.burial:
        parts.append(_burial(dist))
    if spec.chemistry:
        parts.append(_chemistry(lig_pos, lig_el, prot_el, dist, bonds))
    return np.concatenate(parts) if parts else np.zeros(0)


def describe_many(graphs: list[ComplexGraph], spec: DescriptorSpec | None = None) -> np.ndarray:
    """Stacked descriptors, shape ``[len(graphs), len(descriptor_names(spec))]``."""
    spec = spec or DescriptorSpec()
    if not graphs:
        return np.zeros((0, len(descriptor_names(spec))))
    return np.stack([describe(g, spec) for g in graphs])


def _contacts(dist: np.ndarray, lig_el: np.ndarray, prot_el: np.ndarray, edges: np.ndarray) -> np.ndarray:
    n_lg, n_pg, n_sh = len(LIGAND_GROUPS), len(PROTEIN_GROUPS), len(edges) - 1
    shell = np.searchsorted(edges, dist, side="right") - 1  # d in [edge_s, edge_s+1)
    keep = (shell >= 0) & (shell < n_sh)
    pair = _LIG_OF_ELEMENT[lig_el][:, None] * n_pg + _PROT_OF_ELEMENT[prot_el][None, :]
    flat = (shell * (n_lg * n_pg) + pair)[keep]
    return np.bincount(flat, minlength=n_sh * n_lg * n_pg).astype(np.float64)


def _ligand_bonds(lig_pos: np.ndarray, lig_el: np.ndarray) -> np.ndarray:
    """Boolean adjacency of ligand heavy atoms from covalent radii (no RDKit, no bond orders)."""
    n = len(lig_pos)
    if n == 0:
        return np.zeros((0, 0), dtype=bool)
    d = cdist(lig_pos, lig_pos)
    limit = _COV_R[lig_el][:, None] + _COV_R[lig_el][None, :] + _BOND_TOLERANCE
    adj = (d < limit) & (d > 0.4)
    np.fill_diagonal(adj, False)
    return adj


def _vina(
    dist: np.ndarray, lig_el: np.ndarray, prot_el: np.ndarray, prot_pos: np.ndarray, bonds: np.ndarray | None
) -> np.ndarray:
    if dist.size == 0:
        return np.zeros(5)
    within = dist < _VINA_CUTOFF
    surface = dist - _VDW_R[lig_el][:, None] - _VDW_R[prot_el][None, :]
    gauss1 = np.exp(-((surface / 0.5) ** 2))
    gauss2 = np.exp(-(((surface - 3.0) / 2.0) ** 2))
    repulsion = np.where(surface < 0, surface**2, 0.0)
    # Hydrophobic: ligand C not bonded to N/O, or halogen; protein C with no N/O within bond range.
    lig_polar_nb = (bonds & _POLAR[lig_el][None, :]).any(1) if bonds is not None else np.zeros(len(lig_el), bool)
    lig_h = ((lig_el == _IDX["C"]) & ~lig_polar_nb) | _HALOGEN[lig_el]
    prot_h = _apolar_protein_carbons(dist, prot_el, prot_pos)
    hydro = np.clip(1.5 - surface, 0.0, 1.0) * (lig_h[:, None] & prot_h[None, :])
    # Polar contact: N/O on both sides (donor/acceptor unknown without hydrogens), Vina's h-bond ramp.
    polar = np.clip(-surface / 0.7, 0.0, 1.0) * (_POLAR[lig_el][:, None] & _POLAR[prot_el][None, :])
    terms = (gauss1, gauss2, repulsion, hydro, polar)
    return np.array([float((t * within).sum()) for t in terms])


def _apolar_protein_carbons(dist: np.ndarray, prot_el: np.ndarray, prot_pos: np.ndarray) -> np.ndarray:
    """Protein carbons with no bonded N/O; only those near the ligand are checked (the rest cannot score)."""
    is_c = prot_el == _IDX["C"]
    near = is_c & (dist.min(0) < 6.0)
    out = np.zeros(len(prot_el), dtype=bool)
    polar = _POLAR[prot_el]
    if near.any() and polar.any():
        d = cdist(prot_pos[near], prot_pos[polar])
        out[near] = ~(d < 1.75).any(1)
    else:
        out[near] = True
    return out


def _ligand(lig_pos: np.ndarray, lig_el: np.ndarray, bonds: np.ndarray | None) -> np.ndarray:
    n = len(lig_el)
    counts = np.bincount(lig_el, minlength=NUM_ELEMENTS)
    halogen = counts[[_IDX["F"], _IDX["Cl"], _IDX["Br"], _IDX["I"]]].sum()
    other = counts[[_IDX["metal"], _IDX["other"]]].sum()
    el_block = [counts[_IDX[e]] for e in ("C", "N", "O", "S", "P")] + [halogen, other]
    adj = bonds if bonds is not None else np.zeros((n, n), dtype=bool)
    degree = adj.sum(1)
    n_bonds = int(adj.sum() // 2)
    rings = max(0, n_bonds - n + _components(adj)) if n else 0
    polar_nb = (adj & _POLAR[lig_el][None, :]).any(1)
    apolar_c = int(((lig_el == _IDX["C"]) & ~polar_nb).sum())
    rgyr = float(np.sqrt(((lig_pos - lig_pos.mean(0)) ** 2).sum(1).mean())) if n else 0.0
    deg = [int((degree == d).sum()) if d < 4 else int((degree >= 4).sum()) for d in _DEGREES]
    return np.array([n, *el_block, n_bonds, rings, *deg, apolar_c, rgyr], dtype=np.float64)


def _components(adj: np.ndarray) -> int:
    """Connected components of a small graph (union-find over the upper triangle)."""
    parent = list(range(len(adj)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(adj, 1)), strict=True):
        ri, rj = find(int(i)), find(int(j))
        if ri != rj:
            parent[ri] = rj
    return len({find(i) for i in range(len(adj))})


def _ring_bonds(adj: np.ndarray) -> np.ndarray:
    """Boolean [n, n]: bonds on a cycle, i.e. every bond that is not a bridge (iterative Tarjan low-link)."""
    n = len(adj)
    ring = adj.copy()
    neighbours = [np.flatnonzero(adj[i]).tolist() for i in range(n)]
    order = [-1] * n
    low = [0] * n
    clock = 0
    for root in range(n):
        if order[root] >= 0:
            continue
        order[root] = low[root] = clock
        clock += 1
        stack = [(root, -1, iter(neighbours[root]))]
        while stack:
            u, parent, todo = stack[-1]
            for v in todo:
                if v == parent:
                    continue
                if order[v] < 0:
                    order[v] = low[v] = clock
                    clock += 1
                    stack.append((v, u, iter(neighbours[v])))
                    break
                low[u] = min(low[u], order[v])
            else:
                stack.pop()
                if parent >= 0:
                    low[parent] = min(low[parent], low[u])
                    if low[u] > order[parent]:  # nothing below u reaches above parent: a bridge
                        ring[u, parent] = ring[parent, u] = False
    return ring


def _chemistry(
    lig_pos: np.ndarray, lig_el: np.ndarray, prot_el: np.ndarray, dist: np.ndarray, bonds: np.ndarray | None
) -> np.ndarray:
    n = len(lig_el)
    if n == 0:
        return np.zeros(len(_CHEMISTRY))
    adj = bonds if bonds is not None else _ligand_bonds(lig_pos, lig_el)
    length = cdist(lig_pos, lig_pos)
    multiple = adj & (length < _COV_R[lig_el][:, None] + _COV_R[lig_el][None, :] - _MULTIPLE_MARGIN)
    ring = _ring_bonds(adj)
    degree = adj.sum(1)
    sp2 = multiple.any(1)
    ring_atom = ring.any(1)
    aromatic = ring_atom & sp2
    upper = np.triu(adj, 1)
    rotatable = int((upper & ~ring & ~multiple & (degree[:, None] >= 2) & (degree[None, :] >= 2)).sum())
    is_c, is_n, is_o = lig_el == _IDX["C"], lig_el == _IDX["N"], lig_el == _IDX["O"]
    polar = _POLAR[lig_el]
    hydrogens = np.clip(_VALENCE[lig_el] - degree - sp2, 0, None) * polar
    acceptors = int((is_o | (is_n & (hydrogens == 0) & (degree < 3))).sum())
    polar_c = is_c & (adj & polar[None, :]).any(1)
    contrib = _LOGP[lig_el] + _LOGP_POLAR_C * polar_c + _LOGP_AROMATIC_C * (is_c & aromatic)
    neighbours = (dist < _BURIAL_RADIUS).sum(1) if dist.size else np.zeros(n, dtype=np.int64)
    paired = ((dist < _PAIRED_RADIUS) & _POLAR[prot_el][None, :]).any(1) if dist.size else np.zeros(n, dtype=bool)
    return np.array(
        [
            rotatable,
            ring_atom.sum(),
            aromatic.sum(),
            sp2.sum(),
            (hydrogens > 0).sum(),
            acceptors,
            contrib.sum(),
            (is_c & ~sp2).sum() / max(int(is_c.sum()), 1),
            (polar & (neighbours >= _BURIED_MIN) & ~paired).sum(),
            (~polar & (neighbours < _EXPOSED_MAX)).sum(),
            polar.sum(),
            hydrogens.sum(),
        ],
        dtype=np.float64,
    )


def _burial(dist: np.ndarray) -> np.ndarray:
    n_lig = dist.shape[0]
    if n_lig == 0:
        return np.zeros(4)
    close = dist < _BURIAL_RADIUS
    neighbours = close.sum(1)
    pocket = int(close.any(0).sum()) if dist.size else 0
    return np.array(
        [neighbours.mean(), (neighbours >= _BURIED_MIN).mean(), (neighbours == 0).mean(), pocket], dtype=np.float64
    )
