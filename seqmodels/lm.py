"""Embeddings and pseudo-log-likelihood from any masked language model (AntiBERTy, ESM-2, DNABERT...).

Both the ``antiberty`` and the ``hf`` workers delegate here, so the two behave identically:

* embedding: the hidden states of the chosen layer at every non-special token (per residue
  when the tokenizer has one token per letter), and their mean;
* pseudo-log-likelihood (Salazar et al. 2020; AntiBERTy's ``pseudo_log_likelihood``): mask
  each position in turn and score the true token; the mean log-probability is the PLL. Every
  masked copy of every sequence of a batch goes through the model in chunks of ``chunk`` rows,
  so concurrent requests share passes here as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Encoded:
    """A tokenised batch: ids, attention mask, and which tokens are special (CLS, SEP, PAD...)."""

    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]
    special: torch.Tensor  # [B, T] bool

    def positions(self, row: int) -> torch.Tensor:
        """Indices of the real (non-special, non-padding) tokens of one sequence."""
        keep = (~self.special[row]) & self.attention_mask[row].bool()
        return torch.nonzero(keep, as_tuple=False).flatten()


class MaskedLMRunner:
    """Runs a Hugging Face style masked LM: ``model(input_ids, attention_mask, output_hidden_states=True)``.

    :param space_separated: join letters with spaces before tokenising (BERT-style protein
        vocabularies such as AntiBERTy's and ProtBERT's); ESM-style tokenizers split letters themselves.
    :param logits_field: the output attribute holding LM logits (``logits``; AntiBERTy: ``prediction_logits``).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        device: str = "cpu",
        space_separated: bool = False,
        logits_field: str = "logits",
        has_lm_head: bool = True,
    ) -> None:
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.space_separated = space_separated
        self.logits_field = logits_field
        self.has_lm_head = has_lm_head
        self.mask_token_id = tokenizer.mask_token_id
        self.special_ids = sorted(set(tokenizer.all_special_ids))

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def num_layers(self) -> int:
        """Hidden-state layers: the embedding output plus one per transformer layer."""
        return int(self.model.config.num_hidden_layers) + 1

    def encode(self, sequences: Sequence[str]) -> Encoded:
        texts = [" ".join(s) if self.space_separated else s for s in sequences]
        out = self.tokenizer(
            texts, padding=True, return_tensors="pt", return_special_tokens_mask=True, return_token_type_ids=False
        )
        return Encoded(out["input_ids"], out["attention_mask"], out["special_tokens_mask"].bool())

    def tokens(self, ids: torch.Tensor) -> list[str]:
        return self.tokenizer.convert_ids_to_tokens(ids.tolist())

    def _forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, hidden: bool) -> Any:
        return self.model(
            input_ids=input_ids.to(self.device),
            attention_mask=attention_mask.to(self.device),
            output_hidden_states=hidden,
            return_dict=True,
        )

    @torch.inference_mode()
    def embed(self, sequences: Sequence[str], layer: int = -1) -> tuple[Encoded, list[torch.Tensor]]:
        """Per-token hidden states of ``layer`` for each sequence (special tokens dropped), one pass."""
        enc = self.encode(sequences)
        out = self._forward(enc.input_ids, enc.attention_mask, hidden=True)
        states = out.hidden_states[layer].float().cpu()
        return enc, [states[i, enc.positions(i)] for i in range(len(sequences))]

    @torch.inference_mode()
    def pseudo_log_likelihood(
        self,
        sequences: Sequence[str],
        chunk: int = 64,
        spans: Sequence[tuple[int, int] | None] | None = None,
        max_tokens: int | None = None,
    ) -> list[torch.Tensor]:
        """Log-probability of each true token with that token masked, per sequence.

        ``spans[i]`` = ``(start, stop)`` scores only those tokens of sequence ``i`` (a slice of a
        long PLL the batcher schedules on its own); ``max_tokens`` caps rows × width per pass.
        """
        if not self.has_lm_head:
            raise ValueError("this model has no masked-LM head: pseudo-log-likelihood is not available")
        enc = self.encode(sequences)
        spans = spans or [None] * len(sequences)
        wanted = [
            enc.positions(i) if span is None else enc.positions(i)[span[0] : span[1]] for i, span in enumerate(spans)
        ]
        rows = [(i, int(p)) for i in range(len(sequences)) for p in wanted[i]]
        scores = torch.empty(len(rows))
        lengths = enc.attention_mask.sum(dim=1)
        start = 0
        while start < len(rows):
            part = rows[start : start + chunk]
            if max_tokens:  # fewer rows when they are long: a pass never holds the model for long
                part = part[: max(1, max_tokens // int(max(lengths[i] for i, _ in part)))]
            width = int(max(lengths[i] for i, _ in part))
            seq_idx = torch.tensor([i for i, _ in part])
            pos = torch.tensor([p for _, p in part])
            ids = enc.input_ids[seq_idx, :width].clone()
            truth = ids[torch.arange(len(part)), pos]
            ids[torch.arange(len(part)), pos] = self.mask_token_id
            out = self._forward(ids, enc.attention_mask[seq_idx, :width], hidden=False)
            at = (torch.arange(len(part), device=self.device), pos.to(self.device))
            logits = getattr(out, self.logits_field)[at].float().cpu()  # [rows, vocab] at the masked spots
            logits[:, self.special_ids] = -float("inf")  # as AntiBERTy's runner: only real letters compete
            scores[start : start + len(part)] = torch.log_softmax(logits, dim=-1)[torch.arange(len(part)), truth]
            start += len(part)
        out_scores: list[torch.Tensor] = []
        cursor = 0
        for i in range(len(sequences)):
            n = len(wanted[i])
            out_scores.append(scores[cursor : cursor + n])
            cursor += n
        return out_scores


def embedding_result(vectors: torch.Tensor, per_residue: bool, layer: int, tokens: list[str] | None) -> dict[str, Any]:
    """The JSON answer of an embedding: mean-pooled vector, and per-token vectors when asked for."""
    result: dict[str, Any] = {
        "layer": layer,
        "dim": int(vectors.shape[1]),
        "num_tokens": int(vectors.shape[0]),
        "mean": vectors.mean(dim=0).tolist(),
    }
    if per_residue:
        result["per_residue"] = vectors.tolist()
    if tokens is not None:
        result["tokens"] = tokens
    return result


def pll_result(scores: torch.Tensor, per_residue: bool) -> dict[str, Any]:
    """The JSON answer of a PLL: mean (AntiBERTy's definition), sum and perplexity."""
    mean = float(scores.mean())
    result: dict[str, Any] = {
        "pseudo_log_likelihood": mean,
        "pseudo_log_likelihood_sum": float(scores.sum()),
        "pseudo_perplexity": float(torch.exp(-scores.mean())),
        "num_tokens": int(scores.numel()),
    }
    if per_residue:
        result["per_residue"] = scores.tolist()
    return result


def set_torch_threads(threads: int) -> None:
    """Cap torch's intra-op threads (0 keeps torch's choice): workers share small machines."""
    if threads > 0:
        torch.set_num_threads(threads)
