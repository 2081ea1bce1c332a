"""Search boxes: from a reference, residues or centre and size; the caps; pocket detection."""

from __future__ import annotations

import numpy as np
import pytest

from docking import box as bx
from docking import receptor as rec
from docking.errors import DockingError
from tests.support import REPO

PROTEIN = (REPO / "examples" / "complexes" / "1o3f" / "1o3f_pocket.pdb").read_text()


def test_around_pads_every_side_and_keeps_a_minimum() -> None:
    box = bx.around(np.array([[0.0, 0.0, 0.0], [10.0, 2.0, 4.0]]), 4.0)
    assert box.center == (5.0, 1.0, 2.0) and box.size == (18.0, 10.0, 12.0)
    assert bx.around(np.zeros((1, 3)), 0.0).size == (bx.MIN_SIDE,) * 3
    assert box.contains(np.array([[13.9, 1.0, 2.0]])) and not box.contains(np.array([[14.1, 1.0, 2.0]]))


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"center": [0, 0, 0], "size": [40.5, 10, 10]}, "cap of 40"),
        ({"center": [0, 0], "size": [10, 10, 10]}, "three numbers"),
        ({"center": [0, 0, "x"], "size": [10, 10, 10]}, "three numbers"),
        ({"center": [0, 0, float("nan")], "size": [10, 10, 10]}, "finite"),
        ({"residues": ["A:1"], "padding": 50}, "padding"),
        ({"residues": ["not a residue!"]}, "of the form"),
        ({}, "needs reference_ligand_sdf"),
    ],
)
def test_bad_boxes(spec: dict, words: str) -> None:
    atoms = rec.parse_pdb(PROTEIN, 100_000)
    with pytest.raises(DockingError, match=words):
        bx.check(bx.from_spec(spec, atoms, None), 40.0)


def test_box_from_residues_covers_their_atoms() -> None:
    atoms = rec.parse_pdb(PROTEIN, 100_000)
    chain, number = atoms[0].chain, atoms[0].resseq
    box = bx.from_residues(atoms, [f"{chain}:{number}"], 2.0)
    mine = rec.coordinates([a for a in atoms if a.chain == chain and a.resseq == number])
    assert box.contains(mine) and max(box.size) < 20


def test_no_detection_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bx, "detection_available", lambda: False)
    with pytest.raises(DockingError, match="pocket detection is not available"):
        bx.require_detection()
