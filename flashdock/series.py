"""A congeneric series: one SDF of many ligands, each with its own name and SD tags, and how to judge a ranking.

The page sends each record as its own ligand file (so the worker never guesses which record), labels
each row with the record's own name, and reads the experimental value from the SD tag the user
picks, converted to pK.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import pandas as pd

MAX_LIGANDS = 500
_TAG = re.compile(r"^>.*<([^>]+)>")
# ΔG (kcal/mol) → pK at 298.15 K: pK = -ΔG / (RT ln 10).
RT_LN10_KCAL = 0.0019872036 * 298.15 * math.log(10)
UNITS = {
    "pK (pKd, pKi, pIC50)": lambda v: v,
    "ΔG (kcal/mol)": lambda v: -v / RT_LN10_KCAL,
    "Kd / Ki / IC50 (nM)": lambda v: 9.0 - math.log10(v) if v > 0 else math.nan,
    "Kd / Ki / IC50 (µM)": lambda v: 6.0 - math.log10(v) if v > 0 else math.nan,
}


@dataclass(frozen=True)
class Ligand:
    """One SDF record: its name (title line, else ``ligand <n>``), the record text and its SD tags."""

    index: int
    name: str
    block: str
    tags: dict[str, str] = field(default_factory=dict)


def split_sdf(text: str, limit: int = MAX_LIGANDS) -> list[Ligand]:
    """The records of an SDF in order; raises ``ValueError`` past ``limit`` records or when none is found."""
    out: list[Ligand] = []
    for raw in text.replace("\r\n", "\n").split("$$$$"):
        block = raw.lstrip("\n")
        if not block.strip():
            continue
        if len(out) >= limit:
            raise ValueError(f"more than {limit} ligands in one file: split the series")
        lines = block.split("\n")
        tags: dict[str, str] = {}
        for i, line in enumerate(lines):
            if (m := _TAG.match(line)) and i + 1 < len(lines):
                tags[m.group(1).strip()] = lines[i + 1].strip()
        title = lines[0].strip()
        out.append(Ligand(len(out), title or f"ligand {len(out) + 1}", block.rstrip("\n") + "\n$$$$\n", tags))
    if not out:
        raise ValueError("no molecule found in this SDF")
    return out


def numeric_tags(ligands: list[Ligand]) -> list[str]:
    """SD tags that hold a number in at least half of the records (candidates for experimental values)."""
    counts: dict[str, int] = {}
    for lig in ligands:
        for tag, value in lig.tags.items():
            try:
                float(value)
            except ValueError:
                continue
            counts[tag] = counts.get(tag, 0) + 1
    return [t for t, n in counts.items() if n * 2 >= len(ligands)]


def guess_unit(tag: str) -> str:
    """The unit a tag's name suggests (dG/ΔG → kcal/mol, nM, µM), else pK."""
    low = tag.lower()
    if "dg" in low or "δg" in low or "kcal" in low:
        return "ΔG (kcal/mol)"
    if "nm" in low:
        return "Kd / Ki / IC50 (nM)"
    if "um" in low or "µm" in low:
        return "Kd / Ki / IC50 (µM)"
    return "pK (pKd, pKi, pIC50)"


def experimental_pk(ligand: Ligand, tag: str, unit: str) -> float | None:
    try:
        value = UNITS[unit](float(ligand.tags[tag]))
    except (KeyError, ValueError):
        return None
    return value if math.isfinite(value) else None


def agreement(frame: pd.DataFrame) -> dict[str, float | int]:
    """Spearman and Pearson of predicted vs experimental pK over rows that have both, and their RMSE."""
    both = frame.dropna(subset=["pK", "experimental pK"])
    n = len(both)
    if n < 3:
        return {"n": n}
    pred, exp = both["pK"].astype(float), both["experimental pK"].astype(float)
    return {
        "n": n,
        "spearman": float(pred.corr(exp, method="spearman")),
        "pearson": float(pred.corr(exp, method="pearson")),
        "rmse": float(((pred - exp) ** 2).mean() ** 0.5),
    }
