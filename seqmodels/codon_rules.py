"""Codon design rules shared by optimisation and verification, so both read one set of options the same way.

Options (all optional): ``host`` (a python-codon-tables organism: ``e_coli``, ``h_sapiens``,
``s_cerevisiae``, ``b_subtilis``, ``m_musculus``, ``g_gallus``, ``d_melanogaster``, ``c_elegans``),
``gc_min``/``gc_max`` (0.3/0.7) over every ``gc_window`` (50 nt) window, ``avoid_sites`` (enzyme
names, e.g. ``["EcoRI", "BsaI"]``), ``max_homopolymer`` (6: longest run of one base allowed),
``unique_kmers`` (0 = off; else no repeated k-mer of that length, reverse complements included).
DNA Chisel turns them into constraints (:func:`constraints`) and evaluates the same constraints
on any sequence (:func:`evaluate`); Biopython supplies CAI, translation and restriction sites.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dnachisel as dc
import python_codon_tables as pct
from Bio.Restriction import AllEnzymes
from Bio.Seq import Seq
from Bio.SeqUtils import CodonAdaptationIndex, gc_fraction

from seqmodels.sequences import opt_float, opt_int, opt_str_list
from services.common.envelope import ApiError, ErrorCode

# Short names (e_coli) and full names (e_coli_316407) of the tables shipped in the wheel. Never a
# taxid: python-codon-tables would fetch that one from the internet.
HOSTS: dict[str, str] = {
    **{"_".join(name.split("_")[:2]): name for name in pct.available_codon_tables_names},
    **{name: name for name in pct.available_codon_tables_names},
}
ENZYMES = frozenset(str(enzyme) for enzyme in AllEnzymes)  # REBASE names Biopython knows (EcoRI, BsaI...)
_W_FLOOR = 0.01  # relative adaptiveness of a codon the table never saw (keeps log() finite)


@dataclass(frozen=True)
class DesignRules:
    """Validated design options."""

    host: str
    gc_min: float
    gc_max: float
    gc_window: int
    avoid_sites: tuple[str, ...]
    max_homopolymer: int
    unique_kmers: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "gc_min": self.gc_min,
            "gc_max": self.gc_max,
            "gc_window": self.gc_window,
            "avoid_sites": list(self.avoid_sites),
            "max_homopolymer": self.max_homopolymer,
            "unique_kmers": self.unique_kmers,
        }


def parse_rules(options: Mapping[str, Any], default_host: str) -> DesignRules:
    """The design options of a request, or INVALID_REQUEST naming the bad one."""
    host = options.get("host", default_host)
    if host not in HOSTS:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"option 'host' must be one of {', '.join(sorted(HOSTS))}")
    gc_min = opt_float(options, "gc_min", 0.3, 0.0, 1.0)
    gc_max = opt_float(options, "gc_max", 0.7, 0.0, 1.0)
    if gc_min > gc_max:
        raise ApiError(ErrorCode.INVALID_REQUEST, "option 'gc_min' must not exceed 'gc_max'")
    sites = opt_str_list(options, "avoid_sites")
    unknown = [s for s in sites if s not in ENZYMES]
    if unknown:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"unknown restriction enzyme(s): {', '.join(unknown)}")
    return DesignRules(
        host=HOSTS[host],
        gc_min=gc_min,
        gc_max=gc_max,
        gc_window=opt_int(options, "gc_window", 50, 10, 10_000),
        avoid_sites=tuple(sites),
        max_homopolymer=opt_int(options, "max_homopolymer", 6, 2, 100),
        unique_kmers=opt_int(options, "unique_kmers", 0, 0, 100),
    )


def constraints(rules: DesignRules) -> list[dc.Specification]:
    """The DNA Chisel constraints equivalent to ``rules`` (translation is added by the optimiser)."""
    specs: list[dc.Specification] = [
        dc.EnforceGCContent(mini=rules.gc_min, maxi=rules.gc_max, window=rules.gc_window),
    ]
    specs += [dc.AvoidPattern(f"{site}_site") for site in rules.avoid_sites]
    specs += [dc.AvoidPattern(f"{rules.max_homopolymer + 1}x{base}") for base in "ACGT"]
    if rules.unique_kmers:
        specs.append(dc.UniquifyAllKmers(rules.unique_kmers))
    return specs


def evaluate(sequence: str, rules: DesignRules) -> list[dict[str, Any]]:
    """Every constraint of ``rules`` evaluated on ``sequence``: name, passed, and where it fails."""
    return _evaluate(sequence, constraints(rules))


def repeats(sequence: str, k: int) -> dict[str, Any]:
    """Whether every k-mer (either strand) occurs once, and where repeats are (DNA Chisel's UniquifyAllKmers)."""
    (ev,) = _evaluate(sequence, [dc.UniquifyAllKmers(k)])
    return {"k": k, "unique": ev["passed"], "locations": ev["failures"]}


def _evaluate(sequence: str, specs: list[dc.Specification]) -> list[dict[str, Any]]:
    problem = dc.DnaOptimizationProblem(sequence=sequence, constraints=specs, logger=None)
    return [
        {
            "constraint": str(ev.specification.label(use_short_form=True)),
            "passed": bool(ev.passes),
            "failures": [[int(loc.start), int(loc.end)] for loc in (ev.locations or [])][:20],
        }
        for ev in problem.constraints_evaluations()
    ]


def codon_weights(host: str) -> dict[str, float]:
    """Relative adaptiveness (Sharp & Li 1987) of each codon: its frequency over its best synonym's."""
    table = pct.get_codons_table(host)
    weights: dict[str, float] = {}
    for codons in table.values():
        best = max(codons.values())
        for codon, freq in codons.items():
            weights[codon.replace("U", "T")] = max(freq / best, _W_FLOOR) if best > 0 else 1.0
    return weights


def cai(sequence: str, host: str) -> float:
    """The codon adaptation index of a coding sequence for ``host`` (Biopython's computation)."""
    index = CodonAdaptationIndex([])
    index.update(codon_weights(host))
    value = index.calculate(sequence)
    return round(value, 6) if math.isfinite(value) else 0.0


def gc_windows(sequence: str, window: int) -> dict[str, float | int]:
    """GC fraction overall and the extremes over every window (the whole sequence when shorter)."""
    window = min(window, len(sequence))
    fractions = [gc_fraction(sequence[i : i + window]) for i in range(len(sequence) - window + 1)]
    return {
        "gc_content": round(gc_fraction(sequence), 6),
        "window": window,
        "min": round(min(fractions), 6),
        "max": round(max(fractions), 6),
    }


def restriction_sites(sequence: str, enzymes: tuple[str, ...]) -> list[dict[str, Any]]:
    """Where each enzyme cuts (1-based cut positions, both strands), as Biopython's Restriction finds them."""
    found = []
    for name in enzymes:
        enzyme = AllEnzymes.get(name)
        positions = enzyme.search(Seq(sequence))
        if positions:
            found.append({"enzyme": name, "site": str(enzyme.site), "positions": sorted(positions)})
    return found


def homopolymers(sequence: str, max_run: int) -> list[dict[str, Any]]:
    """Runs of one base longer than ``max_run`` (1-based start)."""
    return [
        {"base": m.group(0)[0], "start": m.start() + 1, "length": len(m.group(0))}
        for m in re.finditer(r"(A+|C+|G+|T+)", sequence)
        if len(m.group(0)) > max_run
    ]
