"""What a /predict body may look like, turned into one complex to featurise (or a clear 400).

Multipart: files ``protein`` (PDB or PDBQT) and ``ligand`` (SDF, MOL2 or PDBQT; format from the
file name, else ``ligand_format``, else sniffed), optional fields ``ligand_index``,
``ligand_format``, ``protein_format``. JSON: ``protein_pdb`` (or ``protein_pdbqt``) and one of
``ligand_sdf``, ``ligand_mol2``, ``ligand_pdbqt`` holding the files' text, optional
``ligand_index``. Structures arrive as content, never as paths on the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from compass.data import FeatureSettings, StructureError, featurize_texts
from compass.data.graph import ComplexGraph
from services.common.envelope import ApiError, ErrorCode
from services.worker.model import UploadedFile

LIGAND_FORMATS = ("sdf", "mol2", "pdbqt")
PROTEIN_FORMATS = ("pdb", "pdbqt")
MAX_LIGAND_INDEX = 100_000
# The JSON form of a /predict body, for /openapi.json (multipart uses files "protein" and "ligand").
PREDICT_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "protein_pdb": {"type": "string", "description": "protein or pocket, PDB text"},
        "protein_pdbqt": {"type": "string"},
        "ligand_sdf": {"type": "string", "description": "ligand in its bound pose, SDF text"},
        "ligand_mol2": {"type": "string"},
        "ligand_pdbqt": {"type": "string"},
        "ligand_index": {"type": "integer", "minimum": 0, "description": "SDF record (default 0)"},
    },
}


@dataclass(frozen=True)
class ComplexInput:
    protein_text: str
    protein_format: str
    ligand_text: str
    ligand_format: str
    ligand_index: int = 0


def sniff_ligand_format(text: str) -> str | None:
    """Recognise a ligand file by its content when no name or field says what it is."""
    if "@<TRIPOS>" in text:
        return "mol2"
    if "$$$$" in text or "M  END" in text or "V2000" in text or "V3000" in text:
        return "sdf"
    if "ROOT" in text and ("HETATM" in text or "ATOM" in text):
        return "pdbqt"
    return None


def _text(value: Any, field: str, max_bytes: int) -> tuple[str, str | None]:
    """The text of a field (string or uploaded file) and the file's suffix, if any."""
    if isinstance(value, UploadedFile):
        if len(value.data) > max_bytes:
            raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, f"{field}: {len(value.data)} bytes (limit {max_bytes})")
        suffix = PurePath(value.filename or "").suffix.lower().lstrip(".") or None
        return value.text(), suffix
    if not isinstance(value, str) or not value.strip():
        raise ApiError(ErrorCode.INVALID_REQUEST, f"{field} must be a non-empty file or string")
    if len(value.encode()) > max_bytes:
        raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, f"{field} exceeds {max_bytes} bytes")
    return value, None


def _ligand_index(value: Any) -> int:
    """A whole record number: an int, a whole float (JSON ``3.0``) or a string of digits (multipart).

    Never rounded: ``1.9`` or ``"1e2"`` is refused rather than quietly read as another record.
    """
    if value is None or value == "":
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(ErrorCode.INVALID_REQUEST, f"ligand_index must be a whole number, got {value!r}")
    if not 0 <= value <= MAX_LIGAND_INDEX:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"ligand_index must be between 0 and {MAX_LIGAND_INDEX}")
    return value


def _choice(value: Any, choices: tuple[str, ...], field: str) -> str | None:
    if value is None or value == "":
        return None
    text = str(value).lower().lstrip(".")
    if text not in choices:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"{field} must be one of {', '.join(choices)}, got {value!r}")
    return text


def parse_complex(payload: dict[str, Any], max_bytes: int) -> ComplexInput:
    """One complex from a multipart or JSON body; INVALID_REQUEST names what is missing or wrong."""
    index = _ligand_index(payload.get("ligand_index"))
    protein_format = _choice(payload.get("protein_format"), PROTEIN_FORMATS, "protein_format")
    ligand_format = _choice(payload.get("ligand_format"), LIGAND_FORMATS, "ligand_format")
    if "protein" in payload:
        protein, suffix = _text(payload["protein"], "protein", max_bytes)
        protein_format = protein_format or ("pdbqt" if suffix == "pdbqt" else "pdb")
    else:
        key = next((k for k in ("protein_pdb", "protein_pdbqt") if k in payload), None)
        if key is None:
            raise ApiError(ErrorCode.INVALID_REQUEST, "missing the protein: a 'protein' file or 'protein_pdb' text")
        protein, _ = _text(payload[key], key, max_bytes)
        protein_format = protein_format or key.removeprefix("protein_")
    if "ligand" in payload:
        ligand, suffix = _text(payload["ligand"], "ligand", max_bytes)
        ligand_format = ligand_format or (suffix if suffix in LIGAND_FORMATS else None) or sniff_ligand_format(ligand)
        if ligand_format is None:
            raise ApiError(ErrorCode.INVALID_REQUEST, "cannot tell the ligand format: name the file .sdf/.mol2/.pdbqt")
    else:
        keys = [k for k in ("ligand_sdf", "ligand_mol2", "ligand_pdbqt") if k in payload]
        if len(keys) != 1:
            raise ApiError(
                ErrorCode.INVALID_REQUEST, "give exactly one ligand: a 'ligand' file, or 'ligand_sdf' or 'ligand_mol2'"
            )
        ligand, _ = _text(payload[keys[0]], keys[0], max_bytes)
        ligand_format = ligand_format or keys[0].removeprefix("ligand_")
    return ComplexInput(protein, protein_format, ligand, ligand_format, index)


def featurize(inp: ComplexInput, settings: FeatureSettings) -> tuple[ComplexGraph, list[str]]:
    """The complex as the model's graph; INVALID_STRUCTURE with RDKit's reason when it cannot be read."""
    try:
        return featurize_texts(
            inp.protein_text,
            inp.ligand_text,
            inp.ligand_format,
            settings,
            protein_format=inp.protein_format,
            ligand_index=inp.ligand_index,
        )
    except StructureError as exc:
        raise ApiError(ErrorCode.INVALID_STRUCTURE, str(exc)) from None
    except (ValueError, RuntimeError, IndexError, KeyError) as exc:  # a parser's complaint is still the file's fault
        raise ApiError(ErrorCode.INVALID_STRUCTURE, f"unreadable structure: {type(exc).__name__}: {exc}") from None
