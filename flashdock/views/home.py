"""Home: the fleet at a glance, said plainly, and where to go next."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import streamlit as st

from flashdock.client import get_mesh

st.title("FlashDock")
mesh = get_mesh()
fleet = mesh.fleet()
if fleet.reachable:
    st.success(f"Registry reachable at {mesh.settings.registry_url}: {len(fleet.instances)} instance(s) registered.")
else:
    st.error(
        f"Registry NOT reachable at {mesh.settings.registry_url} ({fleet.error or 'no answer'}). "
        + ("Showing the last known fleet." if fleet.instances else "Start it with scripts/run.sh.")
    )

states = Counter(i.status for i in fleet.instances)
cols = st.columns(5)
cols[0].metric("Services", len({i.service_name for i in fleet.instances}))
for col, state in zip(cols[1:], ("passing", "warning", "critical", "maintenance"), strict=True):
    col.metric(state.capitalize(), states.get(state, 0))

if fleet.instances:
    rows: dict[str, dict[str, object]] = {}
    for inst in fleet.instances:
        row = rows.setdefault(
            inst.service_name,
            {"service": inst.service_name, "instances": 0, "passing": 0, "capabilities": "", "models": set()},
        )
        row["instances"] = int(row["instances"]) + 1  # type: ignore[call-overload]
        row["passing"] = int(row["passing"]) + (inst.status == "passing")  # type: ignore[call-overload]
        row["capabilities"] = ", ".join(inst.metadata.get("capabilities", []))
        row["models"] |= set(inst.metadata.get("models", []))  # type: ignore[operator]
    table = [{**r, "models": ", ".join(sorted(r["models"]))} for r in rows.values()]  # type: ignore[call-overload]
    st.subheader("Services and models served")
    st.table(pd.DataFrame(table).set_index("service"))  # a plain HTML table: small, and readable by any tool
elif fleet.reachable:
    st.info("No worker is registered yet. Start one: `python -m services.worker.launch compass-lite --registry URL`.")

st.subheader("Where next")
st.page_link("views/predict.py", label="Predict an affinity", icon=":material/target:")
st.page_link("views/training.py", label="Train and compare models", icon=":material/model_training:")
st.page_link("views/monitor.py", label="Watch the fleet", icon=":material/monitoring:")
