"""The AntiBERTy worker: antibody language model embeddings and pseudo-log-likelihood.

Weights and vocabulary ship inside the ``antiberty==0.1.3`` wheel (a BERT with 8 layers, 512
hidden units, 26 M parameters, trained on 558 M antibody sequences; Ruffolo et al. 2021), so the
model loads from disk with no download. Capabilities ``protein-embedding`` and
``antibody-likelihood``; task types ``embedding`` (per residue and mean pooled, 512-d) and
``pseudo_log_likelihood``. Sequences are single chains of at most 510 residues (512 positions
less CLS and SEP).

    python -m seqmodels.antiberty --port 0 --registry http://127.0.0.1:8500
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import TYPE_CHECKING

from seqmodels.cli import run_sequence_worker, seq_settings
from seqmodels.lm_worker import EMBEDDING, PLL, MaskedLMWorker
from seqmodels.sequences import PROTEIN, Alphabet
from seqmodels.settings import SeqSettings
from services.common.settings import WorkerSettings

if TYPE_CHECKING:
    from flask import Blueprint

log = logging.getLogger(__name__)

ANTIBERTY_VERSION = "0.1.3"
# 512 learned positions, two of them taken by [CLS] and [SEP].
MAX_RESIDUES = 510


class AntibertyModel(MaskedLMWorker):
    """AntiBERTy behind the sequence-worker API."""

    service_name = "antiberty"
    version = ANTIBERTY_VERSION
    task_aliases = {"protein-embedding": EMBEDDING, "antibody-likelihood": PLL}  # noqa: RUF012

    def __init__(self, settings: SeqSettings | None = None, *, device: str = "cpu") -> None:
        super().__init__(settings)
        self.capabilities = ["protein-embedding", "antibody-likelihood"]
        self.models = [f"antiberty-{ANTIBERTY_VERSION}"]
        self.device = device

    def alphabet(self, task_type: str) -> Alphabet:
        return PROTEIN

    def max_length(self, task_type: str) -> int:
        return min(MAX_RESIDUES, self.settings.max_length)

    def blueprint(self) -> Blueprint:
        """``/api/v1/antiberty/score`` and ``/api/v1/antiberty/infill`` (seqmodels.antiberty_infill)."""
        from seqmodels.antiberty_infill import build_blueprint

        return build_blueprint(self)

    def load_model(self) -> None:
        """The wheel's checkpoint and vocabulary, as ``AntiBERTyRunner`` loads them, on our device."""
        import transformers
        from antiberty import AntiBERTy
        from antiberty.AntiBERTyRunner import CHECKPOINT_PATH, VOCAB_FILE

        from seqmodels.lm import MaskedLMRunner, set_torch_threads

        set_torch_threads(self.settings.torch_threads)
        model = AntiBERTy.from_pretrained(CHECKPOINT_PATH, local_files_only=True)
        tokenizer = transformers.BertTokenizer(vocab_file=VOCAB_FILE, do_lower_case=False)
        self.runner = MaskedLMRunner(
            model, tokenizer, device=self.device, space_separated=True, logits_field="prediction_logits"
        )
        log.info("AntiBERTy %s loaded from %s on %s", ANTIBERTY_VERSION, CHECKPOINT_PATH, self.device)


def make_antiberty_model(args: SimpleNamespace, _settings: WorkerSettings) -> AntibertyModel:
    return AntibertyModel(seq_settings(args), device=args.device)


def main(argv: list[str] | None = None) -> int:
    return run_sequence_worker(
        make_antiberty_model,
        prog="python -m seqmodels.antiberty",
        description="AntiBERTy worker: antibody embeddings and pseudo-log-likelihood.",
        argv=argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
