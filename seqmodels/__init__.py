"""Sequence-model workers: AntiBERTy, SpliceAI, a DNA Chisel codon optimiser, and any Hugging Face model on disk.

Each is a worker kind of :mod:`services.worker` (``python -m seqmodels.antiberty``, ``.splice``,
``.codon``, ``.hf``) speaking one API: ``POST /predict {"sequence", "task_type", "options"}``,
``POST /predict/batch {"sequences": [...], ...}``, ``GET /model/info``. Importing this package
loads no model and no heavy library; :mod:`seqmodels.settings` pins the Hugging Face libraries
offline before any of them is imported.
"""

from seqmodels import settings as settings

KINDS = ("antiberty", "splice", "codon", "hf")
