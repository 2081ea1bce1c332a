"""Small real slices of the trastuzumab CDR-H3 DMS (Mason et al. 2021) for tests."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.support import shared_data
from tests.unit.seqmodels.fixtures import TRASTUZUMAB_VH

__all__ = ["IMPORT_ARGS", "TRASTUZUMAB_VH", "dms_slice"]

IMPORT_ARGS = [
    "--template",
    "tz",
    "--mutant-column",
    "AASeq",
    "--window-start",
    "99",
    "--label-column",
    "AgClass",
    "--reads-column",
    "Count",
    "--nucleotide-column",
    "NucSeq",
    "--assay",
    "her2",
]


def dms_slice(folder: Path, per_class: int) -> Path:
    """A CSV with the first ``per_class`` binders and non-binders of the real DMS (their own columns)."""
    out = folder / f"dms_{per_class}.csv"
    rows: list[dict[str, str]] = []
    header: list[str] = []
    for name in ("mHER_H3_AgPos.csv", "mHER_H3_AgNeg.csv"):
        with shared_data("antibody_dms", name).open() as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            for i, row in enumerate(reader):
                if i >= per_class:
                    break
                rows.append(row)
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return out
