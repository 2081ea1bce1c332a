"""Dock: a protein and molecules (SMILES or SDF) in; poses in the pocket, Vina scores and COMPASS pK out.

One ligand is one ``POST /dock`` call; several become a docking job on a dock worker
(``/api/v1/docking/jobs``), followed with a progress bar and cancellable. The box comes from a
reference ligand, listed residues, an explicit centre and size, or a pocket the worker detects.
Poses are drawn with the same 3D viewer as the Predict page; SDF and CSV downloads; a pose can be
handed to the Predict page (``st.session_state["predict_handoff"]``).
"""

from __future__ import annotations

import hashlib
import io
import time
from typing import Any

import pandas as pd
import streamlit as st

from compass.units import kd_from_pk
from flashdock.client import get_mesh
from flashdock.pairs import examples
from flashdock.text import code_span
from flashdock.ui import explain, registry_banner, served_by
from flashdock.viewer import show_complex

JOBS = "/docking/jobs"
BOX_KINDS = ("Reference ligand", "Residues", "Centre and size", "Detected pocket")
MAX_LIGANDS = 500

st.title("Dock")
registry_banner()
mesh = get_mesh()
if not any(i.service_name == "dock" for i in mesh.fleet().instances):
    st.warning("No dock worker is registered: start one with `python -m services.worker.launch dock`.")


def call_dock(body: dict[str, Any]) -> Any:
    return mesh.router.call("docking", "POST", "/dock", json=body, deadline=1800, try_timeout=1800)


def jobs_api(method: str, path: str = "", **kwargs: Any) -> Any:
    return mesh.compass_api("docking", method, JOBS + path, deadline=30, **kwargs)


def read_ligands(text: str, upload: Any) -> list[dict[str, str]]:
    """``[{name, ligand_smiles|ligand_sdf}]`` from the text box (``SMILES [name]`` lines) and an SDF/SMI upload."""
    from docking.screen import read_library

    out = []
    for line in text.splitlines():
        parts = line.split(None, 1)
        if parts and not parts[0].startswith("#"):
            out.append({"name": parts[1].strip() if len(parts) > 1 else parts[0], "ligand_smiles": parts[0]})
    if upload is not None:
        import tempfile
        from pathlib import Path

        suffix = ".sdf" if upload.name.lower().endswith(".sdf") else ".smi"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"library{suffix}"
            path.write_bytes(upload.getvalue())
            out += read_library(path)
    return out


# -- inputs ------------------------------------------------------------------------------------

shipped = examples()
source = st.radio("Protein", ["Example", "Upload"], horizontal=True, key="dock_protein_source")
protein_text, reference_text = "", ""
if source == "Example" and shipped:
    name = st.selectbox("Example complex", list(shipped), key="dock_example")
    protein_text = shipped[name].protein[1].decode()
    reference_text = shipped[name].ligand[1].decode()
else:
    upload = st.file_uploader("Protein (PDB)", type=["pdb"], key="dock_protein")
    protein_text = upload.getvalue().decode(errors="replace") if upload else ""

smiles_text = st.text_area("SMILES (one per line, optional name after a space)", key="dock_smiles", height=100)
library = st.file_uploader("…or a library (SDF or SMI)", type=["sdf", "smi"], key="dock_library")

box_kind = st.radio("Box", BOX_KINDS, horizontal=True, key="dock_box_kind")
box: dict[str, Any] | None = None
if box_kind == "Reference ligand":
    ref = st.file_uploader("Reference ligand (SDF); the example's ligand when empty", type=["sdf"], key="dock_ref")
    reference_text = ref.getvalue().decode(errors="replace") if ref else reference_text
    padding = st.number_input("Padding (Å)", 0.0, 20.0, 4.0, 0.5, key="dock_padding")
    box = {"reference_ligand_sdf": reference_text, "padding": padding} if reference_text else None
elif box_kind == "Residues":
    residues = st.text_input("Residues", placeholder="A:57, A:102, A:195", key="dock_residues")
    padding = st.number_input("Padding (Å)", 0.0, 20.0, 4.0, 0.5, key="dock_res_padding")
    names = [r.strip() for r in residues.split(",") if r.strip()]
    box = {"residues": names, "padding": padding} if names else None
elif box_kind == "Centre and size":
    cols = st.columns(6)
    center = [cols[i].number_input(f"centre {a}", value=0.0, key=f"dock_c{a}") for i, a in enumerate("xyz")]
    size = [cols[i + 3].number_input(f"size {a}", 1.0, 40.0, 20.0, key=f"dock_s{a}") for i, a in enumerate("xyz")]
    box = {"center": center, "size": size}
else:
    if st.button("Detect pockets", key="dock_detect", disabled=not protein_text):
        try:
            found = mesh.router.call(
                "docking",
                "POST",
                "/api/v1/docking/pockets",
                json={"protein_pdb": protein_text},
                deadline=120,
                try_timeout=120,
            )
            st.session_state["dock_pockets"] = found.data["pockets"]
        except Exception as exc:
            st.error(explain(exc))
    pockets = st.session_state.get("dock_pockets") or []
    if pockets:
        labels = [f"{p['id']}: {p['volume']:.0f} Å³, centre {p['center']}" for p in pockets]
        pick = st.selectbox("Pocket", range(len(pockets)), format_func=lambda i: labels[i], key="dock_pocket")
        chosen = pockets[pick]
        box = {"center": chosen["center"], "size": [min(s, 40.0) for s in chosen["size"]]}
if box:
    st.caption("Box: " + ", ".join(f"{k} {v}" for k, v in box.items() if k != "reference_ligand_sdf"))
if box and protein_text and "center" in box and "size" in box:  # a pocket or an explicit box, drawn where it sits
    with st.expander("The box in 3D", expanded=box_kind != "Centre and size"):
        show_complex(protein_text, "", "sdf", key="dock-box-view", box=(tuple(box["center"]), tuple(box["size"])))

with st.expander("Docking settings"):
    cols = st.columns(5)
    exhaustiveness = cols[0].number_input("Exhaustiveness", 1, 64, 8, key="dock_exh")
    n_poses = cols[1].number_input("Poses", 1, 20, 9, key="dock_poses")
    seed = cols[2].number_input("Seed", 0, 2**31 - 2, 0, key="dock_seed")
    ph = cols[3].number_input("pH", 0.0, 14.0, 7.4, 0.1, key="dock_ph")
    rings = cols[4].number_input(
        "Ring conformers",
        1,
        8,
        1,
        key="dock_rings",
        help="Vina keeps rings rigid: dock from up to this many distinct ring puckers and pool the poses. "
        "Only ligands with a non-aromatic ring get more than one start; each start is one more Vina search.",
    )
    score = st.checkbox("Score poses with COMPASS (fallback compass-lite)", True, key="dock_score")

ligands = read_ligands(smiles_text, library)
params = {
    "exhaustiveness": int(exhaustiveness),
    "n_poses": int(n_poses),
    "seed": int(seed),
    "ring_conformers": int(rings),
    "ph": ph,
    "score": score,
}
ready = bool(protein_text and ligands and box is not None and len(ligands) <= MAX_LIGANDS)
if len(ligands) > MAX_LIGANDS:
    st.error(f"{len(ligands)} ligands: the page docks at most {MAX_LIGANDS}; use `python -m docking.screen`.")
key = hashlib.sha256(repr((protein_text, ligands, box, params)).encode()).hexdigest()

# -- run ---------------------------------------------------------------------------------------

if st.button("Dock", type="primary", disabled=not ready, key="dock_run"):
    common = {"protein_pdb": protein_text, "box": box, **params}
    if len(ligands) == 1:
        with st.spinner(f"Docking {ligands[0]['name']}…"):
            try:
                result = call_dock({**common, **ligands[0]})
                st.session_state["dock"] = {
                    "key": key,
                    "rows": [{"index": 0, "status": "success", **result.data}],
                    "served": served_by(result),
                }
            except Exception as exc:
                st.error(explain(exc))
    else:
        smiles = [lig.get("ligand_smiles") for lig in ligands]
        if not all(smiles):
            st.error("Several SDF ligands: dock them with `python -m docking.screen` (jobs take SMILES).")
        else:
            try:
                body = {**common, "ligands": smiles, "names": [lig["name"] for lig in ligands]}
                job = jobs_api("POST", json=body).data
                st.session_state["dock_job"] = {"id": job["id"], "key": key}
            except Exception as exc:
                st.error(explain(exc))

job_state = st.session_state.get("dock_job")
if job_state:
    status = st.empty()
    bar = st.progress(0.0)
    if st.button("Cancel", key="dock_cancel"):
        try:
            jobs_api("DELETE", f"/{job_state['id']}")
        except Exception as exc:
            st.error(explain(exc))
    while True:
        try:
            view = jobs_api("GET", f"/{job_state['id']}", params={"limit": MAX_LIGANDS}).data
        except Exception as exc:
            st.error(explain(exc))
            break
        progress = view.get("progress") or {}
        total = max(1, int(progress.get("total") or view.get("n_ligands") or 1))
        done = int(progress.get("done") or 0)
        bar.progress(min(1.0, done / total), text=f"{done} / {total} ligands · {view['status']}")
        status.caption(f"job {code_span(view['id'])} · docking {code_span(str(progress.get('current') or '–'))}")
        if view["status"] != "running":
            rows = view.get("results") or []
            st.session_state["dock"] = {"key": job_state["key"], "rows": rows, "served": f"job {view['status']}"}
            st.session_state.pop("dock_job")
            if view["status"] != "completed":
                st.warning(f"The job ended {view['status']}: {view.get('error') or 'cancelled'}")
            break
        time.sleep(1.0)

# -- results -----------------------------------------------------------------------------------

state = st.session_state.get("dock")
if state and state["key"] != key:
    st.info("The inputs changed since these poses were docked: dock again to refresh them.")
if state:
    table = []
    for row in state["rows"]:
        best = (row.get("poses") or [{}])[0]
        interval = best.get("interval") or {}
        pk = best.get("pK")
        table.append(
            {
                "ligand": row.get("name"),
                "status": row.get("status"),
                "Vina (kcal/mol)": best.get("vina_score"),
                "COMPASS pK": pk,
                "80% low": interval.get("low"),
                "80% high": interval.get("high"),
                "Kd": kd_from_pk(pk) if pk is not None else "",
                "model": best.get("scored_by") or "",
                "error": (row.get("error") or {}).get("details", ""),
            }
        )
    frame = pd.DataFrame(table).sort_values("Vina (kcal/mol)", na_position="last")
    st.caption(state["served"])
    st.dataframe(frame, hide_index=True, width="stretch")
    docked = [r for r in state["rows"] if r.get("poses")]
    if docked:
        labels = [str(r.get("name")) for r in docked]
        pick = st.selectbox("Ligand", range(len(docked)), format_func=lambda i: labels[i], key="dock_view_ligand")
        poses = docked[pick]["poses"]
        rank = st.selectbox(
            "Pose",
            range(len(poses)),
            key="dock_view_pose",
            format_func=lambda i: (
                f"{poses[i]['rank']}: {poses[i]['vina_score']:.2f} kcal/mol"
                + (f", pK {poses[i]['pK']:.2f}" if poses[i].get("pK") is not None else "")
            ),
        )
        pose = poses[rank]
        drawn = docked[pick].get("box") or {}
        show_complex(
            protein_text,
            pose["sdf"],
            "sdf",
            key="dock-view",
            box=(tuple(drawn["center"]), tuple(drawn["size"])) if "center" in drawn and "size" in drawn else None,
        )
        cols = st.columns(3)
        all_best = "".join(r["poses"][0]["sdf"] for r in docked)
        cols[0].download_button("Best poses (SDF)", all_best, "docked_poses.sdf", key="dock_dl_sdf")
        buf = io.StringIO()
        frame.to_csv(buf, index=False)
        cols[1].download_button("Table (CSV)", buf.getvalue(), "docking.csv", key="dock_dl_csv")
        if cols[2].button("Send this pose to Predict", key="dock_to_predict"):
            st.session_state["predict_handoff"] = {
                "protein": ("docked_protein.pdb", protein_text.encode()),
                "ligand": (f"{labels[pick]}_pose{pose['rank']}.sdf", pose["sdf"].encode()),
            }
            st.switch_page("views/predict.py")
