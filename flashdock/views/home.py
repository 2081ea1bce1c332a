"""Home: what FlashDock does, the three things to try first, and the fleet in one line (details on Monitor)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from flashdock.client import get_mesh

INTERNAL = {"echo"}  # test and demo services: never shown to end users
VIEWS = Path(__file__).parent
# Pages other engineers add (docking, variants, similarity) are linked once they exist.
OPTIONAL = [
    ("dock.py", "Dock a molecule", ":material/join_inner:"),
    ("variants.py", "Variant effects", ":material/biotech:"),
    ("similar.py", "Similar molecules and sequences", ":material/travel_explore:"),
]

st.title("FlashDock")
st.markdown(
    "**FlashDock predicts how tightly a small molecule binds its protein** (pK, with an interval and a note on "
    "how far to trust it) from a bound pose, ranks a congeneric series against your measurements, and runs "
    "protein, splice-site and codon models — all on your own workers, with no data leaving your network."
)

st.subheader("Try first")
c1, c2, c3 = st.columns(3)
with c1.container(border=True):
    st.markdown("**1. Score an example complex**")
    st.caption("HIV-1 protease with its inhibitor (1a30): the prediction beside the measured pK, and the pocket in 3D.")
    st.page_link("views/predict.py", label="Predict affinity", icon=":material/target:")
with c2.container(border=True):
    st.markdown("**2. Rank your series**")
    st.caption(
        "Upload one protein and one SDF holding the whole series; pick the SD tag with your measured values to see "
        "Spearman, Pearson and predicted vs. experimental."
    )
    st.page_link("views/predict.py", label="Upload a series", icon=":material/scatter_plot:")
with c3.container(border=True):
    st.markdown("**3. Run a sequence model**")
    st.caption("Embed an antibody chain, find splice sites or optimise codons for a host: examples are filled in.")
    st.page_link("views/sequence.py", label="Sequence tools", icon=":material/genetics:")

mesh = get_mesh()
fleet = mesh.fleet()
visible = [i for i in fleet.instances if i.service_name not in INTERNAL]
services = sorted({i.service_name for i in visible})
up = sorted({i.service_name for i in visible if i.status in ("passing", "warning")})
trouble = sum(i.status == "critical" for i in visible)
if not fleet.reachable:
    st.error("The fleet is not reachable right now: predictions and training are unavailable. Ask your operator.")
elif not services:
    st.warning("No model is running yet. Ask your operator to start the fleet (scripts/run.sh).")
else:
    line = f"Fleet: {len(up)} of {len(services)} services up ({', '.join(up) or 'none'})"
    if trouble:
        line += f" · {trouble} instance(s) not answering"
    st.info(line + ". Details on the Monitor page.", icon=":material/dns:")

st.subheader("All pages")
links = [
    ("views/predict.py", "Predict affinity: one complex, a series, or a zip of pairs", ":material/target:"),
    ("views/training.py", "Training: train COMPASS or compass-lite on your data", ":material/model_training:"),
    ("views/data.py", "Data: upload and check datasets", ":material/folder_open:"),
    ("views/models.py", "Models: validated figures, model cards, activation", ":material/inventory_2:"),
    ("views/sequence.py", "Sequence tools: antibody, splice sites, codons", ":material/genetics:"),
]
links += [(f"views/{name}", label, icon) for name, label, icon in OPTIONAL if (VIEWS / name).exists()]
links.append(("views/monitor.py", "Monitor (operators): every worker, history, drain", ":material/monitoring:"))
for page, label, icon in links:
    try:
        st.page_link(page, label=label, icon=icon)
    except Exception:  # a page file that is not in Home.py's navigation yet
        continue
