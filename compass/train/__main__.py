"""``python -m compass.train PLAN.json``: train one experiment plan (``torchrun`` for several processes).

Exit codes: 0 done, 2 invalid plan or arguments, 143 cancelled by SIGTERM (last checkpoint saved,
``progress.json`` status "cancelled"), 1 any other failure.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import click

from compass.train.distributed import init_distributed, shutdown
from compass.train.loop import CANCELLED_EXIT_CODE, train
from compass.train.plan import DEVICES, ExperimentPlan, PlanError
from services.common.cli import command, parse

PATH = click.Path(path_type=Path)
PARAMS = [
    click.Argument(["plan"], type=PATH),
    click.Option(["--runs-dir"], help="folder for run folders (default: the plan's runs_dir, 'runs')"),
    click.Option(["--run-id"], help="run id (default: the plan's, else <UTC time>-<plan hash>)"),
    click.Option(["--resume"], is_flag=True, help="continue from the run's last checkpoint"),
    click.Option(["--device"], type=click.Choice(DEVICES), help="override the plan's device"),
    click.Option(
        ["--seed"], type=click.IntRange(min=0), help="override the plan's seed (one plan file for several seeds)"
    ),
    click.Option(
        ["--max-epochs"], type=click.IntRange(min=1), help="override the plan's epochs (the schedule follows)"
    ),
    click.Option(["--no-progress"], is_flag=True, help="no tqdm bar"),
]
HELP = (
    "Train COMPASS or compass-lite from the experiment plan PLAN (JSON); artifacts in <runs-dir>/<run_id>/.\n\n"
    "Several processes / GPUs: torchrun --nproc_per_node N -m compass.train PLAN.json"
)


def main(argv: list[str] | None = None) -> int:
    args = SimpleNamespace(**parse(command("python -m compass.train", PARAMS, HELP), argv).params)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        plan = ExperimentPlan.from_json(args.plan)
    except (OSError, PlanError) as exc:
        print(f"compass.train: invalid plan: {exc}", file=sys.stderr)
        return 2
    if args.seed is not None:
        plan = replace(plan, seed=args.seed)
    ctx = init_distributed(args.device or plan.device)
    if ctx.enabled:
        print(f"compass.train: rank {ctx.rank} of {ctx.world_size} ({ctx.backend})", file=sys.stderr, flush=True)
        if not ctx.is_main:
            logging.getLogger().setLevel(logging.WARNING)  # rank 0 narrates; the others speak only of trouble
    try:
        result = train(
            plan,
            runs_dir=args.runs_dir,
            run_id=args.run_id,
            resume=args.resume,
            device=args.device,
            max_epochs=args.max_epochs,
            progress=not args.no_progress,
            echo_progress=True,
            ctx=ctx,
        )
    except (PlanError, FileExistsError, FileNotFoundError) as exc:
        print(f"compass.train: {exc}", file=sys.stderr)
        return 2
    finally:
        shutdown(ctx)
    if ctx.is_main:
        print(f"compass.train: {result.status}: {result.run_dir} best={result.best_checkpoint.name}", flush=True)
    return CANCELLED_EXIT_CODE if result.status == "cancelled" else 0


if __name__ == "__main__":
    sys.exit(main())
