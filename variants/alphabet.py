"""Vocabularies over the IUPAC alphabets: which letters a sequence may hold and their one-hot order.

A vocabulary is what a table is validated against at import and what a model encodes with. The
built-in ones reuse the sequence workers' alphabets; a ``vocab`` plugin adds another by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqmodels.sequences import DNA, PROTEIN


@dataclass(frozen=True)
class Vocab:
    """An ordered set of letters; ``index`` maps a letter to its one-hot column."""

    name: str
    letters: str
    description: str = ""

    @property
    def index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.letters)}

    def bad_letters(self, sequence: str) -> str:
        """The letters of ``sequence`` outside this vocabulary, sorted (empty when it is valid)."""
        return "".join(sorted(set(sequence).difference(self.letters)))

    def one_hot(self, sequences: list[str]) -> np.ndarray:
        """``[N, L, len(letters)]`` float32 one-hot codes of equal-length sequences."""
        if not sequences:
            return np.zeros((0, 0, len(self.letters)), dtype=np.float32)
        length = len(sequences[0])
        table = np.full(256, -1, dtype=np.int64)
        for i, c in enumerate(self.letters):
            table[ord(c)] = i
        codes = np.frombuffer("".join(sequences).encode("ascii"), dtype=np.uint8).reshape(len(sequences), length)
        idx = table[codes]
        if (idx < 0).any():
            row = int(np.argwhere(idx < 0)[0][0])
            raise ValueError(f"sequence {row} has letters outside {self.name}: {self.bad_letters(sequences[row])!r}")
        out = np.zeros((len(sequences), length, len(self.letters)), dtype=np.float32)
        np.put_along_axis(out, idx[..., None], 1.0, axis=2)
        return out


BUILTIN_VOCABS: dict[str, Vocab] = {
    "protein": Vocab("protein", PROTEIN.letters, PROTEIN.description),
    "protein-iupac": Vocab(
        "protein-iupac", "ACDEFGHIKLMNPQRSTVWYBZX", "IUPAC protein: the 20 amino acids plus B, Z and X (ambiguous)"
    ),
    "dna": Vocab("dna", DNA.letters, DNA.description),
}


class VocabPlugin:
    """Base of a ``vocab`` plugin: set ``name`` and ``letters`` (upper case, no repeats)."""

    name: str = ""
    letters: str = ""

    @classmethod
    def vocab(cls) -> Vocab:
        if not cls.letters or len(set(cls.letters)) != len(cls.letters) or cls.letters != cls.letters.upper():
            raise ValueError(f"vocab {cls.name!r}: letters must be distinct upper-case characters")
        return Vocab(cls.name, cls.letters, (cls.__doc__ or "").strip())
