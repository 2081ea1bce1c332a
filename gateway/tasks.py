"""What can be asked of the mesh: task types, the capability that serves each, and sequence types.

One table, read by the REST routes (``/tasks``, ``/sequence-types``), the "best model" rule and the
MCP tools, so an agent sees the same vocabulary everywhere. A task names the capability workers
register with (DESIGN "Worker contract"), the ``task_type`` the worker expects, the sequence types
it accepts and the route a batch goes to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from services.common.envelope import ApiError, ErrorCode

PROTEIN = "protein"
ANTIBODY = "antibody"
DNA = "dna"
SMALL_MOLECULE = "small_molecule"


@dataclass(frozen=True)
class SequenceType:
    name: str
    description: str
    letters: str | None  # None: not a letter alphabet (SMILES), checked by the worker
    example: str

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "alphabet": self.letters, "example": self.example}


SEQUENCE_TYPES: dict[str, SequenceType] = {
    t.name: t
    for t in (
        SequenceType(PROTEIN, "amino-acid sequence, one-letter codes", "ACDEFGHIKLMNPQRSTVWY", "MSKGEELFTGVVPILVELDG"),
        SequenceType(
            ANTIBODY,
            "antibody chain (VH or VL), one-letter amino-acid codes",
            "ACDEFGHIKLMNPQRSTVWY",
            "EVQLVESGGGLVQPGG",
        ),
        SequenceType(DNA, "nucleotide sequence (A, C, G, T; N for unknown)", "ACGTN", "ATGGTGCACCTGACTCCTGAGGAG"),
        SequenceType(
            SMALL_MOLECULE, "small molecule as SMILES (or a structure file where a task says so)", None, "CCO"
        ),
    )
}
# Names callers may use for a sequence type.
_TYPE_ALIASES = {
    "small-molecule": SMALL_MOLECULE,
    "smiles": SMALL_MOLECULE,
    "ligand": SMALL_MOLECULE,
    "nucleotide": DNA,
}


@dataclass(frozen=True)
class Task:
    """One task type: what it does, who serves it, and what it reads."""

    name: str
    capability: str
    sequence_types: tuple[str, ...]
    description: str
    worker_task: str | None = None  # the worker's task_type; None sends none
    items: str = "sequences"  # "sequences" (strings) or "inputs" (objects: structures, variants)

    def public(self) -> dict[str, Any]:
        return {
            "task_type": self.name,
            "capability": self.capability,
            "sequence_types": list(self.sequence_types),
            "input": self.items,
            "description": self.description,
        }


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task(
            "embedding",
            "protein-embedding",
            (PROTEIN, ANTIBODY),
            "per-sequence (and per-residue) embeddings",
            "embedding",
        ),
        Task(
            "likelihood",
            "antibody-likelihood",
            (ANTIBODY, PROTEIN),
            "pseudo-log-likelihood of each sequence (masked language model)",
            "pseudo_log_likelihood",
        ),
        Task("splice", "splice-site", (DNA,), "splice acceptor and donor sites of a DNA sequence", "splice"),
        Task("codon_optimization", "codon-optimization", (PROTEIN,), "a coding DNA for a protein and host", "optimize"),
        Task(
            "codon_verification", "codon-verification", (DNA,), "check a coding DNA: frame, stops, GC, sites", "verify"
        ),
        Task(
            "affinity",
            "affinity",
            (SMALL_MOLECULE,),
            "binding affinity (pK) of a protein-ligand complex: inputs [{protein_pdb, ligand_sdf}]",
            items="inputs",
        ),
        Task(
            "docking",
            "docking",
            (SMALL_MOLECULE,),
            "dock a ligand into a protein: inputs [{protein_pdb, ligand_smiles, box}]",
            items="inputs",
        ),
        Task(
            "variant_effect",
            "variant-effect",
            (PROTEIN, DNA),
            "score variants of a template: inputs [{variants, template}]",
            items="inputs",
        ),
    )
}
# Names callers may use for a task (capabilities and the workers' own task types included).
_TASK_ALIASES = {
    **{t.capability: t.name for t in TASKS.values()},
    **{t.worker_task: t.name for t in TASKS.values() if t.worker_task},
    "pseudo_log_likelihood": "likelihood",
    "dock": "docking",
    "variant": "variant_effect",
}
# What each known capability can read, for services that do not advertise ``sequence_types``.
CAPABILITY_SEQUENCE_TYPES: dict[str, tuple[str, ...]] = {t.capability: t.sequence_types for t in TASKS.values()}
CAPABILITY_SEQUENCE_TYPES["antibody-likelihood"] = (ANTIBODY,)  # AntiBERTy: trained on antibodies only
CAPABILITY_SEQUENCE_TYPES["vector-search"] = tuple(SEQUENCE_TYPES)

_TOKEN = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


def resolve_task(value: Any) -> Task:
    """The task a caller named (its name, capability or worker task type), or 400 listing them."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(ErrorCode.INVALID_REQUEST, f"'task_type' is required: one of {', '.join(TASKS)}")
    key = value.strip().lower()
    task = TASKS.get(key) or TASKS.get(_TASK_ALIASES.get(key, ""))
    if task is None:
        shown = value if _TOKEN.match(value) else "(not a task name)"
        raise ApiError(ErrorCode.INVALID_REQUEST, f"unknown task_type {shown!r}; use one of {', '.join(TASKS)}")
    return task


def resolve_sequence_type(value: Any, task: Task | None = None) -> str | None:
    """The canonical sequence type (None when not given), checked against ``task``; 400 otherwise."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ApiError(ErrorCode.INVALID_REQUEST, "'sequence_type' must be a string")
    key = value.strip().lower().replace(" ", "_")
    name = key if key in SEQUENCE_TYPES else _TYPE_ALIASES.get(key)
    if name is None:
        raise ApiError(
            ErrorCode.INVALID_REQUEST, f"unknown sequence_type; use one of {', '.join(SEQUENCE_TYPES)} (or smiles)"
        )
    if task is not None and name not in task.sequence_types:
        raise ApiError(
            ErrorCode.INVALID_REQUEST,
            f"task {task.name} reads {', '.join(task.sequence_types)}, not {name}",
        )
    return name


def check_sequences(values: Any, sequence_type: str, max_items: int, max_chars: int) -> list[str]:
    """The caller's sequences, upper-cased and checked against the type's letters (400/413 otherwise).

    Workers check again with their own, tighter limits; this refuses what no worker could take
    before a request crosses the mesh.
    """
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list) or not values:
        raise ApiError(ErrorCode.INVALID_REQUEST, "'sequences' must be a non-empty list of strings")
    if len(values) > max_items:
        raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, f"{len(values)} sequences; at most {max_items} per call")
    letters = SEQUENCE_TYPES[sequence_type].letters
    out = []
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value.strip():
            raise ApiError(ErrorCode.INVALID_SEQUENCE, f"sequence {i} must be a non-empty string")
        if len(value) > max_chars:
            raise ApiError(ErrorCode.SEQUENCE_TOO_LONG, f"sequence {i} has {len(value)} characters; limit {max_chars}")
        seq = "".join(value.split())
        if letters is not None:
            seq = seq.upper()
            bad = sorted(set(seq) - set(letters) - {"*"})
            if bad:
                raise ApiError(
                    ErrorCode.INVALID_SEQUENCE,
                    f"sequence {i} is not {sequence_type}: letters {''.join(bad[:10])!r} are outside {letters}",
                )
        out.append(seq)
    return out


def guess_sequence_type(task: Task, sequences: Any) -> str:
    """The sequence type of a call that did not say: the task's only one, else DNA if it reads so, else its first."""
    if len(task.sequence_types) == 1:
        return task.sequence_types[0]
    seqs = sequences if isinstance(sequences, list) else [sequences]
    if DNA in task.sequence_types and seqs and all(isinstance(s, str) and set(s.upper()) <= set("ACGTN") for s in seqs):
        return DNA
    return task.sequence_types[0]
