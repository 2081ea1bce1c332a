"""Affinity for every pose: COMPASS through the Router, falling back to compass-lite.

One ``/predict/batch`` call per ligand scores all its poses. The protein sent is the part of it
near the poses (whole residues within ``crop_radius`` Å), which COMPASS would crop to anyway
(its pocket radius is smaller), so a whole-protein upload is not repeated once per pose. When
no affinity service answers, the poses keep their Vina scores and say ``scored_by: null`` with
the reason: docking still succeeded.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from docking.settings import DockSettings
from services.client.errors import ClientError

if TYPE_CHECKING:
    from services.client.router import Router

log = logging.getLogger(__name__)


def crop_protein(pdb_text: str, points: np.ndarray, radius: float) -> str:
    """The ATOM records of residues with an atom within ``radius`` Å of any point (plus END)."""
    lines = [ln for ln in pdb_text.splitlines() if ln.startswith("ATOM  ")]
    if not lines or len(points) == 0:
        return pdb_text
    xyz = np.array([[float(ln[30:38]), float(ln[38:46]), float(ln[46:54])] for ln in lines])
    keys = [(ln[21], ln[22:27]) for ln in lines]
    near = np.zeros(len(lines), dtype=bool)
    for chunk in np.array_split(points, max(1, len(points) // 64)):
        d2 = ((xyz[:, None, :] - chunk[None, :, :]) ** 2).sum(-1)
        near |= (d2 <= radius * radius).any(axis=1)
    wanted = {keys[i] for i in np.flatnonzero(near)}
    kept = [ln for ln, key in zip(lines, keys, strict=True) if key in wanted]
    return "\n".join(kept) + "\nEND\n"


def unscored(poses: list[dict[str, Any]], reason: str | None) -> dict[str, Any]:
    for pose in poses:
        pose.update(pK=None, interval=None, scored_by=None)
    return {"scored_by": None, "scoring_error": reason}


def score_poses(
    router: Router | None,
    protein_pdb: str,
    poses: list[dict[str, Any]],
    settings: DockSettings,
    pose_points: np.ndarray,
) -> dict[str, Any]:
    """Fill ``pK``, ``interval``, ``scored_by`` (and ``model_version``) into each pose; a summary back."""
    if router is None:
        return unscored(poses, "no registry: this worker runs standalone, so no affinity service can be reached")
    if not poses:
        return {"scored_by": None, "scoring_error": None}
    atoms_pdb = crop_protein(protein_pdb, pose_points, settings.crop_radius)
    items = [{"protein_pdb": atoms_pdb, "ligand_sdf": p["sdf"]} for p in poses]
    try:
        result = router.call(
            settings.score_service,
            "POST",
            "/predict/batch",
            json={"items": items},
            fallbacks=settings.score_fallbacks,
            deadline=settings.score_deadline_s,
            idempotent=True,
        )
    except ClientError as exc:
        log.warning("poses not scored: %s", exc)
        return unscored(poses, f"no affinity service answered: {exc}"[:300])
    entries = result.data.get("results", []) if isinstance(result.data, dict) else []
    errors = []
    for pose, entry in zip(poses, entries, strict=False):
        data = entry.get("data") or {}
        if entry.get("success") and data.get("pK") is not None:
            pose.update(
                pK=round(float(data["pK"]), 3),
                interval=data.get("interval"),
                scored_by=result.service,
                model_version=data.get("model_version"),
            )
        else:
            pose.update(pK=None, interval=None, scored_by=None)
            errors.append((entry.get("error") or {}).get("details", "no answer"))
    return {
        "scored_by": result.service,
        "scoring_error": errors[0] if errors else None,
        "fallback_used": result.fallback_used,
    }


def pose_points(poses: list[dict[str, Any]]) -> np.ndarray:
    """Every atom of every pose (from their SDF blocks), for cropping the protein."""
    from docking.ligand import sdf_records

    points = [m.GetConformer().GetPositions() for p in poses for m in sdf_records(p["sdf"]) if m is not None]
    return np.vstack(points) if points else np.zeros((0, 3))
