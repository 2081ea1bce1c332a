"""Turning protein + ligand atoms into a :class:`ComplexGraph`: pocket crop and atom types.

Whole proteins are normal input (FEP structures, PDBbind ``_protein.pdb``), so the pocket is cut
here: protein heavy atoms within ``crop_radius`` of any ligand heavy atom, the nearest
``max_protein_atoms`` if more. A ligand that sits nowhere near the protein (wrong frame, wrong
file) is an error, not an empty pocket.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compass.data.graph import NUM_ELEMENTS, ComplexGraph, FeatureSettings, element_index
from compass.data.pair_inputs import pair_inputs
from compass.data.structures import (
    Atoms,
    StructureError,
    parse_ligand_text,
    parse_pdb_text,
    read_ligand,
    read_protein,
)

_ROW_BLOCK = 4096  # protein atoms per distance block: bounds memory for huge proteins


def _min_distance_to_ligand(protein_xyz: np.ndarray, ligand_xyz: np.ndarray) -> np.ndarray:
    """For each protein atom, its distance to the nearest ligand atom."""
    out = np.empty(len(protein_xyz), dtype=np.float32)
    for lo in range(0, len(protein_xyz), _ROW_BLOCK):
        block = protein_xyz[lo : lo + _ROW_BLOCK]
        diff = block[:, None, :] - ligand_xyz[None, :, :]
        out[lo : lo + len(block)] = np.sqrt((diff * diff).sum(-1)).min(1)
    return out


def crop_pocket(protein: Atoms, ligand: Atoms, settings: FeatureSettings) -> np.ndarray:
    """Indices of the protein atoms kept around the ligand (nearest first)."""
    dist = _min_distance_to_ligand(protein.coords, ligand.coords)
    inside = np.flatnonzero(dist <= settings.crop_radius)
    if inside.size == 0:
        nearest = float(dist.min()) if dist.size else float("inf")
        raise StructureError(
            f"no protein atom within {settings.crop_radius} Å of the ligand (nearest {nearest:.1f} Å): "
            "are protein and ligand in the same coordinate frame?"
        )
    order = inside[np.argsort(dist[inside], kind="stable")]
    return order[: settings.max_protein_atoms]


def build_graph(protein: Atoms, ligand: Atoms, settings: FeatureSettings, key: str, y: float) -> ComplexGraph:
    """Crop the pocket and assemble the point cloud (ligand atoms first)."""
    if len(ligand) > settings.max_ligand_atoms:
        limit = settings.max_ligand_atoms
        raise StructureError(f"ligand has {len(ligand)} heavy atoms, more than max_ligand_atoms={limit}")
    keep = crop_pocket(protein, ligand, settings)
    lig_types = [element_index(e) + NUM_ELEMENTS for e in ligand.elements]
    prot_types = [element_index(protein.elements[i]) for i in keep]
    pos = np.concatenate([ligand.coords, protein.coords[keep]], axis=0)
    is_ligand = np.zeros(len(pos), dtype=bool)
    is_ligand[: len(ligand)] = True
    return ComplexGraph(
        key=key,
        atom_type=np.array(lig_types + prot_types, dtype=np.int64),
        pos=pos,
        is_ligand=is_ligand,
        y=float("nan") if y is None else float(y),
    )


def featurize_files(
    protein_path: str | Path,
    ligand_paths: list[str | Path] | str | Path,
    settings: FeatureSettings,
    *,
    key: str = "",
    y: float | None = None,
    ligand_index: int = 0,
) -> tuple[ComplexGraph, list[str]]:
    """Featurise a complex from files; returns the graph and the reading notes (fallbacks, sanitisation)."""
    if settings.pair_cutoffs:  # the descriptor models read the texts themselves (record types, DBREF, bonds)
        paths = [ligand_paths] if isinstance(ligand_paths, (str, Path)) else list(ligand_paths)
        first = Path(paths[0])
        return featurize_texts(
            Path(protein_path).read_text(errors="replace"),
            first.read_text(errors="replace"),
            first.suffix.lower().lstrip("."),
            settings,
            protein_format="pdbqt" if str(protein_path).lower().endswith(".pdbqt") else "pdb",
            ligand_index=ligand_index,
            key=key or Path(str(protein_path)).stem,
            y=y,
        )
    protein = read_protein(protein_path, keep_waters=settings.keep_waters)
    ligand = read_ligand(ligand_paths, ligand_index)
    graph = build_graph(protein, ligand, settings, key or Path(str(protein_path)).stem, y)
    return graph, list(ligand.notes)


def featurize_texts(
    protein_text: str,
    ligand_text: str,
    ligand_format: str,
    settings: FeatureSettings,
    *,
    protein_format: str = "pdb",
    ligand_index: int = 0,
    key: str = "input",
    y: float | None = None,
) -> tuple[ComplexGraph, list[str]]:
    """Featurise a complex from file contents (what the inference API receives)."""
    if protein_format not in ("pdb", "pdbqt"):
        raise StructureError(f"protein format must be pdb or pdbqt, got {protein_format!r}")
    protein = parse_pdb_text(protein_text, pdbqt=protein_format == "pdbqt", keep_waters=settings.keep_waters)
    ligand = parse_ligand_text(ligand_text, ligand_format, ligand_index)
    graph = build_graph(protein, ligand, settings, key, y)
    if settings.pair_cutoffs:
        fmt = ligand_format.lower()
        graph.pairs = pair_inputs(protein_text, ligand, ligand_text, fmt, ligand_index, settings.pair_cutoffs)
    return graph, list(ligand.notes)
