"""A docking request: the body of ``POST /dock`` (JSON or multipart) checked into a :class:`DockRequest`,
and :func:`run`, which does the docking of one request (in whatever process calls it).

Every check that can fail on the input happens here, before Vina starts, and fails with a
:class:`~docking.errors.DockingError` naming the field and the cap.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rdkit import Chem

from docking import box as bx
from docking import engine
from docking import ligand as lig
from docking import receptor as rec
from docking.errors import INVALID_REQUEST, INVALID_STRUCTURE, DockingError
from docking.settings import DockSettings


@dataclass(frozen=True)
class DockRequest:
    """What one docking needs, already validated (texts within their size caps, numbers within theirs)."""

    protein_pdb: str
    ligand_smiles: str | None
    ligand_sdf: str | None
    ligand_index: int
    box: dict[str, Any] | None  # None: detect a pocket
    reference_sdf: str | None
    params: engine.DockParams
    ph: float | None
    receptor: rec.ReceptorOptions
    score: bool
    name: str
    randomize: bool = False  # re-embed an SDF ligand first (benchmarks: never start from the answer)
    extra: dict[str, Any] = field(default_factory=dict)


def _text(payload: dict[str, Any], key: str, max_bytes: int) -> str | None:
    """A text field, or the text of a multipart file of that name."""
    value = payload.get(key)
    if value is None:
        return None
    if hasattr(value, "data") and hasattr(value, "filename"):  # an UploadedFile
        if len(value.data) > max_bytes:
            raise DockingError(INVALID_REQUEST, f"file '{key}' has {len(value.data)} bytes; the cap is {max_bytes}")
        try:
            return value.data.decode("utf-8")
        except UnicodeDecodeError:
            raise DockingError(INVALID_REQUEST, f"file '{key}' is not UTF-8 text") from None
    if not isinstance(value, str):
        raise DockingError(INVALID_REQUEST, f"'{key}' must be a string")
    if len(value.encode()) > max_bytes:
        raise DockingError(INVALID_REQUEST, f"'{key}' has more than {max_bytes} bytes (the cap)")
    return value


def _int(payload: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    raw = payload.get(key, default)
    try:
        value = int(raw)
        if (isinstance(raw, float) and raw != value) or isinstance(raw, bool):
            raise ValueError
    except (TypeError, ValueError):
        raise DockingError(INVALID_REQUEST, f"'{key}' must be an integer") from None
    if not lo <= value <= hi:
        raise DockingError(INVALID_REQUEST, f"'{key}' must be between {lo} and {hi} (got {value})")
    return value


def _bool(payload: dict[str, Any], key: str, default: bool) -> bool:
    raw = payload.get(key, default)
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "false", "1", "0", "yes", "no"):
        return raw.lower() in ("true", "1", "yes")
    raise DockingError(INVALID_REQUEST, f"'{key}' must be true or false")


def _ph(payload: dict[str, Any]) -> float | None:
    raw = payload.get("ph", 7.4)
    if raw is None:
        return None
    try:
        ph = float(raw)
    except (TypeError, ValueError):
        raise DockingError(INVALID_REQUEST, "'ph' must be a number (or null to keep the SMILES' state)") from None
    if not 0 <= ph <= 14:
        raise DockingError(INVALID_REQUEST, "'ph' must be between 0 and 14")
    return ph


def _box_spec(payload: dict[str, Any], limit: int) -> tuple[dict[str, Any] | None, str | None]:
    """The box object (multipart sends it as JSON text) and the reference ligand's SDF, if any."""
    spec = payload.get("box")
    if isinstance(spec, str):
        try:
            spec = json.loads(spec) if spec.strip() else None
        except ValueError:
            raise DockingError(INVALID_REQUEST, "'box' must be a JSON object") from None
    if spec is not None and not isinstance(spec, dict):
        raise DockingError(INVALID_REQUEST, "'box' must be an object")
    spec = dict(spec or {})
    reference = _text(spec, "reference_ligand_sdf", limit) or _text(payload, "reference_ligand", limit)
    spec.pop("reference_ligand_sdf", None)
    if "padding" in payload and "padding" not in spec:
        spec["padding"] = payload["padding"]
    if reference is None and not ({"center", "size", "residues"} & spec.keys()):
        return None, None  # detect a pocket
    return spec, reference


def parse(payload: dict[str, Any], settings: DockSettings) -> DockRequest:
    """The request in ``payload`` (a /dock or /predict body), or a DockingError saying what is wrong."""
    if not isinstance(payload, dict):
        raise DockingError(INVALID_REQUEST, "the body must be an object")
    cap = settings.max_structure_bytes
    protein = _text(payload, "protein_pdb", cap) or _text(payload, "protein", cap)
    if not protein or not protein.strip():
        raise DockingError(INVALID_REQUEST, "'protein_pdb' (or a multipart file 'protein') is required")
    smiles = _text(payload, "ligand_smiles", cap)
    sdf = _text(payload, "ligand_sdf", cap)
    upload = payload.get("ligand")
    if upload is not None and smiles is None and sdf is None:
        text = _text(payload, "ligand", cap) or ""
        is_smi = str(getattr(upload, "filename", "")).lower().endswith((".smi", ".smiles", ".txt"))
        smiles, sdf = (text.split()[0] if text.split() else "", None) if is_smi else (None, text)
    if (smiles is None) == (sdf is None):
        raise DockingError(INVALID_REQUEST, "give exactly one of 'ligand_smiles' and 'ligand_sdf'")
    spec, reference = _box_spec(payload, cap)
    params = engine.DockParams(
        exhaustiveness=_int(payload, "exhaustiveness", 8, 1, settings.max_exhaustiveness),
        n_poses=_int(payload, "n_poses", 9, 1, settings.max_poses),
        seed=_int(payload, "seed", 0, 0, 2**31 - 2),  # Vina's seed is seed + 1, an int32
        cpu=settings.vina_cpu,
        ring_conformers=_int(payload, "ring_conformers", 1, 1, settings.max_ring_conformers),
    )
    options = rec.ReceptorOptions(
        ph=_ph(payload) or 7.4,
        keep_waters=_bool(payload, "keep_waters", False),
        keep_metals=_bool(payload, "keep_metals", True),
        keep_hetero=_bool(payload, "keep_hetero", False),
    )
    return DockRequest(
        protein_pdb=protein,
        ligand_smiles=smiles,
        ligand_sdf=sdf,
        ligand_index=_int(payload, "ligand_index", 0, 0, 100_000),
        box=spec,
        reference_sdf=reference,
        params=params,
        ph=_ph(payload),
        receptor=options,
        score=_bool(payload, "score", True),
        name=str(payload.get("name") or smiles or "")[:200],
        randomize=_bool(payload, "randomize", False),
    )


def reference_coordinates(sdf: str) -> np.ndarray:
    """Heavy-atom coordinates of the reference ligand (the first SDF record)."""
    records = lig.sdf_records(sdf) if "M  END" in sdf or "M END" in sdf else []
    mol = records[0] if records else None
    if mol is None or mol.GetNumConformers() == 0:
        raise DockingError(INVALID_STRUCTURE, "RDKit cannot read the reference ligand SDF")
    pos = mol.GetConformer().GetPositions()
    heavy = [a.GetAtomicNum() > 1 for a in mol.GetAtoms()]
    return pos[heavy] if any(heavy) else pos


def build_ligand(req: DockRequest, settings: DockSettings) -> Chem.Mol:
    caps = {"max_heavy_atoms": settings.max_heavy_atoms, "max_rotatable_bonds": settings.max_rotatable_bonds}
    if req.ligand_smiles is not None:
        return lig.from_smiles(req.ligand_smiles, ph=req.ph, seed=req.params.seed, **caps)
    mol = lig.from_sdf(req.ligand_sdf or "", index=req.ligand_index, **caps)
    return lig.randomize(mol, req.params.seed) if req.randomize else mol


def resolve_box(
    req: DockRequest, settings: DockSettings, atoms: list[rec.PdbAtom], receptor: rec.Receptor
) -> tuple[bx.Box, str, list[dict[str, Any]] | None]:
    """The checked box, where it came from, and the detected pockets when detection chose it."""
    if req.box is None:
        pockets = bx.detect_pockets(receptor.pdb)
        if not pockets:
            raise DockingError(INVALID_REQUEST, "no box given and no pocket was detected: give a box")
        best = pockets[0]
        size = tuple(min(s, settings.max_box_side) for s in best["size"])
        return bx.check(bx.Box(tuple(best["center"]), size), settings.max_box_side), "pocket", pockets  # type: ignore[arg-type]
    reference = reference_coordinates(req.reference_sdf) if req.reference_sdf else None
    source = "reference_ligand" if reference is not None else "residues" if "residues" in req.box else "center_size"
    if {"center", "size"} & req.box.keys():
        source = "center_size"
    return bx.check(bx.from_spec(req.box, atoms, reference), settings.max_box_side), source, None


def run(req: DockRequest, settings: DockSettings) -> dict[str, Any]:
    """Prepare (receptor from the cache when it is there), dock, and answer without affinity scores."""
    started = time.perf_counter()
    atoms = rec.parse_pdb(req.protein_pdb, settings.max_protein_atoms)
    mol = build_ligand(req, settings)  # bad ligands fail before the receptor is prepared
    t_ligand = time.perf_counter()
    receptor = rec.prepare(
        req.protein_pdb, req.receptor, receptor_cache(settings), max_atoms=settings.max_protein_atoms
    )
    t_receptor = time.perf_counter()
    box, source, pockets = resolve_box(req, settings, atoms, receptor)
    t_box = time.perf_counter()
    starts = engine.start_conformers(mol, req.params)
    t_starts = time.perf_counter()
    poses, timings = engine.dock(receptor, mol, box, req.params, starts=starts)
    name = req.name or (mol.GetProp("_Name") if mol.HasProp("_Name") else "")
    timings.update(ligand_3d=(t_ligand - started) * 1e3, receptor=(t_receptor - t_ligand) * 1e3)
    if req.params.ring_conformers > 1:
        timings["conformers"] = (t_starts - t_box) * 1e3
    timings["total"] = (time.perf_counter() - started) * 1e3
    return {
        "name": name,
        "smiles": Chem.MolToSmiles(Chem.RemoveHs(mol)),
        "poses": [{"rank": p.rank, "vina_score": round(p.vina_score, 3), "sdf": p.sdf(name)} for p in poses],
        "box": {**box.as_dict(), "source": source},
        "pockets": pockets,
        "receptor": {"key": receptor.key[:16], "cached": receptor.cached},
        "starts": len(starts),
        "params": {
            "exhaustiveness": req.params.exhaustiveness,
            "n_poses": req.params.n_poses,
            "seed": req.params.seed,
            "ring_conformers": req.params.ring_conformers,
            "ph": req.ph,
        },
        "timings_ms": {k: round(v, 1) for k, v in timings.items()},
    }


def receptor_cache(settings: DockSettings) -> Path:
    return settings.state_dir / "receptors"
