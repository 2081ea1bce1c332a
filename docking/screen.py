"""Screen a ligand library against one protein across every dock worker of the mesh.

    python -m docking.screen --registry URL --protein P.pdb --ligands L.smi|L.sdf \\
        (--box-ligand REF.sdf | --center X Y Z --size SX SY SZ | --residues A:57,A:102) --out DIR [--concurrency N]

Each ligand becomes a small task file in ``DIR/tasks/`` and goes through the batch runner's folder
loop (:func:`services.client.batch.run_folder`): ``--concurrency`` ligands in flight, spread by the
Router over the dock workers, one atomic result file per ligand in ``DIR/results/``. A re-run (after
a crash, a kill -9, a Ctrl-C) skips every ligand whose result is a success. At the end, and after
every run, ``DIR/results.csv`` ranks the ligands by their best Vina score (with the COMPASS pK of
that pose, its interval and the model that gave it) and ``DIR/poses.sdf`` holds each best pose.
The protein, box and docking parameters are in ``DIR/screen.json``; resuming with different
ones is refused, so one folder never mixes two screens.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click

from docking import ligand as lig
from services.client.batch import folder_router, registry_option, routing_params, run_folder, run_task, write_atomic
from services.common.cli import command, env_settings, parse
from services.common.settings import ClientSettings

log = logging.getLogger("docking.screen")
SERVICE = "docking"
KEEP = ("index", "name")  # task metadata each result carries, for results.csv
# A docking takes 5 s to minutes depending on the ligand, so p2c's latency estimate describes the last
# ligand, not the worker, and can queue a ligand behind a busy worker while another is idle; the count
# of dockings in flight is the signal that keeps every worker busy (--balancer overrides it).
SCREEN_BALANCER = "least_connections"
CSV_FIELDS = [
    "rank",
    "index",
    "name",
    "status",
    "vina_score",
    "pK",
    "pK_low",
    "pK_high",
    "interval_level",
    "Kd_nM",
    "scored_by",
    "smiles",
    "error",
]


def read_library(path: Path) -> list[dict[str, str]]:
    """``[{name, ligand_smiles | ligand_sdf}]`` from a .smi (``SMILES [name]`` per line) or an .sdf."""
    text = path.read_text(encoding="utf-8")
    out: list[dict[str, str]] = []
    if path.suffix.lower() == ".sdf":
        for i, mol in enumerate(lig.sdf_records(text)):
            name = mol.GetProp("_Name").strip() if mol is not None and mol.HasProp("_Name") else ""
            block = "" if mol is None else lig.mol_to_sdf(mol)
            out.append({"name": name or f"record-{i}", "ligand_sdf": block})
        return out
    for line in text.splitlines():
        parts = line.split(None, 1)
        if not parts or parts[0].startswith("#"):
            continue
        out.append({"name": parts[1].strip() if len(parts) > 1 else parts[0], "ligand_smiles": parts[0]})
    return out


def box_spec(args: SimpleNamespace) -> dict[str, Any]:
    if args.box_ligand:
        return {"reference_ligand_sdf": args.box_ligand.read_text(), "padding": args.padding}
    if args.center and args.size:
        return {"center": list(args.center), "size": list(args.size)}
    if args.residues:
        return {"residues": [r.strip() for r in args.residues.split(",") if r.strip()], "padding": args.padding}
    return {}


def prepare_folder(out: Path, manifest: dict[str, Any], library: list[dict[str, str]]) -> None:
    """Write ``screen.json`` and one task per ligand; refuse a folder that holds another screen."""
    (out / "tasks").mkdir(parents=True, exist_ok=True)
    path = out / "screen.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if old != manifest:
            changed = sorted(k for k in manifest if old.get(k) != manifest[k])
            raise SystemExit(f"docking.screen: {out} holds another screen (different {', '.join(changed)})")
    else:
        write_atomic(path, manifest)
    for i, entry in enumerate(library):
        task = out / "tasks" / f"{i:06d}.json"
        if not task.is_file():
            write_atomic(task, {"task": "dock", "input": entry, "metadata": {"index": i, "name": entry["name"]}})


def _row(result: dict[str, Any]) -> dict[str, Any]:
    meta = result.get("metadata") or {}
    row: dict[str, Any] = {"index": meta.get("index"), "name": meta.get("name"), "status": result.get("status")}
    output = result.get("output") or {}
    poses = output.get("poses") or []
    if result.get("status") == "success" and poses:
        best = poses[0]
        interval = best.get("interval") or {}
        pk = best.get("pK")
        row.update(
            vina_score=best["vina_score"],
            pK=pk,
            pK_low=interval.get("low"),
            pK_high=interval.get("high"),
            interval_level=interval.get("level"),
            scored_by=best.get("scored_by"),
            Kd_nM=None if pk is None else float(f"{10 ** (9 - pk):.3g}"),
            smiles=output.get("smiles"),
        )
        row["_sdf"] = best["sdf"]
    else:
        error = result.get("error") or {}
        row["error"] = f"{error.get('code', '')}: {error.get('details') or error.get('message', '')}"[:300]
    return row


def write_outputs(out: Path) -> list[dict[str, Any]]:
    """``results.csv`` (best Vina score first, failures last) and ``poses.sdf`` from the result files."""
    rows = []
    for path in sorted((out / "results").glob("*.json")):
        try:
            rows.append(_row(json.loads(path.read_text())))
        except ValueError:
            continue
    done = sorted((r for r in rows if "vina_score" in r), key=lambda r: (r["vina_score"], r["index"]))
    failed = sorted((r for r in rows if "vina_score" not in r), key=lambda r: r["index"] or 0)
    ranked = done + failed
    for rank, row in enumerate(ranked, start=1):
        row["rank"] = rank if "vina_score" in row else None
    write_atomic_text(out / "results.csv", _csv(ranked))
    sdf = "".join(_tag(r) for r in done)
    write_atomic_text(out / "poses.sdf", sdf)
    return ranked


def _csv(rows: list[dict[str, Any]]) -> str:
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _tag(row: dict[str, Any]) -> str:
    """The best pose's SDF record renamed to the ligand, with its rank, pK and model as SD tags."""
    records = lig.sdf_records(row["_sdf"])
    if not records or records[0] is None:
        return row["_sdf"]
    mol = records[0]
    mol.SetProp("_Name", str(row["name"]))
    tags = {k: row.get(k) for k in ("rank", "vina_score", "pK", "pK_low", "pK_high", "scored_by")}
    return lig.mol_to_sdf(mol, tags)


def write_atomic_text(path: Path, text: str) -> None:
    from services.common.files import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


PATH = click.Path(path_type=Path)


def screen_params(settings: ClientSettings) -> list[click.Parameter]:
    """The screen's flags, then the routing flags every runner of many calls shares."""
    return [
        registry_option(),
        click.Option(["--protein"], type=PATH, required=True, help="protein PDB"),
        click.Option(["--ligands"], type=PATH, required=True, help="library: .smi (SMILES [name] per line) or .sdf"),
        click.Option(["--out"], type=PATH, required=True, help="result folder (resumable)"),
        click.Option(["--box-ligand"], type=PATH, help="box: a reference ligand SDF, plus --padding"),
        click.Option(["--center"], type=float, nargs=3, default=None, metavar="X Y Z", help="box centre (Å)"),
        click.Option(["--size"], type=float, nargs=3, default=None, metavar="SX SY SZ", help="box size (Å)"),
        click.Option(["--residues"], help="box around residues, e.g. A:57,A:102,A:195"),
        click.Option(["--padding"], type=float, default=4.0, show_default=True, help="Å around the reference"),
        click.Option(
            ["--concurrency"],
            type=click.IntRange(min=1),
            default=2,
            show_default=True,
            help="ligands in flight (about one per dock worker)",
        ),
        click.Option(["--exhaustiveness"], type=click.IntRange(min=1), default=8, show_default=True),
        click.Option(["--n-poses"], type=click.IntRange(min=1), default=9, show_default=True),
        click.Option(["--seed"], type=click.IntRange(0, 2**31 - 2), default=0, show_default=True),
        click.Option(
            ["--ring-conformers"],
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="starts with distinct ring puckers per ligand (each one more Vina search)",
        ),
        click.Option(["--ph"], type=float, default=7.4, show_default=True, help="protonation pH for SMILES"),
        click.Option(["--no-score"], is_flag=True, help="skip COMPASS scoring"),
        *routing_params(replace(settings, deadline_s=1800.0, balancer=SCREEN_BALANCER), "ligand"),
    ]


def _validate(values: dict[str, Any]) -> None:
    if bool(values["center"]) != bool(values["size"]):
        raise click.UsageError("--center and --size go together")
    for name in ("protein", "ligands", "box_ligand"):
        if values[name] is not None and not values[name].is_file():
            raise click.UsageError(f"--{name.replace('_', '-')} {values[name]} is not a file")


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when every ligand docked, 1 when any failed, 2 on bad arguments."""
    settings = env_settings(ClientSettings)
    cmd = command("python -m docking.screen", screen_params(settings), __doc__.split("\n\n")[0])
    args = SimpleNamespace(**parse(cmd, argv, validate=_validate).params)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    registries = list(args.registry or settings.registry_urls)
    if not registries:
        print("docking.screen: no registry: pass --registry or set REGISTRY_URL", file=sys.stderr)
        return 2
    library = read_library(args.ligands)
    if not library:
        print(f"docking.screen: {args.ligands} holds no ligand", file=sys.stderr)
        return 2
    protein = args.protein.read_text()
    common = {
        "protein_pdb": protein,
        "box": box_spec(args),
        "exhaustiveness": args.exhaustiveness,
        "n_poses": args.n_poses,
        "seed": args.seed,
        "ph": args.ph,
        "score": not args.no_score,
    }
    if args.ring_conformers > 1:  # only then: a folder screened before the flag existed still resumes
        common["ring_conformers"] = args.ring_conformers
    manifest = {k: v for k, v in common.items() if k != "protein_pdb"}
    manifest.update(
        protein_sha256=hashlib.sha256(protein.encode()).hexdigest(),
        ligands=str(args.ligands.resolve()),
        n_ligands=len(library),
    )
    prepare_folder(args.out, manifest, library)
    with folder_router(args, registries, settings) as router:
        summary = run_folder(
            args.out / "tasks",
            args.out / "results",
            lambda task, result: run_task(
                router, task, result, SERVICE, None, args.deadline, path="/dock", common=common, keep=KEEP
            ),
            concurrency=args.concurrency,
            progress=args.progress,
        )
    ranked = write_outputs(args.out)
    per_min = summary.succeeded / summary.elapsed_s * 60 if summary.elapsed_s else 0.0
    print(f"screen: {summary.line()}; {per_min:.2f} ligands/min", flush=True)
    print(
        json.dumps(
            {
                "event": "summary",
                **asdict(summary),
                "ligands_per_min": round(per_min, 3),
                "ranked": len([r for r in ranked if r.get("rank")]),
            }
        ),
        flush=True,
    )
    return 1 if summary.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
