"""What the descriptor models read from a user's complex: pair counts, ligand chemistry, protein identity.

Computed from the whole input protein (not the cropped point cloud: the counting rule needs residue
names and record types, and cutoffs up to 10 Å), only when a model's
:attr:`~compass.data.graph.FeatureSettings.pair_cutoffs` asks for it.
"""

from __future__ import annotations

import re
from typing import Any

from compass.data.contacts import contact_protein_atoms, pair_counts
from compass.data.ligand_props import fingerprint, ligand_props, mol_from_text
from compass.data.similarity import sequence_of_text
from compass.data.structures import Atoms

_ACCESSION = re.compile(r"^[A-Z0-9]{6,10}$")


def dbref_uniprot(text: str) -> list[str]:
    """UniProt accessions named by the PDB text's DBREF records (database ``UNP``)."""
    found: list[str] = []
    for line in text.splitlines():
        if line.startswith("DBREF ") and line[26:32].strip() == "UNP":
            acc = line[33:41].strip()
            if _ACCESSION.match(acc) and acc not in found:
                found.append(acc)
    return found


def pair_inputs(
    protein_text: str,
    ligand: Atoms,
    ligand_text: str,
    ligand_format: str,
    ligand_index: int,
    cutoffs: tuple[float, ...],
) -> dict[str, Any]:
    """The ``ComplexGraph.pairs`` dict: ``counts`` [len(cutoffs), 36], ``props``, ``fingerprint`` (or None),
    ``uniprot`` (from DBREF) and ``sequence`` (chains, for the seen-protein check)."""
    mol = mol_from_text(ligand_text, ligand_format, ligand_index) if ligand_format in ("sdf", "mol2") else None
    return {
        "counts": pair_counts(contact_protein_atoms(protein_text), ligand, cutoffs),
        "props": ligand_props(mol),
        "fingerprint": fingerprint(mol),
        "uniprot": dbref_uniprot(protein_text),
        "sequence": sequence_of_text(protein_text),
    }
