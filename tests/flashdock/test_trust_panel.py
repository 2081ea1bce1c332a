"""The Predict page's trust panel: interval, nearest training ligand, protein seen; a warning out of domain."""

from __future__ import annotations

from typing import Any

from streamlit.testing.v1 import AppTest


def panel(data: dict[str, Any]) -> AppTest:
    def app(data: dict) -> None:  # the source runs on its own: only builtins in annotations
        from flashdock.trust import trust_panel

        trust_panel(data)

    return AppTest.from_function(app, kwargs={"data": data}).run()


def test_panel_shows_interval_and_domain() -> None:
    at = panel(
        {
            "pK": 6.2,
            "interval": {"level": 0.8, "low": 4.4, "high": 8.0},
            "domain": {
                "nearest_ligand_similarity": 0.71,
                "nearest_ligand_id": "pdbbind/1abc",
                "protein_seen": "yes",
                "protein_seen_by": "UniProt P00734 (DBREF)",
                "training_complexes_for_protein": 175,
            },
        }
    )
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["80% interval (pK)"] == "4.4 – 8.0"
    assert metrics["Nearest training ligand"] == "0.71" and metrics["Protein seen in training"] == "yes"
    assert any("175 training complexes" in c.value for c in at.caption)
    assert not at.warning


def test_panel_warns_outside_the_domain_and_says_when_a_model_gives_nothing() -> None:
    at = panel(
        {
            "interval": {"level": 0.8, "low": 3.0, "high": 6.6},
            "domain": {"nearest_ligand_similarity": 0.12, "nearest_ligand_id": "x", "protein_seen": "no"},
        }
    )
    assert at.warning and "Outside the model's domain" in at.warning[0].value
    bare = panel({"pK": 5.0})
    assert not bare.metric and "no interval" in bare.caption[0].value
