"""Predict affinity: one complex (upload or example) with a result card and 3D view, or a zip batch."""

from __future__ import annotations

import io

import altair as alt
import pandas as pd
import streamlit as st

from compass.units import kd_from_pk
from flashdock.client import get_mesh
from flashdock.mesh import MODEL_CHOICES
from flashdock.pairs import Pair, examples, zip_pairs
from flashdock.trust import trust_panel
from flashdock.ui import explain, registry_banner, served_by
from flashdock.viewer import complex_html

st.title("Predict affinity")
registry_banner()
mesh = get_mesh()
model = st.radio("Model", list(MODEL_CHOICES), horizontal=True, help="auto: COMPASS, falling back to compass-lite")
single, batch = st.tabs(["Single complex", "Batch (zip of pairs)"])


def result_card(pair: Pair, data: dict, result) -> None:
    """The answer, who gave it, and the complex in 3D."""
    pk = float(data["pK"])
    with st.container(border=True):
        cols = st.columns(4)
        cols[0].metric("pK", f"{pk:.2f}")
        cols[1].metric("Kd equivalent", kd_from_pk(pk))
        cols[2].metric("Model", f"{data.get('model', result.model)}")
        cols[3].metric("Latency", f"{result.latency_ms:.0f} ms")
        st.caption(f"{pair.name} · version `{data.get('model_version', '?')}` · " + served_by(result))
        trust_panel(data)
        if result.fallback_used:
            st.warning(f"Fallback used: no usable {MODEL_CHOICES[model][0]} worker, so {result.service} answered.")
    # Safe to embed: the HTML holds only numbers and fixed colours parsed from the files, never their text.
    st.iframe(
        complex_html(pair.protein[1].decode(errors="replace"), pair.ligand[1].decode(errors="replace")), height=440
    )


with single:
    source = st.radio("Complex", ["Example", "Upload"], horizontal=True)
    pair: Pair | None = None
    if source == "Example":
        shipped = examples()
        if shipped:
            name = st.selectbox("Example complex", list(shipped))
            pair = shipped[name]
        else:
            st.warning("No example complexes found under examples/complexes.")
    else:
        protein = st.file_uploader("Protein (PDB or PDBQT)", type=["pdb", "pdbqt"])
        ligand = st.file_uploader("Ligand (SDF, MOL2 or PDBQT)", type=["sdf", "mol2", "pdbqt"])
        if protein and ligand:
            pair = Pair(protein.name, (protein.name, protein.getvalue()), (ligand.name, ligand.getvalue()))
    if st.button("Predict", type="primary", disabled=pair is None) and pair is not None:
        with st.spinner("Scoring the complex…"):
            try:
                res = mesh.predict_complex(model, pair.protein, pair.ligand)
                st.session_state["predict_last"] = (pair, res.data, res)
            except Exception as exc:
                st.session_state.pop("predict_last", None)
                st.error(f"Prediction failed. {explain(exc)}")
    if "predict_last" in st.session_state:
        result_card(*st.session_state["predict_last"])

with batch:
    upload = st.file_uploader("Zip of pairs (<id>_pocket.pdb + <id>_ligand.sdf)", type=["zip"], key="batch_zip")
    if upload is not None and st.button("Run batch", type="primary"):
        try:
            pairs, unpaired = zip_pairs(upload.getvalue())
        except ValueError as exc:
            st.error(f"Bad file: {exc}")
            pairs, unpaired = [], []
            st.session_state.pop("batch_rows", None)  # the table below must not pass for this file's results
        if unpaired:
            st.warning(f"Skipped files without a partner: {', '.join(unpaired[:10])}")
        rows = []
        bar = st.progress(0.0, text=f"0 / {len(pairs)}") if pairs else None
        for n, item in enumerate(pairs, 1):
            try:
                res = mesh.predict_complex(model, item.protein, item.ligand)
                pk = float(res.data["pK"])
                rows.append(
                    {
                        "complex": item.name,
                        "pK": round(pk, 3),
                        "80% low": (res.data.get("interval") or {}).get("low"),
                        "80% high": (res.data.get("interval") or {}).get("high"),
                        "Kd": kd_from_pk(pk),
                        "model": res.data.get("model"),
                        "instance": res.instance,
                        "fallback": res.fallback_used,
                        "ms": round(res.latency_ms),
                        "error": "",
                    }
                )
            except Exception as exc:
                rows.append({"complex": item.name, "pK": None, "error": explain(exc)})
            if bar is not None:
                bar.progress(n / len(pairs), text=f"{n} / {len(pairs)}")
        if rows:
            st.session_state["batch_rows"] = rows
    if rows := st.session_state.get("batch_rows"):
        frame = pd.DataFrame(rows)
        ok = frame[frame["pK"].notna()]
        st.success(f"{len(ok)} of {len(frame)} complexes scored.")
        st.dataframe(frame, hide_index=True, width="stretch")
        buf = io.StringIO()
        frame.to_csv(buf, index=False)
        st.download_button("Download CSV", buf.getvalue(), "flashdock_predictions.csv", "text/csv")
        if not ok.empty:
            st.altair_chart(alt.Chart(ok).mark_bar().encode(x=alt.X("complex:N", sort="-y"), y="pK:Q"), width="stretch")
