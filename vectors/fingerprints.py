"""Molecular fingerprints (RDKit Morgan bits) and the exact Tanimoto similarity between them.

Fingerprints are kept as the sorted indices of their set bits: a 2,048-bit Morgan
fingerprint of a drug-like molecule sets 30-60 bits, so the list is small on the wire and in
the Milvus Lite file (a sparse vector), and Tanimoto ``|a∩b| / |a∪b|`` is a set operation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from services.common.envelope import ApiError, ErrorCode

DEFAULT_BITS = 2048
MORGAN_RADIUS = 2
MAX_SMILES = 2000


def morgan_bits(smiles: str, n_bits: int = DEFAULT_BITS, radius: int = MORGAN_RADIUS) -> list[int]:
    """The set bits of the Morgan fingerprint (ECFP4 at radius 2) of ``smiles``; 400 when it does not parse."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem import rdFingerprintGenerator

    if not isinstance(smiles, str) or not smiles.strip():
        raise ApiError(ErrorCode.INVALID_STRUCTURE, "smiles must be a non-empty string")
    if len(smiles) > MAX_SMILES:
        raise ApiError(ErrorCode.INVALID_STRUCTURE, f"smiles longer than {MAX_SMILES} characters")
    RDLogger.DisableLog("rdApp.*")
    mol = Chem.MolFromSmiles(smiles.strip())
    if mol is None:
        raise ApiError(ErrorCode.INVALID_STRUCTURE, f"not a valid SMILES: {smiles[:80]!r}")
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    return sorted(int(b) for b in gen.GetFingerprint(mol).GetOnBits())


def tanimoto(a: Iterable[int], b: Iterable[int]) -> float:
    """Exact Tanimoto (Jaccard) similarity of two bit sets; 1.0 for two empty ones."""
    sa, sb = set(a), set(b)
    union = len(sa | sb)
    return len(sa & sb) / union if union else 1.0


def bits_from_dense(values: Sequence[float]) -> list[int]:
    """The set bits of a 0/1 vector (any value above 0.5 counts as set)."""
    return [i for i, v in enumerate(values) if v > 0.5]


def dense_from_bits(bits: Iterable[int], n_bits: int) -> list[float]:
    out = [0.0] * n_bits
    for b in bits:
        out[b] = 1.0
    return out
