"""``python -m compass.data.pack --out DIR ROOT...``: featurised roots as stable-named ``.pt`` files.

A GPU machine has no RDKit and no ``../shared``: featurise here, write ``DIR/<root name>.pt`` for
each root (a ``.pt`` cache is a data root by itself) plus, with ``--exclude-ids``, a copy of the
id list as ``DIR/exclude_ids.txt``, and carry ``DIR``. ``compass/weights/plans/compass-gpu.json``
names exactly these files.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from compass.data.dataset import load_root, save_cache
from compass.data.graph import FeatureSettings

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
    parser = argparse.ArgumentParser(prog="python -m compass.data.pack", description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", type=Path, help="data roots (folders or .pt caches)")
    parser.add_argument("--out", required=True, type=Path, help="folder for <root name>.pt")
    parser.add_argument("--exclude-ids", type=Path, help="id list to copy beside them (CASF-2016 core ids)")
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/compass"), help="featurisation cache")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
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
