"""The search box: from a reference ligand (+ padding), from listed residues, from a centre and
size, or from a detected pocket. Every box is checked against the side cap.

Pocket detection uses pyKVFinder (a grid cavity detector with a compiled core; works offline).
Its wheel pins matplotlib < 3.11 for plotting we never use, so it is installed without its
dependencies; when it is absent, :func:`detect_pockets` says so and a request must give a box.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from docking.errors import INVALID_REQUEST, INVALID_STRUCTURE, DockingError
from docking.receptor import PdbAtom, coordinates

log = logging.getLogger(__name__)

MIN_SIDE = 8.0  # Å: a smaller box cannot hold a drug-sized ligand turning
RESIDUE_RE = re.compile(r"^([A-Za-z0-9]?):?(-?\d+[A-Za-z]?)$")


@dataclass(frozen=True)
class Box:
    center: tuple[float, float, float]
    size: tuple[float, float, float]

    def as_dict(self) -> dict[str, list[float]]:
        return {"center": [round(c, 3) for c in self.center], "size": [round(s, 3) for s in self.size]}

    def contains(self, xyz: np.ndarray, tolerance: float = 0.0) -> bool:
        """Whether every point lies inside the box (± ``tolerance`` Å)."""
        half = np.asarray(self.size) / 2 + tolerance
        return bool(np.all(np.abs(np.asarray(xyz) - np.asarray(self.center)) <= half))


def around(points: np.ndarray, padding: float) -> Box:
    """The axis-aligned box around ``points`` grown by ``padding`` Å on every side (at least MIN_SIDE)."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    center = (lo + hi) / 2
    size = np.maximum(hi - lo + 2 * padding, MIN_SIDE)
    return Box(tuple(float(c) for c in center), tuple(float(s) for s in size))  # type: ignore[arg-type]


def check(box: Box, max_side: float) -> Box:
    """INVALID_REQUEST for a box past the side cap, too small, or not finite."""
    values = np.array([*box.center, *box.size], dtype=float)
    if not np.all(np.isfinite(values)):
        raise DockingError(INVALID_REQUEST, "box centre and size must be finite numbers")
    if max(box.size) > max_side:
        raise DockingError(
            INVALID_REQUEST, f"box side {max(box.size):.1f} Å exceeds the cap of {max_side:.0f} Å per side"
        )
    if min(box.size) < 1.0:
        raise DockingError(INVALID_REQUEST, "every box side must be at least 1 Å")
    return box


def _triple(value: Any, what: str) -> tuple[float, float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise DockingError(INVALID_REQUEST, f"box {what} must be a list of three numbers")
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise DockingError(INVALID_REQUEST, f"box {what} must be a list of three numbers") from None
    return out  # type: ignore[return-value]


def _padding(spec: dict[str, Any]) -> float:
    try:
        padding = float(spec.get("padding", 4.0))
    except (TypeError, ValueError):
        raise DockingError(INVALID_REQUEST, "box padding must be a number of Å") from None
    if not 0 <= padding <= 20:
        raise DockingError(INVALID_REQUEST, "box padding must be between 0 and 20 Å")
    return padding


def from_residues(atoms: list[PdbAtom], residues: list[Any], padding: float) -> Box:
    """The box around the atoms of residues named ``A:123`` (chain optional: ``123`` matches any chain)."""
    if not isinstance(residues, list) or not residues or len(residues) > 500:
        raise DockingError(INVALID_REQUEST, "box residues must be a list of 1-500 names like 'A:123'")
    picked = []
    for name in residues:
        match = RESIDUE_RE.match(str(name).strip())
        if match is None:
            raise DockingError(INVALID_REQUEST, f"residue {name!r} is not of the form 'A:123' or '123'")
        chain, number = match.groups()
        found = [a for a in atoms if a.resseq == number and (not chain or a.chain == chain) and not a.het]
        if not found:
            raise DockingError(INVALID_REQUEST, f"residue {name} is not in the protein")
        picked += found
    return around(coordinates(picked), padding)


def from_spec(spec: Any, atoms: list[PdbAtom], reference: np.ndarray | None) -> Box:
    """The box a request describes; ``reference`` holds the parsed reference ligand's coordinates."""
    if not isinstance(spec, dict):
        raise DockingError(INVALID_REQUEST, "box must be an object")
    if "center" in spec or "size" in spec:
        return Box(_triple(spec.get("center"), "center"), _triple(spec.get("size"), "size"))
    if reference is not None:
        return around(reference, _padding(spec))
    if "residues" in spec:
        return from_residues(atoms, spec["residues"], _padding(spec))
    raise DockingError(INVALID_REQUEST, "box needs reference_ligand_sdf, residues, or center and size")


# -- pocket detection ------------------------------------------------------------------------


def detection_available() -> bool:
    try:
        import pyKVFinder  # noqa: F401
    except ImportError:
        return False
    return True


def require_detection() -> None:
    """INVALID_REQUEST saying so when this worker cannot detect pockets (a box is then required)."""
    if not detection_available():
        raise DockingError(
            INVALID_REQUEST,
            "no box given and pocket detection is not available on this worker (pyKVFinder is not installed): "
            "give reference_ligand_sdf, residues, or center and size",
        )


def detect_pockets(pdb_path: Path, *, limit: int = 5, padding: float = 2.0, step: float = 0.6) -> list[dict[str, Any]]:
    """The largest cavities pyKVFinder finds, each ``{id, volume, center, size}``, largest first.

    The box of a pocket is its cavity points' extent plus ``padding``; callers cap it.
    """
    require_detection()
    import pyKVFinder

    atomic = pyKVFinder.read_pdb(str(pdb_path))
    if len(atomic) == 0:
        raise DockingError(INVALID_STRUCTURE, "no atom to search for pockets")
    vertices = pyKVFinder.get_vertices(atomic, step=step)
    count, cavities = pyKVFinder.detect(atomic, vertices, step=step, nthreads=1)
    if count == 0:
        return []
    _, volumes, _ = pyKVFinder.spatial(cavities, step=step, nthreads=1)
    origin = np.asarray(vertices[0], dtype=float)
    pockets = []
    for label, volume in sorted(volumes.items(), key=lambda kv: -kv[1])[:limit]:
        index = _label_index(label)
        points = origin + np.argwhere(cavities == index + 2) * step  # grid 0/1 are protein and bulk
        box = around(points, padding)
        pockets.append({"id": label, "volume": float(volume), **box.as_dict()})
    return pockets


def _label_index(label: str) -> int:
    """pyKVFinder names cavities KAA, KAB, ...: base-26 after the K."""
    letters = label[1:]
    return (ord(letters[0]) - ord("A")) * 26 + (ord(letters[1]) - ord("A"))
