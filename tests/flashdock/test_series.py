"""A protein plus one SDF of many ligands: one row per ligand named by its own record, experimental values from
the SD tag the user picks, Spearman/Pearson, a scatter that does not start at 0, and the ranking (AppTest).

The series is TYK2 from the FEP+ benchmark in ../shared/data (the test skips without it).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import requests

from flashdock.series import RT_LN10_KCAL, split_sdf
from tests.flashdock.apptest import by_label, open_page, texts
from tests.support import shared_data

N_LIGANDS = 6  # enough for a rank correlation, few enough to keep the test quick


def tyk2() -> tuple[bytes, bytes]:
    """TYK2 from the FEP+ benchmark: the protein and the first ligands of its series (ΔG in the r_exp_dg tag)."""
    folder = shared_data("fep", "jacs_set", "tyk2")
    ligands = split_sdf((folder / "tyk2_ligands.sdf").read_text())[:N_LIGANDS]
    return (folder / "tyk2_protein.pdb").read_bytes(), "".join(lig.block for lig in ligands).encode()


def direct_pks(fleet: dict[str, Any], protein: bytes, sdf: bytes) -> list[float]:
    out = []
    for lig in split_sdf(sdf.decode()):
        files = {"protein": ("p.pdb", protein), "ligand": ("l.sdf", lig.block.encode())}
        resp = requests.post(fleet["lite"].base_url + "/predict", files=files, timeout=30)
        out.append(float(resp.json()["data"]["pK"]))
    return out


def test_a_series_sdf_gives_one_named_row_per_ligand_and_agreement_with_experiment(fleet: dict[str, Any]) -> None:
    protein, sdf = tyk2()
    names = [lig.name for lig in split_sdf(sdf.decode())]
    at = open_page("predict")
    by_label(at.radio, "Complex").set_value("Upload").run()
    by_label(at.file_uploader, "Protein (PDB or PDBQT)").set_value(("tyk2.pdb", protein, "text/plain"))
    by_label(at.file_uploader, "Ligands (SDF with one or many molecules, MOL2 or PDBQT)").set_value(
        ("series.sdf", sdf, "chemical/x-mdl-sdfile")
    )
    at.run()
    assert f"{N_LIGANDS} ligands in `series.sdf`: one prediction each." in texts(at)
    by_label(at.button, "Predict").click().run(timeout=90)
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert f"{N_LIGANDS} of {N_LIGANDS} ligands scored." in texts(at), list(table["error"])
    assert list(table["ligand"]) == names, "rows must carry each record's own name"
    assert len(set(names)) == N_LIGANDS and "tyk2" not in " ".join(names), "never the protein's file name"
    assert list(table["pK"]) == pytest.approx(direct_pks(fleet, protein, sdf), abs=0.001)
    assert table["experimental pK"].isna().all(), "no experimental value before a tag is chosen"

    by_label(at.selectbox, "Experimental value (SD tag)").set_value("r_exp_dg").run()
    assert by_label(at.selectbox, "Unit of that tag").value == "ΔG (kcal/mol)"
    table = at.dataframe[0].value
    first = split_sdf(sdf.decode())[0]
    expected_pk = -float(first.tags["r_exp_dg"]) / RT_LN10_KCAL
    assert table.set_index("ligand").loc[first.name, "experimental pK"] == pytest.approx(expected_pk, abs=0.01)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Ligands with both values"] == str(N_LIGANDS)
    expected = table[["pK", "experimental pK"]].astype(float)
    for label, method in (("Spearman ρ", "spearman"), ("Pearson r", "pearson")):
        value = expected.corr(method).iloc[0, 1]  # NaN when the tiny test model gives every ligand one pK
        assert metrics[label] == ("n/a" if math.isnan(value) else f"{value:.2f}"), (label, metrics[label], value)

    charts = [c.proto.spec for c in at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")]
    assert len(charts) >= 2, "the scatter and the ranking are missing"
    assert '"zero":false' in charts[0].replace(" ", ""), "a one-log-unit series must not look flat"

    by_label(at.selectbox, "Ligand to inspect").set_value(f"3. {names[2]}").run()
    assert f'"{names[2]}' in at.get("iframe")[0].proto.srcdoc, "the 3D view must show the chosen ligand"
