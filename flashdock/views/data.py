"""Data: upload a dataset archive (with progress), read its validation report, list and delete datasets."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from flashdock import compass_api as api
from flashdock.ui import attempt, compass_page

mesh, service = compass_page("Data")

with st.form("upload"):
    archive = st.file_uploader(
        "Dataset archive (.zip, .tar.gz) of any data-root layout", type=["zip", "gz", "tgz", "tar", "bz2", "xz"]
    )
    name = st.text_input("Name", value="my-dataset")
    send = st.form_submit_button("Upload", type="primary")
if send:
    if archive is None:
        st.error("Choose an archive first.")
    else:
        with st.status(f"Uploading {archive.name} ({archive.size / 1e6:.1f} MB)…", expanded=True) as status:
            created = attempt(
                lambda: api.upload_dataset(mesh, service, name, archive.name, archive.getvalue()), "Upload"
            )
            if created is None:
                status.update(label="Upload failed", state="error")
            else:
                st.session_state["data_selected"] = created["id"]
                status.update(label=f"Uploaded as {created['id']}: validating on the worker", state="complete")

items = attempt(lambda: api.list_datasets(mesh, service), "Listing datasets")
if items is None:
    st.stop()  # the reason is on the page already
if not items:
    st.info("No dataset yet.")
    st.stop()
cols = ["id", "name", "status", "layout", "n_complexes", "n_failed", "n_skipped", "archive_name", "created_at"]
st.dataframe(pd.DataFrame(items)[[c for c in cols if c in items[0]]], hide_index=True, width="stretch")
ids = [d["id"] for d in items]
sel = st.session_state.get("data_selected")
chosen = st.selectbox("Dataset", ids, index=ids.index(sel) if sel in ids else 0)


@st.fragment(run_every=2.0)
def report() -> None:
    """The validation report; refreshes while the worker validates."""
    d = attempt(lambda: api.dataset(mesh, service, chosen), "Reading the dataset")
    if d is None:
        return
    if d["status"] == "validating":
        st.progress(0.5, text="validating: featurising every complex…")
    elif d["status"] == "ready":
        counts = f"{d.get('n_complexes')} usable, {d.get('n_failed')} failed, {d.get('n_skipped')} skipped"
        st.success(f"{chosen} is ready: {counts}.")
    else:
        st.error(f"{chosen} is {d['status']}: {d.get('error') or 'no usable complex'}")
    reasons = d.get("reasons") or {}
    for kind in ("failed", "skipped"):
        if reasons.get(kind):
            st.markdown(f"**{kind.capitalize()}**")
            st.dataframe(pd.DataFrame(list(reasons[kind].items()), columns=["complex", "reason"]), hide_index=True)


report()
deleting = st.button("Delete dataset", key=f"del-{chosen}")
if deleting and attempt(lambda: api.delete_dataset(mesh, service, chosen) or True, "Delete"):
    st.session_state.pop("data_selected", None)
    st.success(f"Deleted {chosen}.")
