"""Docking jobs: many ligands into one protein as a job of the worker's job runtime.

:mod:`services.worker.jobs` runs, watches, cancels and adopts the process; this module says what a
docking job is. Its folder holds ``job.json`` (the protein, the ligands, the box, the parameters
and the worker's settings) and ``results.jsonl`` (one line per ligand docked, appended by the
child, :mod:`docking.jobrun`). The child runs Vina in its own process, so a cancel (SIGTERM to its
process group, SIGKILL after ``stop_grace_s``) stops Vina mid-search.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from docking import box as bx
from docking import ligand as lig
from docking import request as dock_request
from docking.errors import INVALID_REQUEST, INVALID_SMILES, DockingError
from docking.settings import DockSettings
from services.worker.jobs import STATUSES, JobPolicy, JobRunner, JobType, jobs_table, new_job_id
from services.worker.store import Store

__all__ = ["STATUSES", "DockingJob", "DockingJobs", "read_results"]

TABLE = "dock_jobs"
SCHEMA = jobs_table(TABLE, "params_json TEXT, n_ligands INTEGER, result_json TEXT")
RESULTS = "results.jsonl"
MAX_RESULTS_PAGE = 500


def read_results(folder: Path, offset: int = 0, limit: int = 100) -> tuple[list[dict[str, Any]], int]:
    """One page of a job's results (in the order they were docked) and how many there are."""
    path = folder / RESULTS
    if not path.is_file():
        return [], 0
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a kill -9 mid-write: that ligand is docked again on resume
    return rows[offset : offset + min(limit, MAX_RESULTS_PAGE)], len(rows)


class DockingJob(JobType):
    name = "docking"
    target = "docking.jobrun:main"
    hidden = ("params",)
    detail = ("params",)

    def __init__(self, registry_urls: list[str]) -> None:
        self.registry_urls = registry_urls

    def args(self, job: dict[str, Any], folder: Path, resume: bool) -> list[str]:
        return [str(folder), ",".join(self.registry_urls)]

    def resumable(self, job: dict[str, Any]) -> bool:
        return True  # the child skips ligands already in results.jsonl


def _settings_json(settings: DockSettings) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items() if k != "api_token"}


class DockingJobs(JobRunner):
    """The docking jobs of one worker (records in the state folder's SQLite, shared by replicas)."""

    def __init__(self, settings: DockSettings, *, owner: str, registry_urls: list[str]) -> None:
        self.settings = settings
        store = Store(settings.state_dir / "dock.db", SCHEMA)
        policy = JobPolicy(settings.jobs_per_device, settings.stop_grace_s, resume=True)
        super().__init__(
            store,
            settings.state_dir / "jobs",
            DockingJob(registry_urls),
            owner=owner,
            policy=policy,
            table=TABLE,
            cwd=settings.state_dir,
        )

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Check everything a ligand-independent failure would hit (protein, box, caps, every SMILES), then start."""
        ligands = body.get("ligands")
        if not isinstance(ligands, list) or not ligands or not all(isinstance(s, str) for s in ligands):
            raise DockingError(INVALID_REQUEST, "'ligands' must be a non-empty list of SMILES strings")
        if len(ligands) > self.settings.max_job_ligands:
            raise DockingError(
                INVALID_REQUEST, f"{len(ligands)} ligands; a job takes at most {self.settings.max_job_ligands}"
            )
        for i, smiles in enumerate(ligands):
            try:
                lig.parse_smiles(smiles)
            except DockingError as err:
                raise DockingError(INVALID_SMILES, f"ligand {i}: {err.details}") from None
        payload = {k: v for k, v in body.items() if k not in ("ligands", "names")}
        first = dock_request.parse({**payload, "ligand_smiles": ligands[0]}, self.settings)
        if first.box is None:
            bx.require_detection()
        names = body.get("names") if isinstance(body.get("names"), list) else None
        job_id = new_job_id("dock")
        spec = {"payload": payload, "ligands": ligands, "names": names, "settings": _settings_json(self.settings)}
        params = {k: v for k, v in payload.items() if k not in ("protein_pdb", "box")}
        params["box"] = {k: v for k, v in (first.box or {}).items() if k != "reference_ligand_sdf"}
        fields = {"name": str(body.get("name") or job_id)[:128], "params_json": params, "n_ligands": len(ligands)}
        return self.start(job_id, fields, {"job.json": json.dumps(spec)})

    def view(self, job_id: str, offset: int, limit: int) -> dict[str, Any]:
        """The job with a page of its results so far."""
        out = self.public(self.get(job_id), detail=True)
        results, total = read_results(self.folder(job_id), offset, limit)
        out.update(results=results, n_results=total, offset=offset)
        return out
