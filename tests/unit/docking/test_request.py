"""A /dock body checked into a DockRequest; errors keep the envelope's codes across processes."""

from __future__ import annotations

import pickle

import pytest

from docking import request as dock_request
from docking.errors import DockingError, api_error
from docking.settings import DockSettings
from services.worker.model import UploadedFile
from tests.support import REPO

PROTEIN = (REPO / "examples" / "complexes" / "1o3f" / "1o3f_pocket.pdb").read_text()
BASE = {"protein_pdb": PROTEIN, "ligand_smiles": "CCO", "box": {"center": [0, 0, 0], "size": [10, 10, 10]}}


def test_defaults_and_multipart_fields() -> None:
    req = dock_request.parse(BASE, DockSettings())
    assert (req.params.exhaustiveness, req.params.n_poses, req.params.seed, req.ph) == (8, 9, 0, 7.4)
    form = {
        "protein": UploadedFile("p.pdb", "text/plain", PROTEIN.encode()),
        "ligand": UploadedFile("x.smi", "text/plain", b"c1ccccc1O phenol\n"),
        "box": '{"center": [1, 2, 3], "size": [10, 10, 10]}',
        "exhaustiveness": "2",
        "score": "false",
    }
    req = dock_request.parse(form, DockSettings())
    assert req.ligand_smiles == "c1ccccc1O" and req.params.exhaustiveness == 2 and req.score is False
    assert req.box == {"center": [1, 2, 3], "size": [10, 10, 10]}


def test_no_box_means_pocket_detection() -> None:
    req = dock_request.parse({**BASE, "box": None}, DockSettings())
    assert req.box is None


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"protein_pdb": " "}, "protein_pdb"),
        ({"exhaustiveness": 0}, "between 1 and 64"),
        ({"exhaustiveness": 2.5}, "integer"),
        ({"n_poses": True}, "integer"),
        ({"ring_conformers": 9}, "'ring_conformers' must be between 1 and 8"),
        ({"ring_conformers": 0}, "between 1 and 8"),
        ({"ring_conformers": 1.5}, "integer"),
        ({"ph": 15}, "between 0 and 14"),
        ({"score": "maybe"}, "true or false"),
        ({"box": "[1, 2"}, "JSON object"),
        ({"ligand_smiles": None}, "exactly one"),
    ],
)
def test_bad_fields(change: dict, words: str) -> None:
    with pytest.raises(DockingError, match=words):
        dock_request.parse({**BASE, **change}, DockSettings())


def test_ring_conformers_default_cap_and_envelope() -> None:
    assert dock_request.parse(BASE, DockSettings()).params.ring_conformers == 1
    assert dock_request.parse({**BASE, "ring_conformers": "4"}, DockSettings()).params.ring_conformers == 4
    with pytest.raises(DockingError) as info:
        dock_request.parse({**BASE, "ring_conformers": 3}, DockSettings(max_ring_conformers=2))
    assert info.value.code == "INVALID_REQUEST" and "between 1 and 2" in info.value.details
    api = api_error(info.value)
    assert api.status == 400 and api.code.value == "INVALID_REQUEST"


def test_size_cap() -> None:
    with pytest.raises(DockingError, match="cap"):
        dock_request.parse(BASE, DockSettings(max_structure_bytes=100))


def test_error_pickles_and_maps_to_the_envelope() -> None:
    err = pickle.loads(pickle.dumps(DockingError("INVALID_SMILES", "bad")))
    assert (err.code, err.details) == ("INVALID_SMILES", "bad")
    api = api_error(err)
    assert api.status == 400 and api.code.value == "INVALID_SMILES"
    assert api_error(DockingError("INVALID_STRUCTURE", "x")).code.value == "INVALID_STRUCTURE"
    with pytest.raises(ValueError):
        DockingError("NOPE", "x")
