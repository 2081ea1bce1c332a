"""The codon worker: optimise a protein's coding sequence for a host, and verify any coding sequence.

DNA Chisel does the design (constraints and objectives), python-codon-tables supplies the
host's codon usage (tables shipped in the wheel: nothing is fetched), Biopython translates,
scores CAI and finds restriction sites. Capabilities ``codon-optimization`` and
``codon-verification``; task types ``optimize`` (input: protein) and ``verify`` (input: DNA),
one of which every request must name (``ACGT`` is a valid protein too).
The design options are those of :mod:`seqmodels.codon_rules`; ``optimize`` adds ``method``
(``use_best_codon`` maximises CAI, ``match_codon_usage`` follows the host's usage), ``seed``
and ``add_stop``; ``verify`` adds ``protein`` (the expected translation).

Optimising is CPU-bound Python with no forward pass to share, so this kind runs each request
inline instead of through the micro-batcher.

    python -m seqmodels.codon --port 0 --registry http://127.0.0.1:8500
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import click
import dnachisel as dc
import numpy as np
import python_codon_tables as pct
from Bio.Seq import Seq

from seqmodels import codon_rules as rules_mod
from seqmodels.cli import run_sequence_worker, seq_settings
from seqmodels.sequences import (
    CODING_DNA,
    PROTEIN_WITH_STOP,
    Alphabet,
    SeqRequest,
    clean_sequence,
    opt_bool,
    opt_choice,
    opt_int,
)
from seqmodels.settings import SeqSettings
from seqmodels.worker import Result, SequenceModel
from services.common.cli import options
from services.common.envelope import ApiError, ErrorCode
from services.common.settings import WorkerSettings

log = logging.getLogger(__name__)

OPTIMIZE = "optimize"
VERIFY = "verify"
METHODS = ("use_best_codon", "match_codon_usage")
REPEAT_REPORT_K = 12  # k-mer length of the repeat report when no 'unique_kmers' constraint was given
# DNA Chisel draws from numpy's global generator: one optimisation at a time keeps a seed meaningful.
_NUMPY_RNG = threading.Lock()


class CodonModel(SequenceModel):
    """DNA Chisel behind the sequence-worker API."""

    service_name = "codon"
    version = dc.__version__
    tasks = (OPTIMIZE, VERIFY)
    task_aliases = {"codon-optimization": OPTIMIZE, "codon-verification": VERIFY}  # noqa: RUF012
    batched = False
    has_default_task = False  # a protein and a DNA sequence can look alike: never guess the task

    def __init__(self, settings: SeqSettings | None = None) -> None:
        super().__init__(settings)
        self.capabilities = ["codon-optimization", "codon-verification"]
        self.models = [f"dnachisel-{dc.__version__}"]
        self.default_host = self.settings.codon_host

    def alphabet(self, task_type: str) -> Alphabet:
        return PROTEIN_WITH_STOP if task_type == OPTIMIZE else CODING_DNA

    def max_length(self, task_type: str) -> int:
        # A protein of n residues becomes 3n + 3 nucleotides; keep the DNA within the limit too.
        return self.settings.max_length // 3 - 1 if task_type == OPTIMIZE else self.settings.max_length

    def load_model(self) -> None:
        pct.get_codons_table(rules_mod.HOSTS[self.default_host])  # fail at start-up on a bad default host

    def info(self) -> dict[str, Any]:
        info = super().info()
        info["hosts"] = sorted(rules_mod.HOSTS)
        info["methods"] = list(METHODS)
        return info

    def prepare(self, request: SeqRequest) -> SeqRequest:
        options = request.options
        rules = rules_mod.parse_rules(options, self.default_host)
        parsed: dict[str, Any] = {"rules": rules}
        if request.task_type == OPTIMIZE:
            if "*" in request.sequence[:-1]:
                raise ApiError(ErrorCode.INVALID_SEQUENCE, "a stop ('*') may only end the protein")
            parsed["method"] = opt_choice(options, "method", METHODS[0], METHODS)
            parsed["seed"] = opt_int(options, "seed", 0, 0, 2**32 - 1)
            parsed["add_stop"] = opt_bool(options, "add_stop", True)
        else:
            expected = options.get("protein")
            if expected is not None:
                expected = clean_sequence(expected, PROTEIN_WITH_STOP, self.settings.max_length, what="protein")
            parsed["protein"] = expected.rstrip("*") if expected else None
        return replace(request, options=parsed)

    def run(self, requests: Sequence[SeqRequest]) -> Sequence[Result | Exception]:
        results: list[Result | Exception] = []
        for request in requests:
            try:
                if request.task_type == OPTIMIZE:
                    results.append(optimize(request.sequence, **request.options))
                else:
                    results.append(verify(request.sequence, **request.options))
            except ApiError as err:
                results.append(err)
        return results


def optimize(protein: str, *, rules: rules_mod.DesignRules, method: str, seed: int, add_stop: bool) -> Result:
    """A coding sequence for ``protein`` meeting ``rules``, codon-optimised for the host."""
    protein = protein.rstrip("*")
    table = pct.get_codons_table(rules.host)
    dna = dc.reverse_translate(protein)
    if add_stop:
        dna += max(table["*"], key=table["*"].get)
    cds = (0, len(dna))
    problem = dc.DnaOptimizationProblem(
        sequence=dna,
        constraints=[dc.EnforceTranslation(location=cds), *rules_mod.constraints(rules)],
        objectives=[dc.CodonOptimize(method=method, codon_usage_table=table, location=cds)],
        logger=None,
    )
    with _NUMPY_RNG:
        np.random.seed(seed)
        try:
            problem.resolve_constraints()
        except dc.NoSolutionError as exc:
            raise ApiError(
                ErrorCode.INVALID_REQUEST, f"no coding sequence meets the constraints: {str(exc)[:300]}"
            ) from None
        problem.optimize()
    dna = problem.sequence
    return {
        "sequence": dna,
        "protein": protein,
        "host": rules.host,
        "method": method,
        "seed": seed,
        "cai": rules_mod.cai(dna, rules.host),
        "gc": rules_mod.gc_windows(dna, rules.gc_window),
        "constraints": rules_mod.evaluate(dna, rules),
        "rules": rules.as_dict(),
    }


def verify(dna: str, *, rules: rules_mod.DesignRules, protein: str | None) -> Result:
    """Every check of a coding sequence; ``valid`` when the frame, translation and all constraints hold."""
    in_frame = len(dna) % 3 == 0
    translation = str(Seq(dna[: len(dna) - len(dna) % 3]).translate())
    body = translation[:-1] if translation.endswith("*") else translation
    checks = {
        "in_frame": in_frame,
        "no_internal_stop": "*" not in body,
        "translation_matches": protein is None or body == protein,
    }
    evaluations = rules_mod.evaluate(dna, rules)
    return {
        "valid": all(checks.values()) and all(e["passed"] for e in evaluations),
        "checks": checks,
        "constraints": evaluations,
        "translation": body,
        "expected_protein": protein,
        "starts_with_atg": dna.startswith("ATG"),
        "ends_with_stop": translation.endswith("*"),
        "host": rules.host,
        "cai": rules_mod.cai(dna[: len(dna) - len(dna) % 3], rules.host),
        "gc": rules_mod.gc_windows(dna, rules.gc_window),
        "restriction_sites": rules_mod.restriction_sites(dna, rules.avoid_sites),
        "homopolymers": rules_mod.homopolymers(dna, rules.max_homopolymer),
        "repeats": rules_mod.repeats(dna, rules.unique_kmers or REPEAT_REPORT_K),
        "rules": rules.as_dict(),
    }


CODON_OPTIONS = options(SeqSettings, only=("codon_host",), codon_host={"type": click.Choice(sorted(rules_mod.HOSTS))})


def make_codon_model(args: SimpleNamespace, _settings: WorkerSettings) -> CodonModel:
    return CodonModel(seq_settings(args))


def main(argv: list[str] | None = None) -> int:
    return run_sequence_worker(
        make_codon_model,
        prog="python -m seqmodels.codon",
        description="Codon worker: optimise a protein's coding sequence for a host (DNA Chisel) and verify any CDS.",
        options=CODON_OPTIONS,
        argv=argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
