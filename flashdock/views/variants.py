"""Variants: pick or upload a mutation table, train with live progress, ROC and confusion matrix,
score pasted variants, generate and download a ranked design library. Talks to the ``variant`` worker
through the mesh only (services.client); text from the worker is shown as text or code spans."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from flashdock.client import get_mesh
from flashdock.text import code_span
from flashdock.ui import attempt, registry_banner, served_by

SERVICE = "variant"
EXAMPLE_VH = (
    "EVQLVESGGGLVQPGGSLRLSCAASGFNIKDTYIHWVRQAPGKGLEWVARIYPTNGYTRYADSVKGRFTISADTSKNTAYLQMNSLRAEDTAVYYCSRWG"
    "GDGFYAMDYWGQGTLVTVSS"
)
MODELS = {
    "one-hot CNN": "cnn",
    "AntiBERTy embeddings + logistic head": "embed-logistic",
    "zero-shot AntiBERTy likelihood": "zero-shot",
}

st.title("Variants")
registry_banner()
mesh = get_mesh()


def api(method: str, path: str, deadline: float = 20.0, **kwargs):
    return mesh.compass_api(SERVICE, method, path, deadline=deadline, **kwargs)


data_tab, train_tab, score_tab, design_tab = st.tabs(["Data", "Train", "Score", "Design"])

with data_tab:
    summary = attempt(lambda: api("GET", "/data/summary").data, "Reading the mutation store")
    if summary:
        groups = pd.DataFrame(summary["groups"])
        if groups.empty:
            st.info("The store is empty: upload a mutation table below.")
        else:
            st.dataframe(groups, hide_index=True, width="stretch")
        templates = [s["template_id"] for s in summary["sources"]]
        st.caption("Templates: " + (", ".join(code_span(t) for t in templates) or "none"))
    with st.form("upload"):
        st.markdown("**Upload a mutation table** (CSV, or FASTA with `label=` in headers)")
        upload = st.file_uploader("Table", type=["csv", "fasta", "fa"])
        c1, c2 = st.columns(2)
        template_id = c1.text_input("Template id", "trastuzumab-vh")
        template_seq = c2.text_input("Template sequence (only for a new template)", "")
        c1, c2, c3, c4 = st.columns(4)
        mutant_col = c1.text_input("Mutant column", "AASeq")
        window = c2.number_input("Window start (0: notation or full sequences)", 0, 5000, 99)
        label_col = c3.text_input("Label column", "AgClass")
        reads_col = c4.text_input("Reads column", "Count")
        assay = st.text_input("Assay", "her2")
        sent = st.form_submit_button("Import", type="primary")
    if sent and upload is not None:
        if template_seq.strip():
            body = {"template_id": template_id, "sequence": template_seq}
            attempt(lambda: api("POST", "/data/sources", json=body), "Adding the template")
        form = {
            "template": template_id,
            "mutant_column": mutant_col,
            "label_column": label_col,
            "reads_column": reads_col,
            "assay": assay,
            "window_start": str(int(window)) if window else "",
        }
        files = {"file": (upload.name, upload.getvalue())}
        res = attempt(lambda: api("POST", "/data/import", deadline=120, files=files, data=form), "Importing")
        if res:
            st.success(f"Imported {res.data['imported']} rows from {code_span(res.data['file'])}.")

with train_tab:
    with st.form("train"):
        model_label = st.selectbox("Model", list(MODELS))
        c1, c2, c3, c4 = st.columns(4)
        strategy = c1.radio("Split", ["hamming", "random"], help="hamming: test variants ≥ 2 mutations from training")
        seed = c2.number_input("Seed", 0, 2**31 - 1, 0)
        epochs = c3.number_input("Max epochs", 1, 500, 5)
        label = c4.text_input("Label name", "AgClass")
        start = st.form_submit_button("Train", type="primary")
    if start:
        plan = {
            "model": {"name": MODELS[model_label]},
            "data": {"label": label},
            "split": {"strategy": strategy, "seed": int(seed)},
            "train": {"max_epochs": int(epochs)},
        }
        if MODELS[model_label] != "cnn":  # AntiBERTy costs ~0.1-0.5 s per sequence on CPU: subsample
            plan["train"]["max_train"], plan["eval"] = 500, {"max_test": 300}
        created = attempt(lambda: api("POST", "/training/tasks", json={"plan": plan}).data, "Starting training")
        if created:
            st.session_state["variant_task"] = created["id"]

    task_id = st.session_state.get("variant_task")

    @st.fragment(run_every=2.0)
    def progress() -> None:
        """Live: the job's stage, epoch and validation ROC-AUC; then its test ROC and confusion matrix."""
        if not task_id:
            st.info("Start a training job to see its progress here.")
            return
        task = attempt(lambda: api("GET", f"/training/tasks/{task_id}").data, "Reading the task")
        if not task:
            return
        p = task.get("progress") or {}
        st.markdown(f"**{code_span(task_id)}** · status **{task['status']}** · stage {code_span(p.get('stage', '–'))}")
        if p.get("max_epochs"):
            st.progress(
                min(1.0, p.get("epoch", 0) / p["max_epochs"]),
                text=f"epoch {p.get('epoch')}/{p['max_epochs']} · val ROC-AUC {p.get('val_roc_auc', 0):.3f}",
            )
        if task.get("error"):
            st.error(f"The job failed: {task['error']}")
        if task["status"] != "completed":
            return
        got = attempt(lambda: api("GET", f"/training/tasks/{task_id}/metrics").data, "Reading metrics") or {}
        test = (got.get("metrics") or {}).get("test") or {}
        c1, c2, c3 = st.columns(3)
        c1.metric("Test ROC-AUC", f"{test.get('roc_auc', float('nan')):.3f}")
        c2.metric("Test average precision", f"{test.get('average_precision', float('nan')):.3f}")
        c3.metric("Test MCC", f"{test.get('mcc', float('nan')):.3f}")
        curves = got.get("curves") or {}
        if curves.get("roc"):
            roc = pd.DataFrame(curves["roc"])
            st.altair_chart(alt.Chart(roc).mark_line().encode(x="fpr:Q", y="tpr:Q"), width="stretch")
        cm = test.get("confusion_matrix")
        if cm:
            st.markdown("**Confusion matrix (test, threshold chosen on validation)**")
            st.table(
                pd.DataFrame(
                    [[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]],
                    index=["non-binder", "binder"],
                    columns=["predicted non-binder", "predicted binder"],
                )
            )
        if st.button("Serve this model", key=f"activate-{task_id}"):
            model_id = task.get("model_id") or task_id
            if attempt(lambda: api("POST", f"/models/{model_id}/activate", deadline=60), "Activating"):
                st.success("Now serving this model.")

    progress()

with score_tab:
    pasted = st.text_area(
        "Variants, one per line: D102Y, W99F:D102Y, the 10 CDR-H3 residues, or a full chain",
        "W99F\nWGGDGFYAMD\nYTICSFYKLQ",
        key="variants_pasted",
    )
    if st.button("Score", key="variants_score", type="primary"):
        lines = [line.strip() for line in pasted.splitlines() if line.strip()]
        res = attempt(
            lambda: mesh.router.call(
                "variant-effect",
                "POST",
                "/predict",
                json={"variants": lines},
                fallbacks=[],
                deadline=60,
                try_timeout=60,
            ),
            "Scoring",
        )
        if res:
            st.caption(served_by(res))
            st.dataframe(
                pd.DataFrame(
                    {
                        "variant": lines,
                        "region": res.data["regions"],
                        "mutations": res.data["mutations"],
                        "score": res.data["scores"],
                    }
                ),
                hide_index=True,
                width="stretch",
            )

with design_tab:
    c1, c2, c3 = st.columns(3)
    strategy = c1.selectbox("Library", ["binder-frequency", "singles-doubles"])
    n = c2.number_input("Top N", 1, 1000, 50)
    size = c3.number_input("Library size (binder-frequency)", 100, 200_000, 20_000)
    if st.button("Generate", key="variants_design", type="primary"):
        body = {"n": int(n), "strategy": strategy, "library_size": int(size)}
        res = attempt(lambda: api("POST", "/design", deadline=120, json=body), "Designing")
        if res:
            ranked = pd.DataFrame(res.data["variants"])
            st.caption(f"{res.data['library_size']} variants scored; top {len(ranked)} shown")
            st.dataframe(ranked[["rank", "region", "mutations", "score"]], hide_index=True, width="stretch")
            st.download_button("Download library (CSV)", ranked.to_csv(index=False), "design_library.csv", "text/csv")
