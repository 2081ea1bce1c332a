"""Index COMPASS's training ligands in the vector service, so a user can browse what the model has seen.

    python -m vectors.compass_ligands --registry http://127.0.0.1:8500 [--model compass/weights/compass-lite.skops]

The fingerprints are the model's own: the Morgan bits (radius 2, 2,048 bits) of every training
ligand, shipped inside the model file for its applicability-domain read-out, so the collection
holds exactly what the model compares a new ligand against. SMILES are added from the data
folder when its files are there (``--data-root``, DESIGN "Data"), for structure images.

COMPASS itself never calls this service: its predictions read the same index in-process, so
they do not depend on the vector service being up. Re-running upserts (same ids, same rows).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import click
import numpy as np
from tqdm import tqdm

from services.common.cli import command, options, parse
from services.common.settings import ClientSettings

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "compass" / "weights" / "compass-lite.skops"
DEFAULT_DATA = REPO.parent / "shared" / "data"
COLLECTION = "compass_training_ligands"
CHUNK = 500


def training_index(model_path: Path) -> tuple[list[str], np.ndarray]:
    """The model's ligand keys and their packed fingerprints (``np.packbits`` order, 2,048 bits)."""
    from compass.model.lite_format import load_lite

    domain = getattr(load_lite(model_path), "domain", None)
    if domain is None or not len(domain.fps):
        raise click.ClickException(f"{model_path} ships no training-ligand index")
    return list(domain.ligand_keys), np.asarray(domain.fps, dtype=np.uint8)


def smiles_of(keys: Sequence[str], data_root: Path) -> dict[str, str]:
    """SMILES of the keys whose file is in the data folder (``pdbbind/<id>``, ``fep/<group>/<series>/<n>``)."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    found: dict[str, str] = {}
    series: dict[Path, list[tuple[int, str]]] = {}
    for key in keys:
        parts = key.split("/")
        if parts[0] == "pdbbind" and len(parts) == 2:
            path = data_root / "pdbbind_features" / "ligands" / f"{parts[1]}.sdf"
            mol = Chem.MolFromMolFile(str(path)) if path.is_file() else None
            if mol is not None:
                found[key] = Chem.MolToSmiles(mol)
        elif parts[0] == "fep" and len(parts) == 4 and parts[3].isdigit():
            sdf = data_root / "fep" / parts[1] / parts[2] / f"{parts[2]}_ligands.sdf"
            series.setdefault(sdf, []).append((int(parts[3]), key))
    for sdf, wanted in series.items():
        if not sdf.is_file():
            continue
        records = list(Chem.SDMolSupplier(str(sdf)))
        for index, key in wanted:
            mol = records[index] if index < len(records) else None
            if mol is not None:
                found[key] = Chem.MolToSmiles(Chem.RemoveHs(mol))
    return found


def items(keys: Sequence[str], fps: np.ndarray, smiles: dict[str, str], model: str) -> Iterator[dict]:
    bits = np.unpackbits(fps, axis=1)  # the same (big-endian) order the model packed them in
    for key, row in zip(keys, bits, strict=True):
        metadata = {"source": key.split("/")[0], "model": model}
        if key in smiles:
            metadata["smiles"] = smiles[key]
        yield {"id": key, "vector": {"on_bits": np.flatnonzero(row).tolist()}, "metadata": metadata}


OPTIONS: list[click.Parameter] = [
    *options(ClientSettings, only=("registry_urls",)),
    click.Option(
        ["--model"],
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=DEFAULT_MODEL,
        show_default=True,
        help="COMPASS model file whose training-ligand index is indexed",
    ),
    click.Option(
        ["--data-root"],
        type=click.Path(path_type=Path),
        default=DEFAULT_DATA,
        show_default=True,
        help="data folder for SMILES (absent files: fingerprints only, no structure images)",
    ),
    click.Option(["--collection"], default=COLLECTION, show_default=True, help="collection name"),
    click.Option(["--limit"], type=click.IntRange(min=0), default=0, help="index only the first N ligands (0 = all)"),
    click.Option(["--transport"], type=click.Choice(["grpc", "rest"]), default="grpc", show_default=True),
    click.Option(
        ["--token"],
        envvar="VECTORS_API_TOKEN",
        default="",
        show_default=False,
        help="the vector worker's API token (env VECTORS_API_TOKEN)",
    ),
]


def main(argv: Sequence[str] | None = None) -> int:
    from services.client.errors import ClientError
    from services.client.grpc_router import GrpcRouter
    from vectors.client import VectorClient

    args = parse(command("python -m vectors.compass_ligands", OPTIONS, help=__doc__), argv).params
    logging.basicConfig(level="INFO", format="%(levelname)s %(message)s", stream=sys.stderr)
    if not args["registry_urls"]:
        raise click.UsageError("--registry (or REGISTRY_URL) is required")
    keys, fps = training_index(args["model"])
    if args["limit"]:
        keys, fps = keys[: args["limit"]], fps[: args["limit"]]
    smiles = smiles_of(keys, args["data_root"]) if args["data_root"].is_dir() else {}
    log.info("%d training ligands in %s, %d with SMILES", len(keys), args["model"].name, len(smiles))
    name = args["collection"]
    with GrpcRouter(args["registry_urls"], deadline_s=120) as router:
        client = VectorClient(router, transport=args["transport"], token=args["token"])
        try:
            if not client.has_collection(name):
                client.create_collection(
                    {
                        "name": name,
                        "dim": fps.shape[1] * 8,
                        "vector_type": "binary",
                        "description": f"COMPASS training ligands ({args['model'].name})",
                    }
                )
            limits = router.call("vector-search", "GET", "/model/info", fallbacks=[]).data["limits"]
            chunk = min(CHUNK, int(limits["max_items"]))  # the worker's own cap per request
            batch: list[dict] = []
            with tqdm(total=len(keys), unit="ligand", desc=name) as bar:
                for item in items(keys, fps, smiles, args["model"].stem):
                    batch.append(item)
                    if len(batch) == chunk:
                        client.upsert(name, batch)
                        bar.update(len(batch))
                        batch = []
                if batch:
                    client.upsert(name, batch)
                    bar.update(len(batch))
            rows = client.info(name)["row_count"]
        except ClientError as exc:
            log.error("%s", exc)
            return 1
    print(f"{name}: {rows} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
