"""Zero-shot AntiBERTy score: the masked log-likelihood of the variable positions only (no training).

Each of the region's positions is masked in its own pass (10 passes for the DMS's 10 residues,
not one per residue of the chain) and the mean log-probability of the variant's residue there is
the score. Scores are cached by sequence. ``embeddings.context`` may crop the chain to cut the cost.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from variants.embed import VectorCache, antiberty_runner, cached, crop
from variants.models.base import ModelContext, VariantModel


class ZeroShotPLL(VariantModel):
    name = "zero-shot"
    needs_training = False
    file_name = "model.json"

    def __init__(self, options: dict[str, Any], context: ModelContext) -> None:
        super().__init__(options, context)
        cache = context.embeddings.get("cache") or None
        self.cache = VectorCache(Path(cache)) if cache else None
        self.progress = None

    def passes(self, n_variants: int) -> int:
        return n_variants * len(self.context.positions)

    def score(self, sequences: Sequence[str]) -> np.ndarray:
        from seqmodels.antiberty_infill import masked_scores

        context = self.context.embeddings.get("context")
        seqs, pos = crop(sequences, self.context.positions, context)
        keys = [VectorCache.key("antiberty-pll", context, pos, s) for s in seqs]
        runner = None

        def compute(idx: list[int]) -> np.ndarray:
            nonlocal runner
            runner = runner or antiberty_runner(self.context.threads)
            scores = masked_scores(runner, [seqs[i] for i in idx], [pos] * len(idx))
            return np.stack([s.mean(keepdims=True) for s in scores])

        return cached(self.cache, keys, compute, 8).ravel()

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"model": self.name, "options": self.options}))

    @classmethod
    def load(cls, path: Path, context: ModelContext) -> ZeroShotPLL:
        return cls(json.loads(path.read_text()).get("options", {}), context)
