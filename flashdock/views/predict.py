"""Predict affinity: one protein + one ligand file (one ligand or a whole series), or a zip of pairs.

A series SDF gives one row per ligand, named by its own record; experimental values come from the
SD tag the user picks. Results are tied to the inputs that produced them: change a file, the
example or the model and the old answer leaves the page.
"""

from __future__ import annotations

import hashlib
import io
import math
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from compass.units import kd_from_pk
from flashdock import compass_api as api
from flashdock.client import get_mesh
from flashdock.mesh import MODEL_CHOICES
from flashdock.pairs import ZipPairs, examples
from flashdock.series import UNITS, Ligand, agreement, experimental_pk, guess_unit, numeric_tags, split_sdf
from flashdock.text import code_span
from flashdock.trust import trust_panel
from flashdock.ui import explain, registry_banner, served_by, validation_text
from flashdock.viewer import ligand_format, show_complex

PARALLEL = 4  # predictions in flight at once for a series

st.title("Predict affinity")
registry_banner()
mesh = get_mesh()
model = st.radio(
    "Model",
    list(MODEL_CHOICES),
    horizontal=True,
    help="auto: COMPASS, falling back to compass-lite when no COMPASS worker is up",
)
figures = api.validations(mesh)
st.caption(
    "Validated figures of the models served now: "
    + " · ".join(f"**{s}** {validation_text(figures.get(s))}" for s in ("compass", "compass-lite"))
    + (" (not running)" if not figures else "")
)
single, batch = st.tabs(["Protein + ligands", "Batch (zip of pairs)"])


@dataclass(frozen=True)
class Inputs:
    """What the user asked about: one protein and the ligands of one file (one or a series)."""

    label: str
    protein: tuple[str, bytes]
    ligand_file: tuple[str, bytes]
    ligands: tuple[Ligand, ...]
    measured: float | None = None  # an example's pK from examples/complexes/index.csv

    def key(self, model: str) -> str:
        h = hashlib.sha256(model.encode())
        for part in (self.protein[0], self.protein[1], self.ligand_file[0], self.ligand_file[1]):
            h.update(part if isinstance(part, bytes) else part.encode())
        return h.hexdigest()


def read_ligands(filename: str, content: bytes) -> list[Ligand]:
    """Every record of an SDF; a MOL2 or PDBQT file is one ligand (named by its molecule line or file)."""
    text = content.decode(errors="replace")
    if ligand_format(filename) == "sdf":
        return split_sdf(text)
    stem = PurePosixPath(filename).stem
    name = stem
    lines = text.splitlines()
    if "@<TRIPOS>MOLECULE" in lines:
        after = lines.index("@<TRIPOS>MOLECULE") + 1
        name = lines[after].strip() if after < len(lines) and lines[after].strip() else stem
    return [Ligand(0, name, text)]


def predict_all(inputs: Inputs, choice: str) -> list[dict[str, Any]]:
    """One prediction per ligand, a few at a time, with a progress bar; failures stay per row."""
    fmt = ligand_format(inputs.ligand_file[0])
    suffix = PurePosixPath(inputs.ligand_file[0]).suffix or ".sdf"
    rows: list[dict[str, Any]] = [{} for _ in inputs.ligands]
    bar = st.progress(0.0, text=f"0 / {len(inputs.ligands)} ligands") if len(inputs.ligands) > 1 else None

    def one(lig: Ligand) -> Any:
        return mesh.predict_complex(choice, inputs.protein, (f"ligand-{lig.index}{suffix}", lig.block.encode()))

    with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="flashdock-predict") as pool:
        futures = {pool.submit(one, lig): lig for lig in inputs.ligands}
        for done, future in enumerate(as_completed(futures), 1):
            lig = futures[future]
            row: dict[str, Any] = {"#": lig.index + 1, "ligand": lig.name, "format": fmt}
            try:
                res = future.result()
                row |= {"data": res.data, "result": res, "pK": float(res.data["pK"]), "error": ""}
            except Exception as exc:
                row |= {"data": None, "result": None, "pK": None, "error": explain(exc)}
            rows[lig.index] = row
            if bar is not None:
                bar.progress(done / len(inputs.ligands), text=f"{done} / {len(inputs.ligands)} ligands")
    return rows


def table(rows: list[dict[str, Any]], measured: dict[int, float | None]) -> pd.DataFrame:
    out = []
    for row in rows:
        data = row.get("data") or {}
        interval = data.get("interval") or {}
        res = row.get("result")
        out.append(
            {
                "#": row["#"],
                "ligand": row["ligand"],
                "pK": None if row["pK"] is None else round(row["pK"], 3),
                "80% low": interval.get("low"),
                "80% high": interval.get("high"),
                "experimental pK": measured.get(row["#"] - 1),
                "Kd": kd_from_pk(row["pK"]) if row["pK"] is not None else "",
                "nearest training ligand": (data.get("domain") or {}).get("nearest_ligand_similarity"),
                "model": data.get("model", ""),
                "fallback": bool(res and res.fallback_used),
                "error": row["error"],
            }
        )
    return pd.DataFrame(out)


def result_card(inputs: Inputs, row: dict[str, Any], measured: float | None) -> None:
    """The answer for one ligand, who gave it and how far to trust it."""
    data, result = row["data"], row["result"]
    pk = float(data["pK"])
    with st.container(border=True):
        cols = st.columns(4)
        cols[0].metric("pK", f"{pk:.2f}")
        cols[1].metric("Kd equivalent", kd_from_pk(pk))
        cols[2].metric("Measured pK", "–" if measured is None else f"{measured:.2f}")
        cols[3].metric("Model", f"{data.get('model', result.model)}")
        st.caption(
            f"ligand {row['#']}: {code_span(row['ligand'])} · protein {code_span(inputs.protein[0])} · "
            + served_by(result)
            + f" · {result.latency_ms:.0f} ms"
        )
        st.caption("Model validation: " + validation_text(data.get("validation")))
        if data.get("warning"):
            st.warning(str(data["warning"]))
        trust_panel(data)
        if result.fallback_used:
            st.warning(f"Fallback used: no usable {MODEL_CHOICES[model][0]} worker, so {result.service} answered.")


def number(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def series_view(inputs: Inputs, rows: list[dict[str, Any]]) -> None:
    """Table, agreement with experiment, predicted-vs-experimental scatter and the ranking."""
    tags = numeric_tags(list(inputs.ligands))
    measured: dict[int, float | None] = {}
    if tags:
        c1, c2 = st.columns(2)
        tag = c1.selectbox("Experimental value (SD tag)", ["(none)", *tags], key="series_tag")
        if tag != "(none)":
            unit = c2.selectbox("Unit of that tag", list(UNITS), index=list(UNITS).index(guess_unit(tag)))
            measured = {lig.index: experimental_pk(lig, tag, unit) for lig in inputs.ligands}
    frame = table(rows, measured)
    scored = frame[frame["pK"].notna()]
    st.success(f"{len(scored)} of {len(frame)} ligands scored.")
    st.dataframe(frame, hide_index=True, width="stretch")
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    st.download_button("Download CSV", buf.getvalue(), "flashdock_series.csv", "text/csv")
    if scored.empty:
        return
    stats = agreement(frame)
    if measured:
        cols = st.columns(4)
        cols[0].metric("Ligands with both values", stats["n"])
        if "spearman" in stats:
            cols[1].metric("Spearman ρ", number(stats["spearman"]))
            cols[2].metric("Pearson r", number(stats["pearson"]))
            cols[3].metric("RMSE (pK)", number(stats["rmse"]))
            if math.isnan(stats["spearman"]):
                st.warning("No correlation: the model gave every ligand the same pK (it cannot rank this series).")
        both = scored.dropna(subset=["experimental pK"])
        if not both.empty:
            lo = float(min(both["pK"].min(), both["experimental pK"].min())) - 0.3
            hi = float(max(both["pK"].max(), both["experimental pK"].max())) + 0.3
            scale = alt.Scale(domain=[lo, hi], zero=False)
            points = (
                alt.Chart(both)
                .mark_circle(size=70)
                .encode(
                    x=alt.X("experimental pK:Q", scale=scale),
                    y=alt.Y("pK:Q", title="predicted pK", scale=scale),
                    tooltip=["ligand", "pK", "experimental pK"],
                )
            )
            diagonal = (
                alt.Chart(pd.DataFrame({"x": [lo, hi], "y": [lo, hi]})).mark_line(color="#999").encode(x="x:Q", y="y:Q")
            )
            st.altair_chart(points + diagonal, width="stretch")
    ranked = scored.sort_values("pK", ascending=False)
    st.markdown("**Ranking** (best predicted binder first)")
    st.altair_chart(
        alt.Chart(ranked)
        .mark_point(filled=True, size=80)
        .encode(
            y=alt.Y("ligand:N", sort=None, title=None),
            x=alt.X("pK:Q", title="predicted pK", scale=alt.Scale(zero=False)),
            tooltip=["ligand", "pK", "experimental pK"],
        ),
        width="stretch",
    )


with single:
    handoff = st.session_state.get("predict_handoff")  # a pose the Dock page sent: {protein, ligand} (name, bytes)
    choices = ["Example", "Upload", *(["Docked pose"] if handoff else [])]
    source = st.radio("Complex", choices, horizontal=True, index=len(choices) - 1 if handoff else 0)
    inputs: Inputs | None = None
    try:
        if source == "Docked pose" and handoff:
            pose = handoff["ligand"]
            inputs = Inputs(pose[0], handoff["protein"], pose, tuple(read_ligands(*pose)))
            st.caption(f"The pose {code_span(pose[0])} from the Dock page, in its docked protein.")
        elif source == "Example":
            shipped = examples()
            if shipped:
                name = st.selectbox("Example complex", list(shipped))
                ex = shipped[name]
                inputs = Inputs(name, ex.protein, ex.ligand, tuple(read_ligands(*ex.ligand)), ex.experimental_pk)
            else:
                st.warning("No example complexes found under examples/complexes.")
        else:
            protein = st.file_uploader("Protein (PDB or PDBQT)", type=["pdb", "pdbqt"])
            ligand = st.file_uploader(
                "Ligands (SDF with one or many molecules, MOL2 or PDBQT)", type=["sdf", "mol2", "pdbqt"]
            )
            if protein and ligand:
                ligand_file = (ligand.name, ligand.getvalue())
                inputs = Inputs(
                    protein.name, (protein.name, protein.getvalue()), ligand_file, tuple(read_ligands(*ligand_file))
                )
    except ValueError as exc:
        st.error(f"Bad file: {exc}")
    if inputs is not None and len(inputs.ligands) > 1:
        st.caption(f"{len(inputs.ligands)} ligands in {code_span(inputs.ligand_file[0])}: one prediction each.")
    key = inputs.key(model) if inputs else None
    if st.button("Predict", type="primary", disabled=inputs is None) and inputs is not None:
        with st.spinner("Scoring…"):
            st.session_state["predict"] = {"key": key, "inputs": inputs, "rows": predict_all(inputs, model)}
    state = st.session_state.get("predict")
    if state and state["key"] != key:  # the inputs changed: the old answer is not theirs
        st.session_state.pop("predict")
        state = None
        st.info("The inputs changed: press Predict for a new answer.")
    if state:
        inputs, rows = state["inputs"], state["rows"]
        if len(rows) == 1:
            row = rows[0]
            if row["error"]:
                st.error(f"Prediction failed. {row['error']}")
            else:
                result_card(inputs, row, inputs.measured)
            chosen = row
        else:
            series_view(inputs, rows)
            names = [f"{r['#']}. {r['ligand']}" for r in rows]
            pick = st.selectbox("Ligand to inspect", names, key="series_pick")
            chosen = rows[names.index(pick)]
            if chosen["data"]:
                result_card(inputs, chosen, None)
        lig = inputs.ligands[chosen["#"] - 1]
        show_complex(
            inputs.protein[1].decode(errors="replace"),
            lig.block,
            ligand_format(inputs.ligand_file[0]),
            key="predict-view",
        )

with batch:
    upload = st.file_uploader("Zip of pairs (<id>_pocket.pdb + <id>_ligand.sdf)", type=["zip"], key="batch_zip")
    if upload is not None and st.button("Run batch", type="primary"):
        st.session_state.pop("batch_rows", None)  # the table below must only ever show this file's results
        try:
            pairs = ZipPairs(upload)
        except ValueError as exc:
            st.error(f"Bad file: {exc}")
            pairs = None
        if pairs is not None:
            if pairs.unpaired:
                st.warning(f"Skipped files without a partner: {', '.join(pairs.unpaired[:10])}")
            if pairs.skipped:
                st.warning(f"Only the first {len(pairs)} pairs are scored ({pairs.skipped} more in the file).")
            batch_rows = []
            bar = st.progress(0.0, text=f"0 / {len(pairs)}")
            for n, zip_key in enumerate(pairs.keys, 1):
                pair_name = PurePosixPath(zip_key).name
                try:
                    item = pairs.pair(zip_key)
                    res = mesh.predict_complex(model, item.protein, item.ligand)
                    pk = float(res.data["pK"])
                    interval = res.data.get("interval") or {}
                    batch_rows.append(
                        {"complex": pair_name, "pK": round(pk, 3), "80% low": interval.get("low"),
                         "80% high": interval.get("high"), "Kd": kd_from_pk(pk), "model": res.data.get("model"),
                         "instance": res.instance, "fallback": res.fallback_used, "ms": round(res.latency_ms),
                         "error": ""}
                    )  # fmt: skip
                except Exception as exc:
                    batch_rows.append({"complex": pair_name, "pK": None, "error": explain(exc)})
                bar.progress(n / len(pairs), text=f"{n} / {len(pairs)}")
            st.session_state["batch_rows"] = (upload.file_id, batch_rows)
    stored = st.session_state.get("batch_rows")
    if stored and upload is not None and stored[0] == upload.file_id:
        frame = pd.DataFrame(stored[1])
        ok = frame[frame["pK"].notna()]
        st.success(f"{len(ok)} of {len(frame)} complexes scored.")
        st.dataframe(frame, hide_index=True, width="stretch")
        buf = io.StringIO()
        frame.to_csv(buf, index=False)
        st.download_button("Download CSV", buf.getvalue(), "flashdock_predictions.csv", "text/csv")
        if not ok.empty:
            st.altair_chart(
                alt.Chart(ok)
                .mark_point(filled=True, size=80)
                .encode(y=alt.Y("complex:N", sort="-x", title=None), x=alt.X("pK:Q", scale=alt.Scale(zero=False))),
                width="stretch",
            )
