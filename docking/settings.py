"""Settings of the dock worker and the docking tools (``DOCK_*``), each with its flag and help.

The caps here are the input limits listed in ``/model/info``: a request past one gets a 400 that
names the cap, never a Vina run that takes an hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from services.common.cli import setting

REPO_ROOT = Path(__file__).resolve().parents[1]
_AT_LEAST_1 = click.IntRange(min=1)
_POSITIVE = click.FloatRange(min=0.1)


@dataclass
class DockSettings:
    """What a dock worker keeps (receptor cache, job records) and accepts."""

    state_dir: Path = setting(
        REPO_ROOT / ".data" / "dock-service",
        "job records, job folders and the prepared-receptor cache",
        env="DOCK_STATE_DIR",
        type=click.Path(path_type=Path),
    )
    api_token: str = setting(
        "", "token for mutating job calls (empty: the registry token)", env="DOCK_TOKEN", show_default=False
    )
    processes: int = setting(
        1, "docking processes per worker (/dock calls run in them)", env="DOCK_PROCESSES", type=_AT_LEAST_1
    )
    vina_cpu: int = setting(1, "threads each Vina run uses", env="DOCK_VINA_CPU", type=_AT_LEAST_1)
    max_box_side: float = setting(40.0, "largest box side, Å", env="DOCK_MAX_BOX_SIDE", type=_POSITIVE)
    max_exhaustiveness: int = setting(64, "largest exhaustiveness", env="DOCK_MAX_EXHAUSTIVENESS", type=_AT_LEAST_1)
    max_poses: int = setting(20, "most poses per ligand", env="DOCK_MAX_POSES", type=_AT_LEAST_1)
    max_ring_conformers: int = setting(
        8,
        "most ring-conformer starts per ligand (each is one more Vina search)",
        env="DOCK_MAX_RING_CONFORMERS",
        type=_AT_LEAST_1,
    )
    max_rotatable_bonds: int = setting(
        32,
        "most rotatable bonds in a ligand (Vina's search degrades past it)",
        env="DOCK_MAX_ROTATABLE",
        type=_AT_LEAST_1,
    )
    max_heavy_atoms: int = setting(150, "most heavy atoms in a ligand", env="DOCK_MAX_HEAVY_ATOMS", type=_AT_LEAST_1)
    max_protein_atoms: int = setting(
        100_000, "most atoms in a protein file", env="DOCK_MAX_PROTEIN_ATOMS", type=_AT_LEAST_1
    )
    max_structure_bytes: int = setting(
        12 * 1024 * 1024, "largest protein or ligand file", env="DOCK_MAX_STRUCTURE_BYTES", type=_AT_LEAST_1
    )
    max_job_ligands: int = setting(
        5000, "most ligands in one docking job", env="DOCK_MAX_JOB_LIGANDS", type=_AT_LEAST_1
    )
    jobs_per_device: int = setting(1, "docking jobs running at once per worker", env="DOCK_JOBS", type=_AT_LEAST_1)
    stop_grace_s: float = setting(
        3.0, "seconds a cancelled job gets after SIGTERM before SIGKILL", env="DOCK_STOP_GRACE", type=_POSITIVE
    )
    score_service: str = setting(
        "compass", "affinity service that scores poses (its fallbacks follow)", env="DOCK_SCORE_SERVICE"
    )
    score_fallbacks: list[str] = setting(
        ("compass-lite",), "services tried when the scoring service has no instance", env="DOCK_SCORE_FALLBACKS"
    )
    score_deadline_s: float = setting(
        30.0, "seconds to score one ligand's poses, retries included", env="DOCK_SCORE_DEADLINE", type=_POSITIVE
    )
    crop_radius: float = setting(
        16.0,
        "protein residues within this many Å of a pose are sent for scoring (whole residues)",
        env="DOCK_SCORE_CROP",
        type=_POSITIVE,
    )
