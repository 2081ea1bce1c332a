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
        with st.spinner(f"Uploading {archive.name} ({archive.size / 1e6:.1f} MB)…"):
            created = attempt(  # a refusal is an error on the page itself, never inside a collapsed box
                lambda: api.upload_dataset(mesh, service, name, archive.name, archive.getvalue()), "Upload"
            )
        if created is not None:
            st.session_state["data_selected"] = created["id"]
            st.success(f"Uploaded as {created['id']}: validating on the worker.")

if deleted := st.session_state.pop("data_deleted", None):
    st.success(f"Deleted {deleted}.")
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
        with st.spinner(f"Validating {chosen}: featurising every complex (the report appears when it is done)…"):
            pass  # the worker reports no fraction done: a spinner, not a made-up bar
    elif d["status"] == "ready":
        counts = f"{d.get('n_complexes')} usable, {d.get('n_failed')} failed, {d.get('n_skipped')} skipped"
        st.success(f"{chosen} is ready: {counts}.")
    else:
        st.error(f"{chosen} is {d['status']}: {d.get('error') or 'no usable complex'}")
    report = d.get("report") or {}
    for kind in ("failed", "skipped"):
        rows = report.get(kind) or []  # one row per complex: its id and the reason, as the worker wrote them
        if rows:
            st.markdown(f"**{kind.capitalize()}** ({report.get(f'n_{kind}', len(rows))})")
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


report()
deleting = st.button("Delete dataset", key=f"del-{chosen}")
if deleting and attempt(lambda: api.delete_dataset(mesh, service, chosen) or True, "Delete"):
    st.session_state.pop("data_selected", None)
    st.session_state["data_deleted"] = chosen
    st.rerun()  # list again: the deleted row must not stay beside the others
