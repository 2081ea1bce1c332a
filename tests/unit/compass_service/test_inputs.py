"""/predict bodies: which fields mean what, and a clear INVALID_REQUEST for everything else."""

from __future__ import annotations

import pytest

from compass.service.inputs import parse_complex, sniff_ligand_format
from services.common.envelope import ApiError
from services.worker.model import UploadedFile

SDF = "x\n  RDKit\n\n  1  0  0  0  0  0  0  0  0  0999 V2000\nM  END\n$$$$\n"
MOL2 = "@<TRIPOS>MOLECULE\nx\n"


def test_the_format_comes_from_the_key_the_file_name_the_field_or_the_content() -> None:
    assert parse_complex({"protein_pdb": "ATOM", "ligand_mol2": MOL2}, 1000).ligand_format == "mol2"
    upload = {"protein": UploadedFile("p.pdbqt", "", b"ATOM"), "ligand": UploadedFile("lig.sdf", "", SDF.encode())}
    parsed = parse_complex({**upload, "ligand_index": "2"}, 1000)
    assert (parsed.protein_format, parsed.ligand_format, parsed.ligand_index) == ("pdbqt", "sdf", 2)
    unnamed = {"protein": UploadedFile("p", "", b"ATOM"), "ligand": UploadedFile("blob", "", MOL2.encode())}
    assert parse_complex(unnamed, 1000).ligand_format == "mol2"
    assert parse_complex({**unnamed, "ligand_format": "SDF"}, 1000).ligand_format == "sdf"
    assert sniff_ligand_format("nothing") is None


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"ligand_sdf": SDF}, "INVALID_REQUEST"),
        ({"protein_pdb": "ATOM"}, "INVALID_REQUEST"),
        ({"protein_pdb": "ATOM", "ligand_sdf": SDF, "ligand_mol2": MOL2}, "INVALID_REQUEST"),
        ({"protein_pdb": "", "ligand_sdf": SDF}, "INVALID_REQUEST"),
        ({"protein_pdb": "ATOM", "ligand_sdf": SDF, "ligand_index": -1}, "INVALID_REQUEST"),
        ({"protein_pdb": "ATOM", "ligand_sdf": SDF, "ligand_index": "one"}, "INVALID_REQUEST"),
        ({"protein_pdb": "ATOM", "ligand_sdf": SDF, "ligand_format": "xyz"}, "INVALID_REQUEST"),
        ({"protein_pdb": "ATOM", "ligand": UploadedFile("l", "", b"???")}, "INVALID_REQUEST"),
        ({"protein_pdb": "A" * 2000, "ligand_sdf": SDF}, "PAYLOAD_TOO_LARGE"),
    ],
)
def test_bad_bodies_say_what_is_wrong(payload: dict, code: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_complex(payload, 1000)
    assert err.value.code.value == code
