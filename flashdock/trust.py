"""How far to trust a predicted pK: the model's interval and its applicability-domain read-out, as a panel."""

from __future__ import annotations

import streamlit as st

OUTSIDE_TANIMOTO = 0.3  # below this, and with an unseen protein, the complex is unlike the training data


def trust_panel(data: dict) -> None:
    """How far to trust the number: the model's interval and whether the complex is like its training data."""
    interval, domain = data.get("interval"), data.get("domain")
    if not interval and not domain:
        st.caption("This model gives no interval or applicability-domain read-out.")
        return
    cols = st.columns(3)
    if interval:
        cols[0].metric(
            f"{interval['level']:.0%} interval (pK)",
            f"{interval['low']:.1f} – {interval['high']:.1f}",
            help="Split-conformal interval calibrated on protein-grouped cross-validation: about this share of "
            "complexes like the training data fall inside it.",
        )
    if domain:
        similarity, nearest_id = domain.get("nearest_ligand_similarity"), domain.get("nearest_ligand_id")
        cols[1].metric(
            "Nearest training ligand",
            f"{similarity:.2f}" if nearest_id else "n/a",
            help="Tanimoto similarity (Morgan bits) to the most similar ligand the model was trained on"
            + (f": {nearest_id}" if nearest_id else "; " + str(domain.get("ligand_note") or "")),
        )
        count = domain.get("training_complexes_for_protein")
        cols[2].metric(
            "Protein seen in training",
            str(domain.get("protein_seen", "unknown")),
            help=str(domain.get("protein_seen_by") or "no sequence match and no UniProt entry in the file (DBREF)"),
        )
        if count:
            st.caption(f"{count} training complexes of this protein.")
        if nearest_id and similarity < OUTSIDE_TANIMOTO and domain.get("protein_seen") != "yes":
            st.warning("Outside the model's domain: neither the ligand nor the protein resembles its training data.")
