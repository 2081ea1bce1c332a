"""Honest evaluation of COMPASS models: leave-protein-out on FEP+, CASF-2016, or any data root.

    python -m compass.evaluate --plan PLAN.json --data ../shared/data/fep --set fep-lpo --out DIR
    python -m compass.evaluate --checkpoint C --data ../shared/data/casf2016 --set casf2016 --out DIR
    python -m compass.evaluate --checkpoint C --data ROOT --set all --out DIR
    python -m compass.evaluate --set pairs --plan compass/weights/plans/pairs-lite.json --out DIR [--seeds 0,1,2]

``pairs`` evaluates a descriptor-model plan (compass-lite, the COMPASS stack) on every read-out:
see :mod:`compass.evaluate_pairs`.

``fep-lpo`` trains the plan once per fold (5 folds grouped by protein, fixed seed) and predicts
the held-out proteins; complexes of the plan's other roots whose protein shares its sequence
with a held-out protein are kept out of that fold's training. ``casf2016`` and ``all`` score a
trained checkpoint and refuse complexes it was trained or validated on. Both write
``predictions.csv``, ``metrics.json`` (DESIGN keys, anchors in the same run) and ``scatter.png``.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import numpy as np

from compass.data import ComplexGraph, ComplexRecord, load_root
from compass.data.similarity import related
from compass.data.splits import group_kfold
from compass.model.checkpoint import CheckpointError, Predictor, load_checkpoint, model_id
from compass.train.plan import ExperimentPlan, PlanError
from compass.train.report import write_report
from services.common.cli import command, parse

log = logging.getLogger("compass.evaluate")
SETS = ("fep-lpo", "casf2016", "all", "pairs")
CASF_SIZE = 285


def _same_root(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def fep_lpo(
    plan: ExperimentPlan,
    data: Path,
    out: Path,
    *,
    folds: int = 5,
    seed: int = 0,
    runs_dir: Path | None = None,
    max_epochs: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Cross-validate the plan over protein-grouped folds of ``data`` and write the report."""
    from compass.train import inputs
    from compass.train.loop import train

    cache_dir = plan.resolve_path(plan.data.cache_dir) if plan.data.cache_dir else None
    loaded = load_root(data, plan.data.feature, cache_dir=cache_dir, progress=progress)
    graphs, records = inputs.filter_records(plan, loaded.graphs, loaded.records)
    extra_graphs: list[ComplexGraph] = []
    extra_records: list[ComplexRecord] = []
    for root in plan.resolved_roots():
        if _same_root(Path(root), data):
            continue
        other = load_root(root, plan.data.feature, cache_dir=cache_dir, progress=progress)
        g, r = inputs.filter_records(plan, other.graphs, other.records)
        extra_graphs += g
        extra_records += r
    fold_idx = group_kfold(records, n_folds=folds, seed=seed)
    preds = np.full(len(records), np.nan)
    fold_info = []
    runs_dir = runs_dir or Path(plan.runs_dir)
    base_id = f"{plan.with_run_id().run_id}-lpo"
    for k, test_idx in enumerate(fold_idx):
        test_set = set(test_idx)
        held_proteins = sorted({records[i].group for i in test_idx})
        near = related([r.protein_path for r in extra_records], [records[i].protein_path for i in test_idx])
        train_graphs = [graphs[i] for i in range(len(records)) if i not in test_set]
        train_records = [records[i] for i in range(len(records)) if i not in test_set]
        train_graphs += [g for g, n in zip(extra_graphs, near, strict=True) if not n]
        train_records += [r for r, n in zip(extra_records, near, strict=True) if not n]
        log.info(
            "fold %d/%d: %d test complexes (%s), %d training, %d related complexes of other roots left out",
            k + 1,
            folds,
            len(test_idx),
            ", ".join(held_proteins),
            len(train_graphs),
            sum(near),
        )
        fold_plan = replace(plan, seed=plan.seed + k)
        result = train(
            fold_plan,
            train_graphs=train_graphs,
            train_records=train_records,
            runs_dir=runs_dir,
            run_id=f"{base_id}-fold{k}",
            max_epochs=max_epochs,
            progress=progress,
        )
        predictor = load_checkpoint(result.best_checkpoint)
        preds[test_idx] = predictor.predict([graphs[i] for i in test_idx])
        fold_info.append(
            {
                "fold": k,
                "proteins": held_proteins,
                "n_test": len(test_idx),
                "n_train": len(train_graphs),
                "n_related_left_out": int(sum(near)),
                "run_dir": str(result.run_dir),
            }
        )
    model = {"kind": plan.model.kind, "plan": plan.to_dict(), "set": "fep-lpo", "folds": folds, "fold_seed": seed}
    return write_report(
        out,
        records,
        preds,
        graphs,
        survival=loaded.survival,
        model=model,
        title=f"{plan.model.kind}: FEP+ leave-protein-out ({folds} folds)",
        extra={"folds": fold_info},
    )


def score_checkpoint(
    checkpoint: Path, data: Path, out: Path, *, which: str = "all", batch_size: int = 32, progress: bool = True
) -> dict[str, Any]:
    """Score a trained checkpoint on a data root, leaving out anything it was trained or validated on."""
    predictor: Predictor = load_checkpoint(checkpoint)
    split = predictor.meta.get("extra") or {}
    seen = set(split.get("train_keys", [])) | set(split.get("val_keys", []))
    loaded = load_root(data, predictor.feature_settings, progress=progress)
    keep = [i for i, r in enumerate(loaded.records) if r.key not in seen]
    in_sample = len(loaded.records) - len(keep)
    if which == "casf2016":
        if in_sample:
            raise ValueError(f"{in_sample} CASF-2016 complexes were in this model's training or validation data")
        if loaded.survival.n_index != CASF_SIZE:
            log.warning("%s lists %d complexes, CASF-2016 has %d", data, loaded.survival.n_index, CASF_SIZE)
    if not keep:
        raise ValueError(f"every complex of {data} was in this model's training or validation data: nothing to score")
    records = [loaded.records[i] for i in keep]
    graphs = [loaded.graphs[i] for i in keep]
    preds = predictor.predict(graphs, batch_size=batch_size)
    model = {
        "kind": predictor.kind,
        "model_id": model_id(checkpoint),
        "checkpoint": str(checkpoint),
        "set": which,
        "n_in_training_left_out": in_sample,
    }
    title = f"{predictor.kind} {model_id(checkpoint)}: " + (
        "CASF-2016 (PDBbind 2021 files)" if which == "casf2016" else data.name
    )
    metrics = write_report(out, records, preds, graphs, survival=loaded.survival, model=model, title=title)
    if which == "casf2016":
        metrics["casf2016"] = {
            "scoring_power_pearson": metrics["pooled"]["pearson"],
            "ranking_power_spearman": metrics["per_series_mean"]["spearman"],
            "n_scored": metrics["n_molecules"],
            "n_clusters": metrics["n_series"],
        }
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def _f(x: Any) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _summary(metrics: dict[str, Any]) -> str:
    """A few lines for the terminal: the model, then each anchor scored on the same molecules."""
    lines = [f"molecules {metrics['n_molecules']}  failed {metrics['n_failed']}  series {metrics.get('n_series')}"]
    blocks = [("model", metrics)] + [(k, v) for k, v in metrics.get("anchors", {}).items() if v.get("n_molecules")]
    for name, block in blocks:
        p, s = block["pooled"], block["per_series_mean"]
        lines.append(
            f"{name:<12} pooled R {_f(p['pearson'])}  rho {_f(p['spearman'])}  RMSE {_f(p['rmse'])}"
            f"  | per-series rho {_f(s['spearman'])}  R {_f(s['pearson'])}  cRMSE {_f(s['centred_rmse'])}"
            f"  (n={block['n_molecules']})"
        )
    return "\n".join(lines)


PATH = click.Path(path_type=Path)
PARAMS = [
    click.Option(["--set", "which"], required=True, type=click.Choice(SETS)),
    click.Option(["--data"], type=PATH, help="data root (or .pt cache); not used by --set pairs"),
    click.Option(["--seeds"], default="0,1,2", show_default=True, help="comma-separated seeds (--set pairs)"),
    click.Option(["--jobs"], type=click.IntRange(min=1), default=1, help="threads for forest fitting (--set pairs)"),
    click.Option(["--out"], required=True, type=PATH, help="folder for predictions.csv, metrics.json, scatter.png"),
    click.Option(["--plan"], type=PATH, help="experiment plan (fep-lpo, pairs)"),
    click.Option(["--checkpoint"], type=PATH, help="trained checkpoint (casf2016, all)"),
    click.Option(["--folds"], type=click.IntRange(min=2), default=5, show_default=True),
    click.Option(["--fold-seed"], type=int, default=0, show_default=True),
    click.Option(["--runs-dir"], type=PATH, help="where fold runs go (default: the plan's runs_dir)"),
    click.Option(["--max-epochs"], type=click.IntRange(min=1), help="override the plan's epochs (quick checks)"),
    click.Option(["--batch-size"], type=click.IntRange(min=1), default=32, show_default=True),
    click.Option(["--no-progress"], is_flag=True),
]


def _check(params: dict) -> None:
    """What one flag needs of another (a usage error, exit 2)."""
    which = params["which"]
    try:
        params["seeds"] = [int(s) for s in str(params["seeds"]).split(",") if s.strip()]
    except ValueError:
        raise click.UsageError(f"--seeds takes comma-separated integers, got {params['seeds']!r}") from None
    if which in ("pairs", "fep-lpo") and not params["plan"]:
        raise click.UsageError(f"--set {which} needs --plan")
    if which != "pairs" and params["data"] is None:
        raise click.UsageError(f"--set {which} needs --data")
    if which in ("casf2016", "all") and not params["checkpoint"]:
        raise click.UsageError(f"--set {which} needs --checkpoint")


def main(argv: list[str] | None = None) -> int:
    cmd = command("compass-evaluate", PARAMS, __doc__.split("\n\n")[0])
    args = SimpleNamespace(**parse(cmd, argv, validate=_check).params)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.which == "pairs":
        return _pairs(args)
    try:
        if args.which == "fep-lpo":
            plan = ExperimentPlan.from_json(args.plan)
            metrics = fep_lpo(
                plan,
                args.data,
                args.out,
                folds=args.folds,
                seed=args.fold_seed,
                runs_dir=args.runs_dir,
                max_epochs=args.max_epochs,
                progress=not args.no_progress,
            )
        else:
            metrics = score_checkpoint(
                args.checkpoint,
                args.data,
                args.out,
                which=args.which,
                batch_size=args.batch_size,
                progress=not args.no_progress,
            )
    except (PlanError, CheckpointError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(_summary(metrics))
    print(f"wrote {args.out}/predictions.csv, metrics.json, scatter.png")
    return 0


def _pairs(args: SimpleNamespace) -> int:
    from compass.evaluate_pairs import evaluate, summary_lines
    from compass.train.pairs import PairPlan

    try:
        plan = PairPlan.from_dict(json.loads(args.plan.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        print(f"error: bad plan {args.plan}: {exc}", file=sys.stderr)
        return 2
    summary = evaluate(plan, args.out, tuple(args.seeds), n_jobs=args.jobs)
    print("\n".join(summary_lines(summary)))
    print(f"wrote {args.out}/metrics.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
