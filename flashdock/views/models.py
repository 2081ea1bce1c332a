"""Models: every model a COMPASS service knows, its metrics and model card; activate; download."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from flashdock import compass_api as api
from flashdock.ui import attempt, compass_page

mesh, service = compass_page("Models")
listing = attempt(lambda: api.list_models(mesh, service), "Listing models")
if listing is None:
    st.stop()  # the reason is on the page already
if not listing["items"]:
    st.info("No model yet: train one on the Training page.")
    st.stop()
active = (listing.get("active") or {}).get("id")
st.markdown(f"Active on **{service}**: `{active or 'none'}`")
rows = []
for m in listing["items"]:
    met = m.get("metrics") or {}
    casf = met.get("casf2016") if isinstance(met.get("casf2016"), dict) else {}
    rows.append(
        {
            "id": m["id"],
            "active": "✓" if m["id"] == active else "",
            "kind": m["kind"],
            "name": m.get("name"),
            "val_rmse": met.get("val_rmse"),
            "val_pearson": met.get("val_pearson"),
            "casf_pearson": casf.get("pearson"),
            "casf_rmse": casf.get("rmse"),
            "n_train": met.get("n_train"),
            "job": m.get("job_id") or m.get("source"),
            "MB": round(m.get("size_bytes", 0) / 1e6, 2),
        }
    )
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")

ids = [m["id"] for m in listing["items"]]
chosen = st.selectbox("Model", ids, index=ids.index(active) if active in ids else 0)  # the served one first
detail = attempt(lambda: api.model(mesh, service, chosen), "Reading the model")
if detail:
    with st.expander("Model card", expanded=True):
        st.markdown(detail.get("model_card") or "_No model card._")
left, right = st.columns(2)
if left.button("Activate", type="primary", disabled=chosen == active, width="stretch"):
    with st.spinner("Loading the model on the worker…"):
        done = attempt(lambda: api.activate_model(mesh, service, chosen), "Activation")
    if done is not None:
        st.success(f"{chosen} is now served by {service}.")
if right.button("Prepare download", width="stretch"):
    got = attempt(lambda: api.download_model(mesh, service, chosen), "Download")
    if got:
        st.download_button(f"Save {chosen} ({len(got[0]) / 1e6:.1f} MB)", got[0], f"{service}-{chosen}.bin")
