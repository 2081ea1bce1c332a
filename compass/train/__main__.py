"""``python -m compass.train PLAN.json``: train one experiment plan (``torchrun`` for several processes).

Exit codes: 0 done, 2 invalid plan or arguments, 143 cancelled by SIGTERM (last checkpoint saved,
``progress.json`` status "cancelled"), 1 any other failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from compass.train.distributed import init_distributed, shutdown
from compass.train.loop import CANCELLED_EXIT_CODE, train
from compass.train.plan import DEVICES, ExperimentPlan, PlanError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m compass.train",
        description="Train COMPASS or compass-lite from an experiment plan; artifacts in <runs-dir>/<run_id>/.",
        epilog="Several processes / GPUs: torchrun --nproc_per_node N -m compass.train PLAN.json",
    )
    parser.add_argument("plan", type=Path, help="experiment plan (JSON)")
    parser.add_argument("--runs-dir", help="folder for run folders (default: the plan's runs_dir, 'runs')")
    parser.add_argument("--run-id", help="run id (default: the plan's, else <UTC time>-<plan hash>)")
    parser.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    parser.add_argument("--device", choices=DEVICES, help="override the plan's device")
    parser.add_argument("--seed", type=int, help="override the plan's seed (one plan file for several seeds)")
    parser.add_argument("--max-epochs", type=int, help="override the plan's epochs (the schedule follows)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        plan = ExperimentPlan.from_json(args.plan)
    except (OSError, PlanError) as exc:
        print(f"compass.train: invalid plan: {exc}", file=sys.stderr)
        return 2
    if args.seed is not None:
        if args.seed < 0:
            print("compass.train: --seed must be >= 0", file=sys.stderr)
            return 2
        plan = replace(plan, seed=args.seed)
    if args.max_epochs is not None and args.max_epochs < 1:
        print("compass.train: --max-epochs must be >= 1", file=sys.stderr)
        return 2
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
