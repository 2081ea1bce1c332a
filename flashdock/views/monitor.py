"""Monitor: every instance with state, load, heartbeat age, request rate and p50/p99; drain/undrain.

The table refreshes in a fragment. Instances come from the RegistryClient's watched cache (no
polling), and each worker's /metrics is scraped at most once per refresh interval for all viewers
together (Mesh.scrape), so the Monitor can never trip a worker's rate limiter.
"""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from flashdock.client import get_mesh
from flashdock.ui import explain

st.title("Monitor")
mesh = get_mesh()
refresh_s = mesh.settings.monitor_refresh_s


def heartbeat_age(stamp: str | None) -> float | None:
    """Seconds since an ISO 8601 ``...Z`` timestamp."""
    if not stamp:
        return None
    try:
        return (datetime.now(UTC) - datetime.fromisoformat(stamp.replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        return None


def fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


@st.fragment(run_every=refresh_s)
def fleet_table() -> None:
    fleet = mesh.fleet()
    if not fleet.reachable:
        st.error(f"Registry not reachable ({fleet.error or 'no answer'}); showing the last known state.")
    instances = sorted(fleet.instances, key=lambda i: (i.service_name, i.instance_id))
    stats = mesh.scrape(list(instances), min_interval_s=refresh_s * 0.9) if instances else {}
    rows = []
    for inst in instances:
        s = stats.get(inst.instance_id)
        rows.append(
            {
                "service": inst.service_name,
                "instance": inst.instance_id,
                "state": inst.status,
                "inflight": inst.load.get("inflight", 0),
                "queued": inst.load.get("queued", 0),
                "heartbeat age s": fmt(heartbeat_age(inst.last_heartbeat)),
                "req/s": fmt(s.rate_per_s, 2) if s and s.up else "–",
                "p50 ms": fmt(s.p50_ms) if s and s.up else "–",
                "p99 ms": fmt(s.p99_ms) if s and s.up else "–",
                "metrics": "up" if s and s.up else "unreachable",
                "url": inst.base_url,
            }
        )
    counts = {
        state: sum(r["state"] == state for r in rows) for state in ("passing", "warning", "critical", "maintenance")
    }
    st.markdown(" · ".join(f"**{n}** {state}" for state, n in counts.items()) + f" · refreshed every {refresh_s:g} s")
    unhealthy = [r for r in rows if r["state"] != "passing"]
    if unhealthy:
        st.warning(
            "Needs attention: "
            + "; ".join(f"{r['instance']} is {r['state']} (heartbeat {r['heartbeat age s']} s ago)" for r in unhealthy)
        )
    silent = [r["instance"] for r in rows if r["state"] == "passing" and r["metrics"] == "unreachable"]
    if silent:
        wait = mesh.settings.scrape_timeout_s
        st.warning(
            f"Not answering: {', '.join(silent)}: no answer to /metrics within {wait:g} s, yet passing in the "
            "registry (heartbeats arrive): hung or overloaded?"
        )
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch")
    elif fleet.reachable:
        st.info("No instance is registered.")
    st.session_state["monitor_ids"] = [(i.instance_id, i.maintenance) for i in instances]


fleet_table()

st.subheader("Drain / undrain")
ids = st.session_state.get("monitor_ids", [])
if ids:
    choice = st.selectbox("Instance", [i for i, _ in ids])
    reason = st.text_input("Reason", value="drained from FlashDock")
    left, right = st.columns(2)
    for col, enabled, label in ((left, True, "Drain"), (right, False, "Undrain")):
        if col.button(label, width="stretch"):
            try:
                mesh.set_maintenance(choice, enabled, reason if enabled else "")
                st.success(f"{choice}: {'maintenance (drained)' if enabled else 'back in service'}.")
            except Exception as exc:
                st.error(f"{label} failed: {explain(exc)}")
    if not mesh.settings.token:
        st.caption("No REGISTRY_TOKEN set: a registry with a token will refuse drain/undrain.")
else:
    st.caption("Nothing to drain.")
