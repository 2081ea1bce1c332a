"""Models: every model a COMPASS service knows with its validated figure and model card; activate with care.

Activation is two steps: the candidate's validation figure beside the active model's (from the worker's
own preview route), then a confirmation. A model without a figure needs an explicit override, and the
worker then says so in every answer. Names, ids and cards come from workers: shown as text.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from flashdock import compass_api as api
from flashdock.text import card_html, code_span
from flashdock.ui import attempt, compass_page, validation_text

mesh, service = compass_page("Models")
if done := st.session_state.pop("models_done", None):
    st.success(done)
listing = attempt(lambda: api.list_models(mesh, service), "Listing models")
if listing is None:
    st.stop()  # the reason is on the page already
if not listing["items"]:
    st.info("No model yet: train one on the Training page.")
    st.stop()
active = (listing.get("active") or {}).get("id")
st.markdown(f"Active on **{service}**: {code_span(active or 'none')}")
rows = []
for m in listing["items"]:
    met = m.get("metrics") or {}
    rows.append(
        {
            "id": m["id"],
            "active": "✓" if m["id"] == active else "",
            "kind": m["kind"],
            "name": m.get("name"),
            "val_pearson (held-out proteins)": met.get("val_pearson"),
            "val_rmse": met.get("val_rmse"),
            "n_val": met.get("n_val"),
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
    with st.expander("Model card", expanded=False):
        st.html(card_html(detail.get("model_card") or "_No model card._"))  # formatting kept, links/images/HTML not

left, right = st.columns(2)
if left.button("Activate…", type="primary", disabled=chosen == active, width="stretch"):
    st.session_state["models_pending"] = chosen
pending = st.session_state.get("models_pending")
if pending == chosen and chosen != active:
    preview = attempt(lambda: api.activation_preview(mesh, service, chosen), "Reading the candidate's figures")
    if preview:
        with st.container(border=True):
            st.markdown(f"**Activate {code_span(chosen)} on {service}?** Every prediction of this service changes.")
            c1, c2 = st.columns(2)
            c1.markdown("Candidate: " + validation_text(preview["candidate"].get("validation")))
            current = preview.get("active") or {}
            c2.markdown("Active now: " + validation_text(current.get("validation")))
            override = False
            if preview.get("needs_override"):
                st.error(
                    "This model has no validation figure: nobody has measured how good it is on proteins it was "
                    "not trained on. Train it with a validation split by protein instead."
                )
                override = st.checkbox("Serve it anyway (override): every answer will say it is unvalidated")
            confirm_col, cancel_col = st.columns(2)
            go = confirm_col.button(
                "Confirm activation", type="primary", disabled=bool(preview.get("needs_override")) and not override
            )
            if cancel_col.button("Cancel"):
                st.session_state.pop("models_pending", None)
                st.rerun()
            if go:
                with st.spinner("Loading the model on the worker…"):
                    done = attempt(lambda: api.activate_model(mesh, service, chosen, override), "Activation")
                if done is not None:
                    st.session_state.pop("models_pending", None)
                    note = " without a validation figure (override)" if done.get("override") else ""
                    st.session_state["models_done"] = f"{chosen} is now served by {service}{note}."
                    st.rerun()  # list again: the table's ✓ must move now, not on the next visit
if right.button("Prepare download", width="stretch"):
    got = attempt(lambda: api.download_model(mesh, service, chosen), "Download")
    if got:
        st.download_button(f"Save {chosen} ({len(got[0]) / 1e6:.1f} MB)", got[0], f"{service}-{chosen}.bin")
