"""Units a person reads affinities in; torch-free, so FlashDock and the CLI share one formatter."""

from __future__ import annotations


def kd_from_pk(pk: float) -> str:
    """The dissociation constant a pK corresponds to, in the unit a chemist would say it in."""
    kd = 10.0 ** (-pk)
    for unit, scale in (("M", 1.0), ("mM", 1e-3), ("µM", 1e-6), ("nM", 1e-9), ("pM", 1e-12)):
        if kd >= scale:
            return f"{kd / scale:.3g} {unit}"
    return f"{kd / 1e-15:.3g} fM"
