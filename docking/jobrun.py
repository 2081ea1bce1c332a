"""The process of one docking job: ``docking.jobrun:main([JOB_FOLDER, REGISTRY_URLS])``.

Started by the worker's job runtime (:mod:`docking.jobs`). Docks the job's ligands one after the
other with Vina in this process, scores each ligand's poses through the Router, appends one line
per ligand to ``results.jsonl`` and reports progress after each. A restarted job skips the
ligands already in ``results.jsonl``. SIGTERM keeps its default action (Vina's C++ loop would not
see a Python handler): a cancel ends the process at once.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from docking import request as dock_request
from docking import scoring
from docking.errors import DockingError
from docking.jobs import RESULTS
from docking.settings import DockSettings
from services.worker.jobfiles import report_progress

log = logging.getLogger("docking.jobrun")


def _settings(raw: dict[str, Any]) -> DockSettings:
    return DockSettings(**{**raw, "state_dir": Path(raw["state_dir"])})


def _done(folder: Path) -> set[int]:
    path = folder / RESULTS
    done = set()
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                done.add(int(json.loads(line)["index"]))
            except (ValueError, KeyError, TypeError):
                continue
    return done


def dock_and_score(payload: dict[str, Any], settings: DockSettings, router: Any) -> dict[str, Any]:
    """One ligand: docked, its poses scored; the summary line of the results file."""
    req = dock_request.parse(payload, settings)
    answer = dock_request.run(req, settings)
    summary = {"scored_by": None, "scoring_error": None}
    if req.score:
        summary = scoring.score_poses(
            router, req.protein_pdb, answer["poses"], settings, scoring.pose_points(answer["poses"])
        )
    return {**answer, **summary}


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    folder, registry = Path(argv[0]), [u for u in (argv[1] if len(argv) > 1 else "").split(",") if u]
    spec = json.loads((folder / "job.json").read_text())
    settings = _settings(spec["settings"])
    ligands: list[str] = spec["ligands"]
    names = spec.get("names") or []
    done = _done(folder)
    router = None
    if registry:
        from services.client.router import Router

        router = Router(registry)
    failed = 0
    started = time.monotonic()
    progress = {"status": "running", "total": len(ligands), "done": len(done), "failed": 0}
    report_progress(progress)
    try:
        with open(folder / RESULTS, "a") as out:
            for index, smiles in enumerate(ligands):
                if index in done:
                    continue
                name = str(names[index]) if index < len(names) and names[index] else smiles
                progress.update(current=name)
                report_progress(progress)
                payload = {**spec["payload"], "ligand_smiles": smiles, "name": name}
                t0 = time.monotonic()
                try:
                    row = {"index": index, "status": "success", **dock_and_score(payload, settings, router)}
                except DockingError as err:
                    failed += 1
                    row = {
                        "index": index,
                        "name": name,
                        "status": "error",
                        "error": {"code": err.code, "details": err.details},
                    }
                row["seconds"] = round(time.monotonic() - t0, 2)
                out.write(json.dumps(row) + "\n")
                out.flush()
                os.fsync(out.fileno())
                progress.update(
                    done=progress["done"] + 1, failed=failed, elapsed_s=round(time.monotonic() - started, 1)
                )
                report_progress(progress)
    finally:
        if router is not None:
            router.close()
    progress.update(status="completed", current=None)
    report_progress(progress)
    return 0
