"""``python -m compass.service.validate ROOT --cache-dir C --out OUT.json``: how many complexes of a root are usable.

Runs in its own process (started by the worker through :mod:`services.worker.child`): RDKit
parses user files here, so a crash or a pathological file costs this process, never the
worker. Featurising also fills the tensor cache that training on the dataset then reuses.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from services.common.cli import command, parse
from services.common.files import atomic_path

# Survival lists are cut to this many entries in the record; the counts stay exact.
MAX_LISTED = 200
PATH = click.Path(path_type=Path)
PARAMS = [
    click.Argument(["root"], type=PATH),
    click.Option(["--cache-dir"], type=PATH, required=True, help="the tensor cache training reuses"),
    click.Option(["--out"], type=PATH, required=True, help="where the JSON report goes (written atomically)"),
]


def _write(path: Path, data: dict[str, Any]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        json.dump(data, fh)


def validate(root: Path, cache_dir: Path) -> dict[str, Any]:
    """Featurise every complex (default settings) and report the survival counts and reasons."""
    from compass.data import FeatureSettings, load_root

    loaded = load_root(root, FeatureSettings(), cache_dir=cache_dir, progress=False)
    report = loaded.survival.to_dict()
    for key in ("skipped", "failed", "notes"):
        report[key] = report[key][:MAX_LISTED]
    return {"layout": loaded.layout, "n_complexes": len(loaded.graphs), "data_hash": loaded.data_hash, "report": report}


def main(argv: list[str] | None = None) -> int:
    params = parse(command("python -m compass.service.validate", PARAMS, __doc__.split("\n\n")[0]), argv).params
    root, cache_dir, out = params["root"], params["cache_dir"], params["out"]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from compass.data import LayoutError

    try:
        result = validate(root, cache_dir)
    except LayoutError as exc:
        _write(out, {"error": str(exc)})
        return 3
    _write(out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
