"""The node agents' routes (DESIGN "Node agents"): claim a node, beat for its instances, list them.

The rules live in :mod:`services.registry.nodes`; the caller's node is proved in
:func:`services.registry.state.caller` (``X-Node`` + ``X-Node-Secret``). The plain beat is answered
before Flask by :mod:`services.registry.fastpath`, with the same checks and answer; keep the two alike.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from services.common.envelope import ApiError, ErrorCode, ok
from services.registry.bodies import read_body
from services.registry.nodes import NODE_HEADER, NODE_SECRET_HEADER, parse_node_beat, validate_node
from services.registry.ownership import Caller
from services.registry.state import caller, state

nodes = Blueprint("registry_nodes", __name__)


def _node_caller(node: str) -> Caller:
    """The caller, which must have proved ``node`` (its ``X-Node`` headers name this node)."""
    validate_node(node)
    who = caller()
    if who.node != node:
        raise ApiError(ErrorCode.UNAUTHORIZED, f"send {NODE_HEADER}: {node} and its {NODE_SECRET_HEADER}")
    return who


@nodes.put("/nodes/<node>")
def claim(node: str) -> Response:
    """Claim a node (the agent does so before its first beat); idempotent for the holder of its secret."""
    _node_caller(node)  # the claim itself happens while the caller is verified
    st = state()
    return ok(_timing(st, node), "node claimed")


@nodes.put("/nodes/<node>/heartbeat")
def node_heartbeat(node: str) -> Response:
    _node_caller(node)
    st = state()
    items, full = parse_node_beat(read_body())
    result = st.catalog.node_heartbeat(node, items, full)
    if result is None:
        raise node_gone(node)
    st.metrics.heartbeats.labels(result="node").inc()
    if result.unknown:
        st.metrics.heartbeats.labels(result="unknown").inc(len(result.unknown))
    if result.removed:
        st.metrics.deregistrations.labels(reason="node").inc(len(result.removed))
    data = {
        **_timing(st, node),
        "renewed": result.renewed,
        "unknown": result.unknown,
        "removed": result.removed,
    }
    return ok(data, f"{result.renewed} instance(s) renewed")


def node_gone(node: str) -> ApiError:
    """The 404 of a beat for a node that is not claimed (its lease ran out): the agent claims it again."""
    return ApiError(ErrorCode.NOT_FOUND, f"node {node!r} is not claimed; claim it again (PUT /api/v1/nodes/{node})")


@nodes.get("/nodes/<node>")
def node_info(node: str) -> Response:
    validate_node(node)
    return ok({"node": node, "instances": state().catalog.node_instances(node)})


def _timing(st: Any, node: str) -> dict[str, Any]:
    return {
        "node": node,
        "heartbeat_interval_s": st.settings.heartbeat_interval,
        "ttl_s": st.settings.ttl_s,
        "deregister_after_s": st.settings.deregister_after,
    }
