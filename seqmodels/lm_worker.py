"""A worker over a masked language model: task types ``embedding`` and ``pseudo_log_likelihood``.

Shared by ``antiberty`` (weights from the antiberty wheel) and ``hf`` (any model directory on
disk); they differ only in how the model is loaded and what it is registered as.

Options: embedding ``{"layer": -1, "per_residue": true, "tokens": false}``; pseudo-log-likelihood
``{"per_residue": false}``. ``layer`` counts hidden-state layers: 0 is the embedding output,
-1 the last transformer layer.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import replace
from typing import Any

import torch

from seqmodels.lm import MaskedLMRunner, embedding_result, pll_result
from seqmodels.sequences import SeqRequest, opt_bool, opt_int
from seqmodels.worker import Result, SequenceModel

EMBEDDING = "embedding"
PLL = "pseudo_log_likelihood"


class MaskedLMWorker(SequenceModel):
    """Embeddings and PLL through a :class:`~seqmodels.lm.MaskedLMRunner` set by :meth:`load_model`."""

    tasks: tuple[str, ...] = (EMBEDDING, PLL)
    runner: MaskedLMRunner | None = None
    cost_aware = True  # a PLL costs one pass per residue: minutes on a CPU at the limits
    # Whether a token is always one letter (AntiBERTy, ESM); if not, answers list the tokens.
    letter_tokens: bool = True

    def _runner(self) -> MaskedLMRunner:
        if self.runner is None:
            raise RuntimeError(f"{self.service_name}: model is not loaded")
        return self.runner

    def prepare(self, request: SeqRequest) -> SeqRequest:
        options = request.options
        if request.task_type == EMBEDDING:
            layers = self._runner().num_layers
            layer = opt_int(options, "layer", -1, -layers, layers - 1)
            normalised = {
                "layer": layer % layers,
                "per_residue": opt_bool(options, "per_residue", True),
                "tokens": opt_bool(options, "tokens", not self.letter_tokens),
            }
        else:
            normalised = {"per_residue": opt_bool(options, "per_residue", False)}
        return replace(request, options=normalised)

    def batch_key(self, request: SeqRequest) -> tuple[Hashable, ...]:
        if request.task_type == EMBEDDING:
            return (EMBEDDING, request.options["layer"])
        return (request.task_type,)

    def cost(self, request: SeqRequest) -> float:
        """Residues × forward passes: L for an embedding, L per masked position for a PLL (L² whole)."""
        length = len(request.sequence)
        if request.task_type == EMBEDDING:
            return float(length)
        start, stop = request.span or (0, length)
        return float(length * (stop - start))

    def pieces(self, request: SeqRequest) -> list[SeqRequest]:
        """A PLL in slices of positions, each about one forward pass (:meth:`pass_residues`)."""
        if request.task_type == EMBEDDING:
            return [request]
        length = len(request.sequence)
        step = max(1, self.pass_residues() // length)
        return [replace(request, span=(at, min(length, at + step))) for at in range(0, length, step)]

    def join(self, request: SeqRequest, parts: list[Any]) -> Result:
        if request.task_type == EMBEDDING:
            return parts[0]
        return pll_result(torch.cat(parts), request.options["per_residue"])

    def run(self, requests: Sequence[SeqRequest]) -> Sequence[Any]:
        runner = self._runner()
        sequences = [r.sequence for r in requests]
        if requests[0].task_type == EMBEDDING:
            layer = int(requests[0].options["layer"])
            enc, vectors = runner.embed(sequences, layer=layer)
            results: list[Result | Exception] = []
            for i, (request, vecs) in enumerate(zip(requests, vectors, strict=True)):
                tokens = runner.tokens(enc.input_ids[i, enc.positions(i)]) if request.options["tokens"] else None
                results.append(embedding_result(vecs, request.options["per_residue"], layer, tokens))
            return results
        # PLL pieces: each a span of one sequence's positions; their scores are joined per request.
        return runner.pseudo_log_likelihood(
            sequences, chunk=self.settings.pll_chunk, spans=[r.span for r in requests], max_tokens=self.pass_residues()
        )

    def model_details(self) -> dict[str, Any]:
        """What ``/model/info`` says about the network itself."""
        if self.runner is None:
            return {}
        return {"hidden_size": self.runner.hidden_size, "hidden_layers": self.runner.num_layers}

    def info(self) -> dict[str, Any]:
        info = super().info()
        info["model"] = self.model_details()
        return info
