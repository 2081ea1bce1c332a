"""The node agent's beat decisions (services.worker.node_agent), without HTTP: what each beat lists.

The local check is replaced by a table (the agent's HTTP side runs in
tests/integration/test_node_agents.py against real workers and a real registry).
"""

from __future__ import annotations

from services.worker.node_agent import NodeAgent, NodeBinding, Replica, default_node_name


class TableAgent(NodeAgent):
    def __init__(self, replicas: list[Replica], health: dict[str, tuple[str, dict]]) -> None:
        super().__init__(["http://127.0.0.1:9"], NodeBinding("n1", "s" * 32), lambda: replicas, full_every=3)
        self.health = health
        self.deregister_after = 10.0

    def check(self, replica: Replica):
        return self.health[replica.instance_id]


def listed(body) -> dict[str, str]:
    return {i["instance_id"]: i["status"] for i in body["instances"]}


def test_full_beats_list_everyone_partial_beats_only_changes():
    reps = [Replica(1, True, "a", "http://x"), Replica(2, True, "b", "http://y"), Replica(3, True, None, None)]
    agent = TableAgent(reps, {"a": ("passing", {"inflight": 0}), "b": ("passing", {"inflight": 0})})
    body, pids = agent.beat_body(0.0)
    assert body["full"] and listed(body) == {"a": "passing", "b": "passing"} and pids == {"a": 1, "b": 2}
    agent._beats = 1
    body, _ = agent.beat_body(1.0)
    assert not body["full"] and body["instances"] == []  # nothing changed: the registry renews both
    agent.health["b"] = ("critical", {})
    agent._beats = 2
    body, _ = agent.beat_body(2.0)
    assert not body["full"] and listed(body) == {"b": "critical"}
    agent._beats = 3
    assert agent.beat_body(3.0)[0]["full"]


def test_a_dead_replica_is_critical_at_once_then_left_out_of_a_full_beat():
    reps = [Replica(1, True, "a", "http://x"), Replica(2, True, "b", "http://y")]
    agent = TableAgent(reps, {"a": ("passing", {}), "b": ("passing", {})})
    agent.beat_body(0.0)
    reps[1] = Replica(2, False, "b", "http://y")  # killed
    agent._beats = 1
    body, pids = agent.beat_body(1.0)
    assert listed(body) == {"b": "critical"} and "b" not in pids
    reps[1] = Replica(None, True, None, None)  # restarting: no id yet
    agent._beats = 2
    assert agent.beat_body(5.0)[0]["instances"] == []  # critical already said
    agent._beats = 4
    body, _ = agent.beat_body(11.5)  # dead for deregister_after: dropped, and this beat or the next is full
    assert "b" not in listed(body)
    body, _ = agent.beat_body(12.0)
    assert body["full"] and listed(body) == {"a": "passing"}  # the registry removes b


def test_default_node_names_are_valid_and_one_per_launcher():
    name = default_node_name("compass-lite")
    assert name.endswith("-compass-lite-" + name.rsplit("-", 1)[1]) and len(name) <= 128
    assert NodeBinding.from_env({"REGISTRY_NODE": "n", "REGISTRY_NODE_SECRET": "x" * 40}) == NodeBinding("n", "x" * 40)
    assert NodeBinding.from_env({"REGISTRY_NODE": "n"}) is None
