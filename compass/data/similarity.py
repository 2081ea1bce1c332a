"""Protein identity by sequence, so a held-out protein's relatives stay out of training.

Leave-protein-out on the FEP set holds out, say, BACE1; but the PDBbind complexes trained beside
it include BACE1 structures under other names. Names cannot catch that, sequences can: two
proteins count as the same target when a large share of their 5-residue words are shared (a
cheap, alignment-free stand-in for sequence identity that is robust to missing loops and to
pocket-only files).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

THREE_TO_ONE = {
    "ALA": "A", "ARG": "R", "ASN": "N", "ASP": "D", "CYS": "C", "GLN": "Q", "GLU": "E", "GLY": "G",
    "HIS": "H", "ILE": "I", "LEU": "L", "LYS": "K", "MET": "M", "PHE": "F", "PRO": "P", "SER": "S",
    "THR": "T", "TRP": "W", "TYR": "Y", "VAL": "V", "HID": "H", "HIE": "H", "HIP": "H", "HSD": "H",
    "HSE": "H", "HSP": "H", "CYX": "C", "CYM": "C", "ASH": "D", "GLH": "E", "LYN": "K", "MSE": "M",
}  # fmt: skip
WORD = 5


@lru_cache(maxsize=1024)
def protein_sequence(path: str) -> tuple[str, ...]:
    """One-letter sequence of each chain (from CA atoms, in file order) of a PDB/PDBQT file."""
    return sequence_of_text(Path(path).read_text(errors="replace"))


def sequence_of_text(text: str) -> tuple[str, ...]:
    """One-letter sequence of each chain of PDB/PDBQT text (CA atoms of ATOM records, in file order)."""
    chains: dict[str, list[str]] = {}
    seen: set[tuple[str, str]] = set()
    last: dict[str, int] = {}
    for line in text.splitlines():
        if not line.startswith("ATOM") or line[12:16].strip() != "CA":
            continue
        chain, resid = line[21], line[22:27]
        if (chain, resid) in seen:
            continue
        seen.add((chain, resid))
        residues = chains.setdefault(chain, [])
        number = int(line[22:26]) if line[22:26].strip().lstrip("-").isdigit() else None
        if number is not None and chain in last and number - last[chain] > 1:
            residues.append("X")  # a gap (pocket files, missing loops): no word spans it
        if number is not None:
            last[chain] = number
        residues.append(THREE_TO_ONE.get(line[17:20].strip(), "X"))
    return tuple("".join(c) for c in chains.values())


def words(chains: tuple[str, ...], k: int = WORD) -> frozenset[str]:
    """All k-residue words of every chain (words with unknown residues skipped)."""
    return frozenset(s[i : i + k] for s in chains for i in range(len(s) - k + 1) if "X" not in s[i : i + k])


def shared_fraction(a: frozenset[str], b: frozenset[str]) -> float:
    """Share of the smaller word set found in the other: 1.0 for a pocket inside its own protein."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def related(paths: list[str], targets: list[str], threshold: float = 0.3) -> list[bool]:
    """For each protein file in ``paths``: does it share ≥ ``threshold`` of its words with any target?"""
    target_words = [words(protein_sequence(t)) for t in dict.fromkeys(targets)]
    out = []
    for path in paths:
        w = words(protein_sequence(path))
        out.append(any(shared_fraction(w, t) >= threshold for t in target_words))
    return out
