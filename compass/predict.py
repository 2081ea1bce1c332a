"""Predict the binding affinity of one complex from the command line.

    python -m compass.predict --protein 1a30_pocket.pdb --ligand 1a30_ligand.sdf [--model compass|compass-lite|FILE]

The model is a shipped checkpoint (``compass/weights/``) or any checkpoint file; the answer says
which (content id) so a figure can always be traced to the weights that made it.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click

from compass.data import StructureError, featurize_files
from compass.model.checkpoint import CheckpointError, Predictor, load_checkpoint, model_id
from compass.settings import weights_dir
from compass.units import kd_from_pk as kd_from_pk  # re-exported: the worker and tests import it here
from services.common.cli import DEVICE, command, parse

PATH = click.Path(path_type=Path)

# compass: the descriptor stack; compass-visnet: the structure model, kept as an option (MODEL_CARD.md).
SHIPPED = {"compass": "compass.skops", "compass-lite": "compass-lite.skops", "compass-visnet": "compass.safetensors"}


def resolve_model(name: str) -> Path:
    """A shipped model name (``compass``, ``compass-lite``) or a checkpoint path."""
    if name in SHIPPED:
        return weights_dir() / SHIPPED[name]
    return Path(name)


def trust_lines(result: dict[str, Any]) -> list[str]:
    """The interval and domain read-out of a prediction, as a person reads them."""
    lines = []
    if "interval" in result:
        iv = result["interval"]
        lines.append(f"{iv['level']:.0%} interval: pK {iv['low']:.2f} to {iv['high']:.2f}")
    dom = result.get("domain")
    if dom:
        lines.append(
            f"nearest training ligand: Tanimoto {dom['nearest_ligand_similarity']:.2f} ({dom['nearest_ligand_id']})"
            if dom["nearest_ligand_id"]
            else f"nearest training ligand: none ({dom['ligand_note']})"
        )
        seen = dom["protein_seen"]
        how = f" by {dom['protein_seen_by']}" if dom.get("protein_seen_by") else ""
        count = dom.get("training_complexes_for_protein")
        lines.append(f"protein seen in training: {seen}{how}" + (f", {count} training complexes" if count else ""))
    return lines


def predict_files(predictor: Predictor, protein: Path, ligand: Path, ligand_index: int = 0) -> dict[str, Any]:
    """Featurise and score one complex; timings split into preprocessing and model."""
    t0 = time.perf_counter()
    graph, notes = featurize_files(protein, [ligand], predictor.feature_settings, ligand_index=ligand_index)
    t1 = time.perf_counter()
    pk = float(predictor.predict([graph])[0])
    t2 = time.perf_counter()
    return {
        "pK": pk,
        "kd": kd_from_pk(pk),
        "ligand_atoms": graph.num_ligand_atoms,
        "pocket_atoms": graph.num_atoms - graph.num_ligand_atoms,
        "notes": notes,
        "timings_ms": {"preprocess": (t1 - t0) * 1e3, "model": (t2 - t1) * 1e3},
        # Descriptor models say how far to trust the number (interval, applicability domain).
        **(predictor.trust(graph, pk) if hasattr(predictor, "trust") else {}),
    }


def main(argv: list[str] | None = None) -> int:
    params = [
        click.Option(["--protein"], required=True, type=PATH, help="protein or pocket (PDB or PDBQT)"),
        click.Option(["--ligand"], required=True, type=PATH, help="ligand in its bound pose (SDF, MOL2 or PDBQT)"),
        click.Option(
            ["--ligand-index"], type=click.IntRange(min=0), default=0, help="SDF record to use (0: the first)"
        ),
        click.Option(
            ["--model"], default="compass", show_default=True, help="compass, compass-lite or a checkpoint file"
        ),
        click.Option(["--device"], type=DEVICE, default="cpu", show_default=True),
        click.Option(["--json"], is_flag=True, help="print one JSON object"),
    ]
    args = SimpleNamespace(**parse(command("compass-predict", params, __doc__.split("\n\n")[0]), argv).params)
    path = resolve_model(args.model)
    try:
        predictor = load_checkpoint(path, device=args.device)
        result = predict_files(predictor, args.protein, args.ligand, args.ligand_index)
    except (CheckpointError, StructureError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result.update({"model": predictor.kind, "model_id": model_id(path), "checkpoint": str(path)})
    if not math.isfinite(result["pK"]):
        print("error: the model returned a non-finite value", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        print(f"pK {result['pK']:.2f}  (Kd ≈ {result['kd']})  model {predictor.kind} {result['model_id']}")
        for line in trust_lines(result):
            print(line)
        for note in result["notes"]:
            print(f"note: {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
