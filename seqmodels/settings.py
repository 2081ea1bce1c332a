"""Settings of the sequence-model workers (``SEQMODELS_*``), each with its flag and help.

Importing it also pins the Hugging Face libraries offline (``HF_HUB_OFFLINE=1``,
``TRANSFORMERS_OFFLINE=1``) unless the caller set those variables: every model we serve
ships its weights on disk, and a worker must never stall on a hub download at start-up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import click

from services.common.cli import setting

# Before transformers or huggingface_hub is imported anywhere in the process.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

_AT_LEAST_1 = click.IntRange(min=1)


@dataclass
class SeqSettings:
    """Settings every sequence worker shares (``SEQMODELS_*``)."""

    max_length: int = setting(
        5120, "longest sequence accepted, unless the model needs less", env="SEQMODELS_MAX_LENGTH", type=_AT_LEAST_1
    )
    # Sequences per POST /predict/batch: the runtime's --max-batch-items of a sequence worker.
    max_batch_items: int = setting(100, "items per /predict/batch", env="SEQMODELS_MAX_BATCH_ITEMS", type=_AT_LEAST_1)
    batch_size: int = setting(
        16, "dynamic batching: most sequences per forward pass", env="SEQMODELS_BATCH_SIZE", type=_AT_LEAST_1
    )
    batch_wait_ms: float = setting(
        5.0,
        "dynamic batching: how long a request waits for others to join its pass",
        env="SEQMODELS_BATCH_WAIT_MS",
        type=click.FloatRange(min=0),
    )
    pll_chunk: int = setting(
        64,
        "masked copies per forward pass when scoring pseudo-log-likelihood",
        env="SEQMODELS_PLL_CHUNK",
        type=_AT_LEAST_1,
    )
    # Admission by cost (masked-LM kinds): residues × forward passes; an embedding of L residues
    # costs L, a pseudo-log-likelihood L² (one masked pass per residue).
    max_request_cost: int = setting(
        512 * 512,
        "most residue-passes one request may cost (413 past it); default: one 512-residue PLL",
        env="SEQMODELS_MAX_REQUEST_COST",
        type=_AT_LEAST_1,
    )
    max_client_cost: int = setting(
        4 * 512 * 512,
        "most residue-passes one client may have in flight (429 past it)",
        env="SEQMODELS_MAX_CLIENT_COST",
        type=_AT_LEAST_1,
    )
    pass_residues: int = setting(
        0,
        "most residues per forward pass (rows × length), so a short request waits at most one pass; "
        "0: 1024 on a CPU, 16384 on CUDA",
        env="SEQMODELS_PASS_RESIDUES",
        type=click.IntRange(min=0),
    )
    express_residues: int = setting(
        256,
        "requests of at most this many residue-passes get their own thread (never wait for a long pass); 0: off",
        env="SEQMODELS_EXPRESS_RESIDUES",
        type=click.IntRange(min=0),
    )
    # Default per-client limit of sequence workers (DESIGN: 100/min); --rate-limit-per-min still wins.
    rate_limit_per_min: int = setting(
        100, "the kind's requests per minute per client", env="SEQMODELS_RATE_LIMIT_PER_MIN"
    )
    torch_threads: int = setting(0, "torch intra-op threads; 0 = torch's choice", env="SEQMODELS_TORCH_THREADS")
    # The codon worker's default host organism (a python-codon-tables name or NCBI taxid).
    codon_host: str = setting(
        "e_coli", "host organism when a request names none", env="SEQMODELS_CODON_HOST", flag="--default-host"
    )
