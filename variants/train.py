"""``python -m variants.train PLAN.json [--workdir W] [--resume]``: run one experiment plan.

Writes ``<workdir>/runs/<run_id>/`` (or ``--runs-dir``): ``exp_plan.json``, ``training/``, the
model file, ``model_info.json``, ``labels.npz``, ``metrics.json`` and ``visualization/``. Plugins are
loaded from the working directory (``--workdir``, else the saved one; trusted local code).
Exit codes: 0 done, 1 failed (the message names the plan key or plugin at fault), 2 usage.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from services.common.cli import command, parse
from services.worker.jobfiles import PROGRESS_ENV, report_progress
from variants.plan import PlanError, load_plan
from variants.plugins import load_plugins
from variants.run import run_experiment
from variants.settings import current_workdir

log = logging.getLogger("variants.train")

_OPTIONS = [
    click.Argument(["plan"], type=click.Path(exists=True, dir_okay=False)),
    click.Option(["--workdir"], type=click.Path(file_okay=False), help="working directory (plugins, runs, caches)"),
    click.Option(
        ["--runs-dir"], type=click.Path(file_okay=False), help="where run folders go (default <workdir>/runs)"
    ),
    click.Option(["--run-id"], default="", help="the run's id (default: the plan's, else a new one)"),
    click.Option(["--resume"], is_flag=True, help="continue the run of this id (a finished run is left as is)"),
    click.Option(["--progress/--no-progress"], default=True, help="tqdm progress bar"),
]


class _Reporter:
    """tqdm on the terminal, the job's progress file when a worker runs us."""

    def __init__(self, show: bool) -> None:
        self.bar = tqdm(total=None, desc="variants.train", disable=not show, unit="step")
        self.path = os.environ.get(PROGRESS_ENV)

    def __call__(self, p: dict[str, Any]) -> None:
        if "max_epochs" in p:
            self.bar.total = p["max_epochs"]
            self.bar.n = p["epoch"]
        elif "total" in p:
            self.bar.total, self.bar.n = p["total"], p["embedded"]
        self.bar.set_postfix(
            {
                k: (round(v, 4) if isinstance(v, float) else v)
                for k, v in p.items()
                if k in ("stage", "val_roc_auc", "train_loss")
            },
            refresh=True,
        )
        if self.path:
            report_progress(p, self.path)

    def close(self) -> None:
        self.bar.close()


def main(argv: list[str] | None = None) -> int:
    ctx = parse(command("python -m variants.train", _OPTIONS, help=__doc__), argv)
    args = ctx.params
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    workdir = Path(args["workdir"]) if args["workdir"] else current_workdir()
    runs_dir = Path(args["runs_dir"]) if args["runs_dir"] else (workdir / "runs" if workdir else Path("runs"))
    reporter = _Reporter(args["progress"])
    try:
        plan = load_plan(args["plan"])
        if args["run_id"]:
            plan["run_id"] = args["run_id"]
        registry = load_plugins(workdir)
        for failure in registry.failures:
            click.echo(f"warning: {failure}", err=True)
        run = run_experiment(plan, runs_dir, registry, workdir=workdir, resume=args["resume"], progress=reporter)
    except (PlanError, LookupError, ValueError) as exc:
        reporter.close()
        click.echo(f"variants.train: {exc}", err=True)
        return 1
    reporter.close()
    metrics = json.loads((run / "metrics.json").read_text())
    summary = {"run": str(run), "test": {k: metrics["test"].get(k) for k in ("roc_auc", "average_precision", "mcc")}}
    click.echo(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
