"""The SpliceAI worker: per-position acceptor and donor probabilities of a DNA sequence.

The five SpliceAI-10k models of the ``spliceai==1.3.1`` wheel (installed without TensorFlow;
their Keras .h5 weights are read with h5py into :mod:`seqmodels.splice_net`) run as one fused
ensemble; answers are the ensemble mean, as SpliceAI's own scorer computes them. Capability
``splice-site``, task type ``splice``.

Body: ``{"sequence": "ACGT...", "options": {"upstream": "...", "downstream": "...",
"strand": "+", "threshold": 0.5, "scores": true}}``. The model reads 5,000 nucleotides on each
side of every position; ``upstream``/``downstream`` supply that flanking context (the 5,000
nearest to the sequence are used) and whatever is missing is padded with N, as SpliceAI does
at the ends of a chromosome. ``strand: "-"`` scores the reverse complement (a gene on the minus
strand) and reports positions on the sequence as given. Positions are 1-based: an acceptor is
scored at the first nucleotide of the exon, a donor at the last.

    python -m seqmodels.splice --port 0 --registry http://127.0.0.1:8500
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from seqmodels.cli import run_sequence_worker, seq_settings
from seqmodels.sequences import DNA, Alphabet, SeqRequest, clean_sequence, opt_bool, opt_choice, opt_float
from seqmodels.settings import SeqSettings
from seqmodels.worker import Result, SequenceModel
from services.common.envelope import ApiError, ErrorCode
from services.common.settings import WorkerSettings

log = logging.getLogger(__name__)

SPLICEAI_VERSION = "1.3.1"
FLANK = 5_000  # nucleotides of context the model reads on each side
_COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


def spliceai_model_files() -> list[Path]:
    """The five .h5 files inside the installed spliceai wheel (found without importing it: it needs TensorFlow)."""
    spec = importlib.util.find_spec("spliceai")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the spliceai wheel is not installed (pip install --no-deps spliceai==1.3.1)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    files = [folder / f"spliceai{i}.h5" for i in range(1, 6)]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}")
    return files


def reverse_complement(seq: str) -> str:
    return seq.translate(_COMPLEMENT)[::-1]


class SpliceModel(SequenceModel):
    """SpliceAI behind the sequence-worker API."""

    service_name = "splice"
    version = SPLICEAI_VERSION
    tasks = ("splice",)
    task_aliases = {"splice-site": "splice"}  # noqa: RUF012

    def __init__(self, settings: SeqSettings | None = None, *, device: str = "cpu") -> None:
        super().__init__(settings)
        self.capabilities = ["splice-site"]
        self.models = [f"spliceai-{SPLICEAI_VERSION}-ensemble5"]
        self.device = device
        self.net: Any = None

    def alphabet(self, task_type: str) -> Alphabet:
        return DNA

    def load_model(self) -> None:
        from seqmodels.lm import set_torch_threads
        from seqmodels.splice_net import load_keras_h5

        set_torch_threads(self.settings.torch_threads)
        files = spliceai_model_files()
        self.net = load_keras_h5(files).to(self.device)
        log.info("SpliceAI ensemble of %d loaded from %s on %s", len(files), files[0].parent, self.device)

    def prepare(self, request: SeqRequest) -> SeqRequest:
        options = request.options
        flanks = {}
        for side in ("upstream", "downstream"):
            value = options.get(side, "")
            flanks[side] = "" if value == "" else clean_sequence(value, DNA, 4 * FLANK, what=side)
        # Only the nearest FLANK nucleotides reach any output; the rest would be computed for nothing.
        normalised = {
            "upstream": flanks["upstream"][-FLANK:],
            "downstream": flanks["downstream"][:FLANK],
            "strand": opt_choice(options, "strand", "+", ("+", "-")),
            "threshold": opt_float(options, "threshold", 0.5, 0.0, 1.0),
            "scores": opt_bool(options, "scores", True),
        }
        return replace(request, options=normalised)

    def run(self, requests: Sequence[SeqRequest]) -> Sequence[Result | Exception]:
        import torch

        from seqmodels.splice_net import one_hot

        if self.net is None:
            raise ApiError(ErrorCode.MODEL_NOT_LOADED, "SpliceAI is not loaded yet", retry_after=5)
        windows = [_window(r) for r in requests]
        width = max(len(w) for w in windows)
        # Right-padding with N is exact: no output reads more than FLANK positions past its own.
        batch = torch.stack([one_hot(w + "N" * (width - len(w))) for w in windows]).to(self.device)
        with torch.inference_mode():
            probs = self.net(batch).float().cpu()  # [B, 3, width - 2·FLANK]
        return [_answer(r, probs[i, :, : len(r.sequence)]) for i, r in enumerate(requests)]

    def limits(self) -> dict[str, Any]:
        return {**super().limits(), "flank_context": FLANK}


def _window(request: SeqRequest) -> str:
    """The sequence with its flanking context, N-padded to FLANK each side, on the strand to score."""
    o = request.options
    window = "N" * (FLANK - len(o["upstream"])) + o["upstream"] + request.sequence
    window += o["downstream"] + "N" * (FLANK - len(o["downstream"]))
    return reverse_complement(window) if o["strand"] == "-" else window


def _answer(request: SeqRequest, probs: Any) -> Result:
    acceptor, donor = probs[1], probs[2]
    if request.options["strand"] == "-":  # back to the coordinates of the sequence as given
        acceptor, donor = acceptor.flip(0), donor.flip(0)
    threshold = request.options["threshold"]
    sites = [
        {"position": int(i) + 1, "type": kind, "probability": round(float(track[i]), 6)}
        for kind, track in (("acceptor", acceptor), ("donor", donor))
        for i in (track >= threshold).nonzero().flatten().tolist()
    ]
    sites.sort(key=lambda s: (s["position"], s["type"]))
    result: Result = {
        "strand": request.options["strand"],
        "threshold": threshold,
        "sites": sites,
        "max_acceptor": _peak(acceptor),
        "max_donor": _peak(donor),
        "context": {"upstream": len(request.options["upstream"]), "downstream": len(request.options["downstream"])},
    }
    if request.options["scores"]:
        result["acceptor"] = [round(v, 6) for v in acceptor.tolist()]
        result["donor"] = [round(v, 6) for v in donor.tolist()]
    return result


def _peak(track: Any) -> dict[str, float | int]:
    i = int(track.argmax())
    return {"position": i + 1, "probability": round(float(track[i]), 6)}


def make_splice_model(args: SimpleNamespace, _settings: WorkerSettings) -> SpliceModel:
    return SpliceModel(seq_settings(args), device=args.device)


def main(argv: list[str] | None = None) -> int:
    return run_sequence_worker(
        make_splice_model,
        prog="python -m seqmodels.splice",
        description="SpliceAI worker: per-position acceptor and donor probabilities (ensemble of 5).",
        argv=argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
