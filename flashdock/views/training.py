"""Training: create a job (form or plan file), the jobs table, a live detail view with stop, run comparison."""

from __future__ import annotations

import json

import altair as alt
import pandas as pd
import streamlit as st

from flashdock import compass_api as api
from flashdock.ui import attempt, attempt_all, compass_page

mesh, service = compass_page("Training")

# Both lists at once: a worker that does not answer costs this page one read deadline, not two.
datasets, jobs = attempt_all(
    (lambda: api.list_datasets(mesh, service), "Listing datasets"),
    (lambda: api.list_jobs(mesh, service), "Listing jobs"),
)
listed = jobs is not None
datasets, jobs = datasets or [], jobs or []

with st.expander("New training job", expanded=False):
    ready = {
        f"{d['name']} ({d['id']}, {d.get('n_complexes')} complexes)": d["id"]
        for d in datasets
        if d["status"] == "ready"
    }
    if not ready:
        st.info("No ready dataset on this service: upload one on the Data page first.")
    with st.form("new_job"):
        name = st.text_input("Name", value="flashdock-run")
        ds_label = st.selectbox("Dataset", list(ready) or ["(none)"])
        kind = st.radio("Model", ["compass", "compass-lite"], horizontal=True)
        size = st.selectbox("Model size (COMPASS)", list(api.SIZES))
        c1, c2, c3, c4 = st.columns(4)
        epochs = c1.number_input("Epochs", 1, 1000, 20)
        lr = c2.number_input("Learning rate", 1e-6, 1.0, 5e-4, format="%.6f")
        seed = c3.number_input("Seed", 0, 2**31 - 1, 0)
        held_out = c4.number_input(
            "Validation: % of proteins held out",
            0,
            50,
            20,
            help="Whole proteins are held out, so a series never sits on both sides. 0: no validation figure, "
            "and the model can only be activated with an override.",
        )
        plan_file = st.file_uploader("…or an experiment plan (JSON) instead of the fields above", type=["json"])
        submitted = st.form_submit_button("Start job", type="primary", disabled=not ready)
    if submitted and ready:
        plan = api.build_plan(kind, size, int(epochs), float(lr), int(seed), held_out / 100)
        if plan_file is not None:
            try:
                plan = json.loads(plan_file.getvalue())
            except ValueError as exc:
                st.error(f"Bad file: the plan is not JSON ({exc}).")
                plan = None
        if plan is not None:
            created = attempt(lambda: api.create_job(mesh, service, plan, ready[ds_label], name), "Starting the job")
            if created:
                st.session_state["train_job"] = created["id"]
                st.success(f"Started {created['id']} ({created['status']}).")
                jobs = [created, *(j for j in jobs if j["id"] != created["id"])]  # listed before it existed

if not jobs:
    if listed:  # else the reason is on the page already
        st.info("No training job yet.")
    st.stop()


def job_row(j: dict) -> dict:
    p = j.get("progress") or {}
    return {"id": j["id"], "name": j.get("name"), "status": j["status"], "model": j.get("model_kind"),
            "epoch": f"{p.get('epoch', '–')}/{p.get('total_epochs', '–')}", "train RMSE": rmse(p.get("loss")),
            "created": j.get("created_at"), "model_id": j.get("model_id") or ""}  # fmt: skip


def rmse(mse: object) -> float | None:
    """The one loss shown everywhere: RMSE in pK units (the trainer logs the mean squared error)."""
    return round(float(mse) ** 0.5, 4) if isinstance(mse, int | float) and mse >= 0 else None


st.subheader("Jobs")


@st.fragment(run_every=3.0)
def jobs_table() -> None:
    """Statuses change on their own (jobs finish, stop): keep the table current without a page rerun."""
    fresh = attempt(lambda: api.list_jobs(mesh, service), "Listing jobs") or jobs
    st.dataframe(pd.DataFrame([job_row(j) for j in fresh]), hide_index=True, width="stretch")


jobs_table()
ids = [j["id"] for j in jobs]
current = st.session_state.get("train_job")
job_id = st.selectbox("Job", ids, index=ids.index(current) if current in ids else 0)
st.session_state["train_job"] = job_id


def curves(rows: list[dict]) -> pd.DataFrame:
    """Per-epoch train and validation RMSE in pK (train_loss is the MSE)."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["train RMSE"] = frame["train_loss"].map(rmse) if "train_loss" in frame else None
    if "val_rmse" in frame:
        frame["validation RMSE"] = frame["val_rmse"]
    return frame


@st.fragment(run_every=2.0)
def detail() -> None:
    """Live progress, loss curve and log tail; refreshes itself while the page is open."""
    info = attempt(lambda: api.job(mesh, service, job_id), "Reading the job")
    if info is None:
        return
    p = info.get("progress") or {}
    status = info["status"]
    stop = info.get("stop") or {}
    line = f"**{job_id}** · status **{status}**"
    if stop.get("requested_at"):
        line += f" · stop requested at {stop['requested_at']}" + (f" ({stop['signal']})" if stop.get("signal") else "")
    st.markdown(line)
    if info.get("error"):
        st.error(f"The job failed: {info['error']}")
    if p.get("total_steps"):
        frac = min(1.0, p.get("step", 0) / p["total_steps"])
        eta = f" · ETA {p['eta_s']:.0f} s" if isinstance(p.get("eta_s"), (int, float)) else ""
        loss = f" · train RMSE {rmse(p['loss']):.3f} pK" if rmse(p.get("loss")) is not None else ""
        st.progress(frac, text=f"epoch {p.get('epoch')}/{p.get('total_epochs')}{loss}{eta}")
    if status == "running" and st.button("Stop job", type="primary", key=f"stop-{job_id}"):
        res = attempt(lambda: api.stop_job(mesh, service, job_id), "Stopping the job")
        if res is not None:
            st.success(f"Stop requested: {res['status']} → cancelled once the trainer has saved and exited.")
    metrics = attempt(lambda: api.job_metrics(mesh, service, job_id), "Reading metrics") or {}
    epochs = curves(metrics.get("epochs") or [])
    if not epochs.empty:
        cols = [c for c in ("train RMSE", "validation RMSE") if c in epochs and epochs[c].notna().any()]
        long = epochs.melt(id_vars="epoch", value_vars=cols, var_name="series", value_name="RMSE (pK)")
        chart = alt.Chart(long).mark_line(point=True).encode(x="epoch:Q", y="RMSE (pK):Q", color="series:N")
        st.altair_chart(chart, width="stretch")
        if "validation RMSE" not in cols:
            st.caption("No validation curve: this job holds out no proteins.")
    st.code(attempt(lambda: api.log_tail(mesh, service, job_id), "Reading the log") or "(no log yet)", language="log")


detail()

st.subheader("Compare runs")
chosen = st.multiselect("Runs", ids, default=ids[: min(2, len(ids))])


@st.fragment(run_every=5.0)
def compare() -> None:
    """Live: running jobs add epochs while the page is open."""
    frames = []
    for jid in chosen:
        rows = (attempt(lambda jid=jid: api.job_metrics(mesh, service, jid), f"Metrics of {jid}") or {}).get("epochs")
        frames += [{**r, "run": jid} for r in rows or []]
    if not frames:
        return
    frame = curves(frames)
    agg: dict = {"epochs": ("epoch", "max"), "final_train_RMSE": ("train RMSE", "last")}
    if "validation RMSE" in frame:
        agg["best_validation_RMSE"] = ("validation RMSE", "min")
        agg["final_validation_RMSE"] = ("validation RMSE", "last")
    st.dataframe(frame.groupby("run").agg(**agg), width="stretch")
    series = [c for c in ("train RMSE", "validation RMSE") if c in frame]
    long = frame.melt(id_vars=["epoch", "run"], value_vars=series, var_name="series", value_name="RMSE (pK)")
    chart = alt.Chart(long).mark_line().encode(x="epoch:Q", y="RMSE (pK):Q", color="run:N", strokeDash="series:N")
    st.altair_chart(chart, width="stretch")


compare()
