"""Settings of the sequence-model workers, from the environment: the only module of `seqmodels` reading os.environ.

Importing it also pins the Hugging Face libraries offline (``HF_HUB_OFFLINE=1``,
``TRANSFORMERS_OFFLINE=1``) unless the caller set those variables: every model we serve
ships its weights on disk, and a worker must never stall on a hub download at start-up.
Command-line flags override these values: each worker builds its argparse defaults from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

# Before transformers or huggingface_hub is imported anywhere in the process.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _env_list(name: str, default: str = "") -> list[str]:
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


@dataclass
class SeqSettings:
    """Settings every sequence worker shares (``SEQMODELS_*``)."""

    # Longest accepted sequence, unless the model itself needs less (AntiBERTy: 510 residues).
    max_length: int = field(default_factory=lambda: _env_int("SEQMODELS_MAX_LENGTH", 5120))
    # Sequences per POST /predict/batch (the runtime's WORKER_MAX_BATCH_ITEMS is raised to this).
    max_batch_items: int = field(default_factory=lambda: _env_int("SEQMODELS_MAX_BATCH_ITEMS", 100))
    # Dynamic batching: requests sharing one forward pass, and how long the first one waits for company.
    batch_size: int = field(default_factory=lambda: _env_int("SEQMODELS_BATCH_SIZE", 16))
    batch_wait_ms: float = field(default_factory=lambda: _env_float("SEQMODELS_BATCH_WAIT_MS", 5.0))
    # Rows of one forward pass when scoring pseudo-log-likelihood (one masked copy per residue).
    pll_chunk: int = field(default_factory=lambda: _env_int("SEQMODELS_PLL_CHUNK", 64))
    # Default per-client limit of sequence workers (DESIGN: 100/min); WORKER_RATE_LIMIT_PER_MIN still wins.
    rate_limit_per_min: int = field(default_factory=lambda: _env_int("SEQMODELS_RATE_LIMIT_PER_MIN", 100))
    # torch intra-op threads; 0 keeps torch's own choice.
    torch_threads: int = field(default_factory=lambda: _env_int("SEQMODELS_TORCH_THREADS", 0))
    # The hf adapter: which model directory, and what it is registered as.
    hf_model_dir: str = field(default_factory=lambda: _env("SEQMODELS_HF_MODEL_DIR", ""))
    hf_capabilities: list[str] = field(
        default_factory=lambda: _env_list("SEQMODELS_HF_CAPABILITIES", "protein-embedding")
    )
    hf_alphabet: str = field(default_factory=lambda: _env("SEQMODELS_HF_ALPHABET", "protein"))
    # The codon worker's default host organism (a python-codon-tables name or NCBI taxid).
    codon_host: str = field(default_factory=lambda: _env("SEQMODELS_CODON_HOST", "e_coli"))
