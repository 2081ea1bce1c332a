"""Synthetic complexes for tests and benchmarks: no RDKit, no data files, fully seeded.

A ligand is a compact blob of heavy atoms, the "pocket" a shell of protein atoms around it, with
spacings close to real crops. The label is a smooth function of the geometry (ligand size and
close protein contacts) so a model has something learnable. :func:`write_root` stores a set as a
``.pt`` data root that :func:`compass.data.load_root` reads like any featurised cache.
"""

from __future__ import annotations

from pathlib import Path

import torch

from compass.data.graph import NUM_ELEMENTS, ComplexGraph, ComplexRecord, FeatureSettings


def synthetic_complex(
    key: str, n_ligand: int, n_protein: int, generator: torch.Generator, group: str = "g0"
) -> tuple[ComplexGraph, ComplexRecord]:
    """One complex: ligand atoms ~N(0, 1.6 Å), protein atoms in a 3.5–9 Å shell around them."""
    lig_pos = torch.randn(n_ligand, 3, generator=generator) * 1.6
    direction = torch.nn.functional.normalize(torch.randn(n_protein, 3, generator=generator), dim=1)
    radius = 3.5 + 5.5 * torch.rand(n_protein, 1, generator=generator) ** (1 / 3)
    prot_pos = direction * radius
    pos = torch.cat([lig_pos, prot_pos]).float()
    is_ligand = torch.zeros(n_ligand + n_protein, dtype=torch.bool)
    is_ligand[:n_ligand] = True
    element = torch.randint(0, 4, (n_ligand + n_protein,), generator=generator)  # C, N, O, S
    atom_type = element + NUM_ELEMENTS * is_ligand.long()
    contacts = int((torch.cdist(lig_pos, prot_pos) < 4.5).sum()) if n_protein else 0
    polar = int(((element[:n_ligand] == 1) | (element[:n_ligand] == 2)).sum())
    y = 3.0 + 0.1 * n_ligand + 0.3 * contacts / max(n_ligand, 1) + 0.15 * polar
    graph = ComplexGraph(key=key, atom_type=atom_type, pos=pos, is_ligand=is_ligand, y=float(y))
    record = ComplexRecord(key=key, protein_path="", ligand_paths=[], pK=float(y), group=group, series=group)
    return graph, record


def synthetic_set(
    n: int,
    *,
    ligand_atoms: tuple[int, int] = (8, 16),
    protein_atoms: tuple[int, int] = (20, 40),
    n_groups: int = 4,
    seed: int = 0,
) -> tuple[list[ComplexGraph], list[ComplexRecord]]:
    """``n`` complexes spread over ``n_groups`` protein groups; sizes drawn uniformly in the ranges."""
    gen = torch.Generator().manual_seed(seed)
    graphs, records = [], []
    for i in range(n):
        n_lig = int(torch.randint(ligand_atoms[0], ligand_atoms[1] + 1, (1,), generator=gen))
        n_prot = int(torch.randint(protein_atoms[0], protein_atoms[1] + 1, (1,), generator=gen))
        graph, record = synthetic_complex(f"syn/{i}", n_lig, n_prot, gen, group=f"protein{i % n_groups}")
        graphs.append(graph)
        records.append(record)
    return graphs, records


def write_root(
    path: str | Path,
    graphs: list[ComplexGraph],
    records: list[ComplexRecord],
    settings: FeatureSettings | None = None,
) -> Path:
    """Save graphs + records as a ``.pt`` data root (the loader's cache format)."""
    from compass.data.dataset import LoadedRoot, SurvivalReport, save_cache
    from compass.train.inputs import data_hash

    path = Path(path)
    settings = settings or FeatureSettings()
    report = SurvivalReport(root=str(path), layout="synthetic", n_index=len(graphs), featurised=len(graphs))
    save_cache(path, LoadedRoot(records, graphs, report, settings, data_hash(graphs, [], settings)))
    return path
