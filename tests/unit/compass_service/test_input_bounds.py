"""Issue 18 item 10: inputs that used to be misread or crash the worker are refused with a 400."""

from __future__ import annotations

import pytest

from compass.data import FeatureSettings
from compass.service.inputs import featurize, parse_complex
from services.common.envelope import ApiError
from tests.support import shared_data

ATOM = "ATOM      1  N   ALA A   1      11.104  13.207   2.100  1.00  0.00           N\n"


@pytest.mark.parametrize("index", [1.9, "1.9", -0.5, "1e2", " 1", True, 2.5e9, float("nan")])
def test_a_ligand_index_that_is_not_a_whole_number_is_refused_not_rounded(index: object) -> None:
    with pytest.raises(ApiError) as err:
        parse_complex({"protein_pdb": ATOM, "ligand_sdf": "x", "ligand_index": index}, 10_000)
    assert err.value.code.value == "INVALID_REQUEST" and "ligand_index" in err.value.details


@pytest.mark.parametrize(("index", "read"), [(1, 1), ("2", 2), (3.0, 3), ("", 0), (None, 0)])
def test_whole_ligand_indexes_still_read(index: object, read: int) -> None:
    assert parse_complex({"protein_pdb": ATOM, "ligand_sdf": "x", "ligand_index": index}, 10_000).ligand_index == read


@pytest.mark.parametrize("line", ["ATOM  ", "ATOM      1  N   ALA A   1      11.104", "HETATM    1 FE"])
def test_a_short_atom_line_is_an_invalid_structure_not_a_crash(line: str) -> None:
    ligand = (shared_data("casf2016", "1a30") / "1a30_ligand.sdf").read_text()
    inp = parse_complex({"protein_pdb": ATOM + line + "\n" + ATOM, "ligand_sdf": ligand}, 10_000_000)
    with pytest.raises(ApiError) as err:
        featurize(inp, FeatureSettings())
    assert err.value.code.value == "INVALID_STRUCTURE" and "line 2" in err.value.details
