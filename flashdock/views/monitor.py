"""Monitor (operators): every instance with state colour, live heartbeat age, load and traffic; per-service
totals; the last hour's history; drain with a reason and a confirmation.

The table is re-fetched every second for all viewers together (``Mesh.fresh_fleet``) so heartbeat ages are
live, and each worker's /metrics is scraped at most once per refresh interval (``Mesh.scrape``), so the
Monitor can never trip a worker's rate limiter. History comes from Prometheus when
``FLASHDOCK_PROMETHEUS_URL`` is set, else from the registry's own short load history.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from flashdock.client import get_mesh
from flashdock.text import code_span
from flashdock.ui import explain

STATE_COLOURS = {"passing": "#d4f4dd", "warning": "#fff3c4", "critical": "#ffd6d6", "maintenance": "#dde6ff"}
STATES = tuple(STATE_COLOURS)
LOAD_SERIES = {"inflight": "in flight", "queued": "queued", "cpu_percent": "CPU %", "rss_mb": "memory MB",
               "gpu_mem_mb": "GPU memory MB"}  # fmt: skip

st.title("Monitor")
st.caption("For operators: the state of every worker, what it is doing, and the last hour.")
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


def colour_state(value: str) -> str:
    return f"background-color: {STATE_COLOURS.get(value, '#eeeeee')}"


@st.fragment(run_every=1.0)
def fleet_table() -> None:
    fleet = mesh.fresh_fleet(max_age_s=1.0)
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
                "heartbeat age s": fmt(heartbeat_age(inst.last_heartbeat)),
                "inflight": inst.load.get("inflight", 0),
                "queued": inst.load.get("queued", 0),
                "CPU %": inst.load.get("cpu_percent"),
                "memory MB": inst.load.get("rss_mb"),
                "req/s": s.rate_per_s if s and s.up else None,
                "p99 ms": s.p99_ms if s and s.up else None,
                "metrics": "up" if s and s.up else "unreachable",
                "url": inst.base_url,
            }
        )
    counts = {state: sum(r["state"] == state for r in rows) for state in STATES}
    st.markdown(" · ".join(f"**{n}** {state}" for state, n in counts.items()) + " · live (heartbeat ages every 1 s)")
    critical = [r for r in rows if r["state"] in ("critical", "warning")]
    if critical:
        st.error(
            "Needs attention: "
            + "; ".join(f"{r['instance']} is {r['state']} (heartbeat {r['heartbeat age s']} s ago)" for r in critical)
        )
    drained = [i for i in instances if i.status == "maintenance"]
    if drained:
        why = [f"{code_span(i.instance_id)}: {code_span(i.maintenance_reason or 'no reason')}" for i in drained]
        st.info("Drained on purpose: " + "; ".join(why))
    silent = [r["instance"] for r in rows if r["state"] == "passing" and r["metrics"] == "unreachable"]
    if silent:
        st.warning(
            f"Not answering: {', '.join(silent)}: no answer to /metrics within {mesh.settings.scrape_timeout_s:g} s, "
            "yet passing in the registry (heartbeats arrive): hung or overloaded?"
        )
    if rows:
        frame = pd.DataFrame(rows)
        st.markdown("**Per service**")
        totals = frame.groupby("service").agg(
            instances=("instance", "count"),
            passing=("state", lambda s: int((s == "passing").sum())),
            critical=("state", lambda s: int((s == "critical").sum())),
            drained=("state", lambda s: int((s == "maintenance").sum())),
            inflight=("inflight", "sum"),
            queued=("queued", "sum"),
            req_s=("req/s", lambda s: round(float(s.dropna().sum()), 2) if s.notna().any() else None),
            p99_ms_max=("p99 ms", "max"),
        )
        st.dataframe(totals, width="stretch")
        st.markdown("**Instances**")
        styled = frame.style.map(colour_state, subset=["state"]).format(precision=1, na_rep="–")  # not 0.000000
        st.dataframe(styled, hide_index=True, width="stretch")
    elif fleet.reachable:
        st.info("No instance is registered.")
    st.session_state["monitor_ids"] = [(i.instance_id, i.maintenance) for i in instances]


def history_charts() -> None:
    """The last hour per service: load from heartbeats (or Prometheus) and traffic from the scrapes."""
    prom = mesh.prometheus_history(60)
    charts: list[tuple[str, pd.DataFrame]] = []
    if prom is not None:
        for name, points in prom.items():
            if points:
                charts.append((name, pd.DataFrame(points)))
        source = f"Prometheus at {mesh.settings.prometheus_url}"
    else:
        hist = mesh.registry_history(60)
        source = "the registry's load history (sampled from heartbeats)"
        if hist:
            points = [
                {"t": p["t"], "service": entry["service"], **p}
                for entry in hist["instances"].values()
                for p in entry["points"]
            ]
            frame = pd.DataFrame(points)
            for key, title in LOAD_SERIES.items():
                if key in frame:
                    summed = frame.groupby(["t", "service"], as_index=False)[key].sum()
                    charts.append((title, summed.rename(columns={key: "value"})))
            if "status" in frame:
                up = frame.assign(value=(frame["status"] == "passing").astype(int))
                charts.append(("passing instances", up.groupby(["t", "service"], as_index=False)["value"].sum()))
        scraped = pd.DataFrame(mesh.scrape_history())
        if not scraped.empty:
            for key in ("requests/s", "p99 ms"):
                agg = "sum" if key == "requests/s" else "max"
                series = scraped.dropna(subset=[key]).groupby(["t", "service"], as_index=False)[key].agg(agg)
                charts.append((f"{key} (this Monitor's scrapes)", series.rename(columns={key: "value"})))
    st.caption(f"From {source}.")
    if not charts:
        st.info("No history yet: the registry samples the fleet's load every few seconds.")
        return
    cols = st.columns(2)
    for n, (title, frame) in enumerate(charts):
        frame = frame.assign(time=pd.to_datetime(frame["t"], unit="s"))
        # Every series here is a count, rate or latency (>= 0): the axis starts at 0, and a flat series of
        # zeros gets a 0-1 axis with plain tick labels instead of Vega's 0.000000 ticks.
        top = float(frame["value"].max()) if len(frame) else 0.0
        y = alt.Y(
            "value:Q",
            title=None,
            scale=alt.Scale(domain=[0, top if top > 0 else 1], nice=True),
            axis=alt.Axis(format=",~r"),
        )
        chart = (
            alt.Chart(frame, title=title)
            .mark_line(point=len(frame) < 30)
            .encode(x=alt.X("time:T", title=None), y=y, color="service:N")
            .properties(height=180)
        )
        cols[n % 2].altair_chart(chart, width="stretch")


fleet_table()

with st.expander("History (last hour)", expanded=True):
    st.fragment(run_every=max(10.0, refresh_s * 2))(history_charts)()

st.subheader("Drain / undrain")
ids = st.session_state.get("monitor_ids", [])
if not ids:
    st.caption("Nothing to drain.")
    st.stop()
if done := st.session_state.pop("monitor_done", None):
    st.success(done)
choice = st.selectbox("Instance", [i for i, _ in ids], key="monitor_instance")  # keyed: kept when the fleet changes
reason = st.text_input("Reason (shown to other operators)", placeholder="e.g. kernel update on gpu-3")
left, right = st.columns(2)
if left.button("Drain…", width="stretch"):
    if not reason.strip():
        st.error("Give a reason: other operators see it beside the drained instance.")
    else:
        st.session_state["monitor_drain"] = (choice, reason.strip())
if right.button("Undrain", width="stretch"):
    try:
        mesh.set_maintenance(choice, False, "")
        st.success(f"{choice}: back in service.")
    except Exception as exc:
        st.error(f"Undrain failed: {explain(exc)}")
pending: Any = st.session_state.get("monitor_drain")
if pending and pending[0] == choice:
    with st.container(border=True):
        st.warning(
            f"Drain {code_span(pending[0])}? It stops receiving new requests; requests in flight finish. "
            f"Reason: {code_span(pending[1])}"
        )
        go, cancel = st.columns(2)
        if go.button("Confirm drain", type="primary"):
            st.session_state.pop("monitor_drain", None)
            try:
                mesh.set_maintenance(pending[0], True, pending[1])
                st.session_state["monitor_done"] = f"{pending[0]}: maintenance (drained)."
                st.rerun()  # drawn again without the confirmation box it answered
            except Exception as exc:
                st.error(f"Drain failed: {explain(exc)}")
        if cancel.button("Cancel"):
            st.session_state.pop("monitor_drain", None)
            st.rerun()
if not mesh.settings.token:
    st.caption("No REGISTRY_TOKEN set: a registry with a token will refuse drain/undrain.")
