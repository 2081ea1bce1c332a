"""The worker kinds the launcher starts, and which kind serves each capability.

Pure data in a leaf module: the launcher (:mod:`services.worker.launch`), the gateway's "start
one" hints and FlashDock's error sentences read the same two tables, and a client such as
FlashDock gets them without importing the worker runtime.
"""

from __future__ import annotations

# kind → (module run with ``python -m``, arguments that select the model inside it)
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "echo": ("services.worker.echo", ()),
    "compass": ("compass.service.worker", ("--model", "compass")),
    "compass-lite": ("compass.service.worker", ("--model", "compass-lite")),
    "antiberty": ("seqmodels.antiberty", ()),
    "splice": ("seqmodels.splice", ()),
    "codon": ("seqmodels.codon", ()),
    "hf": ("seqmodels.hf", ()),
    "dock": ("docking.worker", ()),
    "variant": ("variants.service.worker", ()),
    "vectors": ("vectors.worker", ()),
    "gateway": ("gateway", ()),
}

# Capability → the launcher kind that serves it, so a "start one" hint names a command that works.
KIND_FOR_CAPABILITY: dict[str, str] = {
    "docking": "dock",
    "variant-effect": "variant",
    "vector-search": "vectors",
    "affinity": "compass-lite",
    "protein-embedding": "antiberty",
    "antibody-likelihood": "antiberty",
    "splice-site": "splice",
    "codon-optimization": "codon",
    "codon-verification": "codon",
}
