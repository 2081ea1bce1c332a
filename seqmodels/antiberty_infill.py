"""AntiBERTy masked scoring and masked in-filling: two routes of the ``antiberty`` worker, one function each.

* :func:`masked_scores`: the log-probability of the true residue at chosen positions, each
  position masked in its own pass (the pseudo-log-likelihood restricted to those positions; a
  CDR-H3 window of 10 residues costs 10 passes, not one per residue of the chain).
* :func:`infill`: mask the chosen positions together, read the model's distribution there in one
  pass, and sample ``n`` variants from it (independent per position, with a temperature).

The variant worker (zero-shot score, embeddings) calls these in-process; the vector service's
generator calls the routes (``POST /api/v1/antiberty/score``, ``POST /api/v1/antiberty/infill``,
documented in ``seqmodels/README.md``), so both use the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from seqmodels.sequences import PROTEIN, clean_sequence
from services.common.envelope import ApiError, ErrorCode, json_body, ok
from services.worker.admission import charge

if TYPE_CHECKING:
    from flask import Blueprint, Response

    from seqmodels.lm import MaskedLMRunner
    from seqmodels.lm_worker import MaskedLMWorker

MAX_POSITIONS = 64
MAX_SAMPLES = 1000
MAX_SCORE_SEQUENCES = 100


def _letter_ids(runner: MaskedLMRunner) -> torch.Tensor:
    """Token ids of the 20 standard amino acids, in :data:`PROTEIN` order."""
    return torch.tensor(runner.tokenizer.convert_tokens_to_ids(list(PROTEIN.letters)))


@torch.inference_mode()
def masked_scores(
    runner: MaskedLMRunner, sequences: Sequence[str], positions: Sequence[Sequence[int]], chunk: int = 64
) -> list[np.ndarray]:
    """Per sequence, ``log p(true residue | rest)`` at each 0-based position of ``positions[i]``, one pass each."""
    enc = runner.encode(sequences)
    rows: list[tuple[int, int]] = []
    for i, wanted in enumerate(positions):
        tokens = enc.positions(i)
        rows.extend((i, int(tokens[p])) for p in wanted)
    letters = _letter_ids(runner)
    scores = np.empty(len(rows), dtype=np.float32)
    lengths = enc.attention_mask.sum(dim=1)
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        width = int(max(lengths[i] for i, _ in part))
        seq_idx = torch.tensor([i for i, _ in part])
        pos = torch.tensor([p for _, p in part])
        ids = enc.input_ids[seq_idx, :width].clone()
        truth = ids[torch.arange(len(part)), pos].clone()
        ids[torch.arange(len(part)), pos] = runner.mask_token_id
        out = runner._forward(ids, enc.attention_mask[seq_idx, :width], hidden=False)
        logits = getattr(out, runner.logits_field)[torch.arange(len(part)), pos.to(runner.device)].float().cpu()
        logp = torch.log_softmax(logits[:, letters], dim=-1)  # only the 20 residues compete
        column = (letters[None, :] == truth[:, None]).float().argmax(dim=1)
        scores[start : start + len(part)] = logp[torch.arange(len(part)), column].numpy()
    out_list, cursor = [], 0
    for wanted in positions:
        out_list.append(scores[cursor : cursor + len(wanted)])
        cursor += len(wanted)
    return out_list


@torch.inference_mode()
def region_embeddings(
    runner: MaskedLMRunner, sequences: Sequence[str], positions: Sequence[int], layer: int = -1
) -> np.ndarray:
    """``[N, hidden]``: the mean hidden state of ``layer`` over 0-based ``positions``, one pass per batch."""
    _enc, vectors = runner.embed(sequences, layer=layer)
    idx = torch.tensor(list(positions))
    return torch.stack([v[idx].mean(dim=0) for v in vectors]).numpy()


@torch.inference_mode()
def infill(
    runner: MaskedLMRunner, sequence: str, positions: Sequence[int], n: int, *, temperature: float = 1.0, seed: int = 0
) -> list[dict[str, Any]]:
    """``n`` samples (distinct, best first) with 0-based ``positions`` drawn from the masked model in one pass."""
    enc = runner.encode([sequence])
    tokens = enc.positions(0)
    at = torch.tensor([int(tokens[p]) for p in positions])
    ids = enc.input_ids.clone()
    ids[0, at] = runner.mask_token_id
    out = runner._forward(ids, enc.attention_mask, hidden=False)
    letters = _letter_ids(runner)
    logits = getattr(out, runner.logits_field)[0, at.to(runner.device)].float().cpu()[:, letters]
    logp = torch.log_softmax(logits, dim=-1)  # [P, 20]
    probs = torch.softmax(logits / temperature, dim=-1)
    gen = torch.Generator().manual_seed(seed)
    draws = torch.multinomial(probs, n, replacement=True, generator=gen).T  # [n, P]
    seen: dict[str, dict[str, Any]] = {}
    for row in draws.tolist():
        chars = list(sequence)
        for p, k in zip(positions, row, strict=True):
            chars[p] = PROTEIN.letters[k]
        variant = "".join(chars)
        if variant in seen:
            continue
        mutations = [f"{sequence[p]}{p + 1}{chars[p]}" for p in positions if chars[p] != sequence[p]]
        log_prob = float(sum(logp[j, k] for j, k in enumerate(row)))
        seen[variant] = {"sequence": variant, "mutations": mutations, "log_prob": log_prob}
    return sorted(seen.values(), key=lambda v: -v["log_prob"])


# -- the routes ------------------------------------------------------------------------------


def _positions(value: Any, length: int, default_all: bool) -> list[int]:
    """1-based positions from a body → sorted 0-based indices, checked."""
    if value is None and default_all:
        return list(range(length))
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(p, int) and not isinstance(p, bool) for p in value)
    ):
        raise ApiError(ErrorCode.INVALID_REQUEST, "'positions' must be a non-empty list of 1-based integers")
    if len(value) > MAX_POSITIONS:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"at most {MAX_POSITIONS} positions per request")
    bad = [p for p in value if not 1 <= p <= length]
    if bad:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"position {bad[0]} is outside the sequence (1..{length})")
    return sorted({p - 1 for p in value})


def _number(body: dict[str, Any], key: str, default: float, lo: float, hi: float, integer: bool = False) -> Any:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)) or not lo <= value <= hi:
        kind = "an integer" if integer else "a number"
        raise ApiError(ErrorCode.INVALID_REQUEST, f"'{key}' must be {kind} between {lo} and {hi}")
    return value


def build_blueprint(model: MaskedLMWorker) -> Blueprint:
    """``POST /antiberty/score`` and ``POST /antiberty/infill`` over the worker's loaded runner."""
    from flask import Blueprint

    bp = Blueprint("antiberty_infill", __name__)

    def _runner() -> MaskedLMRunner:
        if not model.ready():
            raise ApiError(ErrorCode.MODEL_NOT_LOADED, "model is not loaded yet", retry_after=5)
        return model._runner()

    @bp.post("/antiberty/score")
    def score() -> Response:
        """Masked log-likelihood of each sequence at ``positions`` (all residues when omitted)."""
        body = json_body()
        raw = body.get("sequences")
        if not isinstance(raw, list) or not raw or len(raw) > MAX_SCORE_SEQUENCES:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"'sequences' must be a list of 1..{MAX_SCORE_SEQUENCES} strings")
        limit = model.max_length("embedding")
        seqs = [clean_sequence(s, PROTEIN, limit, what=f"sequences[{i}]") for i, s in enumerate(raw)]
        wanted = [_positions(body.get("positions"), len(s), default_all=True) for s in seqs]
        charge(sum(len(w) * len(s) for w, s in zip(wanted, seqs, strict=True)), "this masked scoring")
        results = masked_scores(_runner(), seqs, wanted, chunk=model.settings.pll_chunk)
        answers = [
            {"pseudo_log_likelihood": float(r.mean()), "per_position": r.tolist(), "positions": [p + 1 for p in w]}
            for r, w in zip(results, wanted, strict=True)
        ]
        passes = sum(len(w) for w in wanted)
        return ok({"results": answers, "masked_passes": passes, "model": model.models[0]})

    @bp.post("/antiberty/infill")
    def infill_route() -> Response:
        """``n`` variants of ``sequence`` with ``positions`` sampled from the masked model (one pass)."""
        body = json_body()
        seq = clean_sequence(body.get("sequence"), PROTEIN, model.max_length("embedding"))
        positions = _positions(body.get("positions"), len(seq), default_all=False)
        n = _number(body, "n", 10, 1, MAX_SAMPLES, integer=True)
        temperature = _number(body, "temperature", 1.0, 0.05, 10.0)
        seed = _number(body, "seed", 0, 0, 2**31 - 1, integer=True)
        charge(len(seq), "this in-filling")  # one pass of the chain, whatever n
        variants = infill(_runner(), seq, positions, n, temperature=temperature, seed=seed)
        return ok(
            {
                "variants": variants,
                "sampled": n,
                "distinct": len(variants),
                "masked_passes": 1,
                "model": model.models[0],
            }
        )

    return bp
