"""``python -m compass.data.pack --out DIR ROOT...``: featurised roots as stable-named ``.pt`` files.

A GPU machine has no RDKit and no ``../shared``: featurise here, write ``DIR/<root name>.pt`` for
each root (a ``.pt`` cache is a data root by itself) plus, with ``--exclude-ids``, a copy of the
id list as ``DIR/exclude_ids.txt``, and carry ``DIR``. ``compass/weights/plans/compass-gpu.json``
names exactly these files.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import click

from compass.data.dataset import load_root, save_cache
from compass.data.graph import FeatureSettings
from services.common.cli import command, parse

PATH = click.Path(path_type=Path)

EXCLUDE_IDS_NAME = "exclude_ids.txt"


def pack_roots(
    roots: list[Path], out: Path, settings: FeatureSettings, cache_dir: Path | None = None, progress: bool = True
) -> list[Path]:
    """Featurise (or read from ``cache_dir``) every root and write ``out/<name>.pt``; returns the paths."""
    names = [Path(r).resolve().name.removesuffix(".pt") for r in roots]
    if len(set(names)) != len(names):
        raise ValueError(f"two roots share a folder name, so their files would collide: {names}")
    written = []
    for root, name in zip(roots, names, strict=True):
        loaded = load_root(root, settings=settings, cache_dir=cache_dir, progress=progress)
        target = out / f"{name}.pt"
        save_cache(target, loaded)
        logging.getLogger("compass.data").info("%s: %s", target, loaded.survival.summary())
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    params = [
        click.Argument(["roots"], nargs=-1, required=True, type=PATH),
        click.Option(["--out"], required=True, type=PATH, help="folder for <root name>.pt"),
        click.Option(["--exclude-ids"], type=PATH, help="id list to copy beside them (CASF-2016 core ids)"),
        click.Option(
            ["--cache-dir"], type=PATH, default=Path(".cache/compass"), show_default=True, help="featurisation cache"
        ),
        click.Option(["--no-progress"], is_flag=True),
    ]
    help = __doc__.splitlines()[0] + "\n\nROOTS: data roots (folders or .pt caches)."
    args = SimpleNamespace(**parse(command("python -m compass.data.pack", params, help), argv).params)
    args.roots = list(args.roots)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    missing = [str(r) for r in [*args.roots, *([args.exclude_ids] if args.exclude_ids else [])] if not r.exists()]
    if missing:
        print(f"compass.data.pack: not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        written = pack_roots(args.roots, args.out, FeatureSettings(), args.cache_dir, progress=not args.no_progress)
    except ValueError as exc:
        print(f"compass.data.pack: {exc}", file=sys.stderr)
        return 2
    if args.exclude_ids:
        shutil.copyfile(args.exclude_ids, args.out / EXCLUDE_IDS_NAME)
        written.append(args.out / EXCLUDE_IDS_NAME)
    for path in written:
        print(f"{path}  {path.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
