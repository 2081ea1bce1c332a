"""Node agents with real processes (issue 20): a launcher beats for its replicas, on both stores.

A registry process (SQLite, or etcd with a real etcd member), a launcher with two echo replicas
(the node agent), and a lone echo worker beside them (per-instance heartbeats, same catalog).
Timings: heartbeat 0.5 s, critical after 3 beats (TTL 1.5 s), removed 3 s later. Windows are
the ones a lone worker gets: TTL + one interval + one sweep for detection, with slack for a busy CI.
"""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from tests.integration.test_launcher import current_pids, launch, launchers  # noqa: F401 - fixture
from tests.support import AUTH, TOKEN, Proc, python_env, spawn, start_registry, wait_until

INTERVAL, TTL, DEREGISTER_AFTER = 0.5, 1.5, 3.0
FLAGS = ("--heartbeat-interval", str(INTERVAL), "--critical-after", "3", "--deregister-after", str(DEREGISTER_AFTER))
SLACK = 3.0  # a loaded 2-core CI machine


@pytest.fixture(params=["sqlite", "etcd"])
def node_registry(request, tmp_path: Path) -> Iterator[Proc]:
    flags = [*FLAGS, "--token", TOKEN]
    if request.param == "etcd":
        from tests.etcd_support import unique_prefix

        etcd = request.getfixturevalue("etcd_server")
        prefix = unique_prefix()
        flags += ["--store", "etcd", "--etcd-endpoints", ",".join(etcd.endpoints), "--etcd-prefix", prefix]
    proc = start_registry(tmp_path, *flags)
    proc.etcd = (etcd.endpoints[0], prefix) if request.param == "etcd" else None  # type: ignore[attr-defined]
    yield proc
    proc.stop()


def instances(reg: Proc) -> dict[str, dict]:
    resp = requests.get(f"{reg.base_url}/api/v1/services", params={"name": "echo"}, timeout=5)
    return {i["instance_id"]: i for i in resp.json()["data"]["instances"]}


def node_ids(reg: Proc, node: str) -> list[str]:
    return requests.get(f"{reg.base_url}/api/v1/nodes/{node}", timeout=5).json()["data"]["instances"]


def etcd_ids(endpoint: str, prefix: str) -> set[str]:
    """Instance ids etcd itself holds under ``prefix`` (no registry involved)."""
    from services.registry.etcd_store import EtcdStore

    store = EtcdStore([endpoint], prefix=prefix)
    try:
        return {store.instance_id(kv.key) for kv in store.list()[0]}
    finally:
        store.close()


def heartbeats(reg: Proc, result: str) -> float:
    text = requests.get(f"{reg.base_url}/metrics", timeout=5).text
    match = re.search(rf'^registry_heartbeats_total{{result="{result}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_a_launcher_beats_for_its_replicas_and_a_dead_one_goes_critical_alone(
    node_registry: Proc,
    launchers: list[Proc],  # noqa: F811
    tmp_path: Path,
) -> None:
    reg, node = node_registry, f"node-{uuid.uuid4().hex[:8]}"
    launcher = launch(
        launchers, tmp_path, "echo", "--replicas", "2", "--registry", reg.base_url, "--token", TOKEN,
        "--node", node, "--restart-backoff", "0.2", "--grace-period", "10", "--latency-ms", "1",
    )  # fmt: skip
    lone = spawn(
        ["-m", "services.worker.echo", "--port", "0", "--registry", reg.base_url, "--latency-ms", "1"],
        tmp_path / "lone.log",
        "",
        env=python_env(REGISTRY_TOKEN=TOKEN),
    )
    try:
        wait_until(lambda: len(node_ids(reg, node)) == 2, timeout=30, what="2 instances on the node")
        wait_until(lambda: len(instances(reg)) == 3, timeout=30, what="the lone worker too")
        mine = node_ids(reg, node)
        # Watched for longer than the TTL: only beats keep them passing, at every look.
        deadline = time.monotonic() + 4 * INTERVAL
        while time.monotonic() < deadline:
            now = instances(reg)
            assert {now[i]["status"] for i in now} == {"passing"}, now
            time.sleep(0.25)
        # The replicas send no heartbeats of their own; the lone worker does; the node beats.
        per_instance, node_beats, since = heartbeats(reg, "ok"), heartbeats(reg, "node"), time.monotonic()
        wait_until(lambda: heartbeats(reg, "node") >= node_beats + 3, timeout=6 * INTERVAL, what="three node beats")
        elapsed = time.monotonic() - since
        assert heartbeats(reg, "ok") - per_instance <= elapsed / INTERVAL + 2  # the lone worker's alone

        # One replica killed under a live agent: critical by itself, the rest of the node passing.
        by_pid = {i["metadata"]["pid"]: iid for iid, i in instances(reg).items() if iid in mine}
        victim_pid = next(iter(by_pid))
        victim = by_pid[victim_pid]
        os.kill(victim_pid, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(
            lambda: instances(reg).get(victim, {}).get("status") == "critical",
            timeout=TTL + INTERVAL + SLACK,
            what="the killed replica critical",
        )
        assert time.monotonic() - killed_at < TTL + 2 * INTERVAL + SLACK
        others = {i: v["status"] for i, v in instances(reg).items() if i != victim}
        assert set(others.values()) == {"passing"}, others
        # Its replacement registers itself on the node; the dead id is removed on schedule.
        wait_until(lambda: victim not in instances(reg), timeout=TTL + DEREGISTER_AFTER + SLACK + 4, what="removal")
        wait_until(lambda: len(node_ids(reg, node)) == 2, timeout=30, what="the restarted replica on the node")

        # The whole node dies (agent and replicas kill -9): every instance critical, then removed.
        pids = list(current_pids(launcher).values())
        launcher.popen.send_signal(signal.SIGSTOP)  # frozen first, so it neither restarts nor signals
        for pid in pids:
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)
        launcher.kill9()
        died = time.monotonic()
        on_node = node_ids(reg, node)
        wait_until(
            lambda: all(instances(reg).get(i, {}).get("status") in ("critical", None) for i in on_node),
            timeout=TTL + 2 * INTERVAL + SLACK,
            what="every instance of the dead node critical",
        )
        assert time.monotonic() - died < TTL + 2 * INTERVAL + SLACK
        if reg.etcd is None:
            wait_until(
                lambda: not set(on_node) & set(instances(reg)),
                timeout=TTL + DEREGISTER_AFTER + SLACK + 4,
                what="the dead node's instances removed",
            )
            assert [i["status"] for i in instances(reg).values()] == ["passing"]  # the lone worker lives on
        else:
            # Every registry replica down: the node's lease still expires and takes its instances.
            assert set(on_node) <= etcd_ids(*reg.etcd)  # etcd holds them now (so an empty read below means gone)
            reg.kill9()
            lone.kill9()
            wait_until(
                lambda: not set(on_node) & etcd_ids(*reg.etcd),
                timeout=TTL + DEREGISTER_AFTER + TTL + 1 + SLACK + 4,  # the lease: TTL + deregister + one refresh
                what="etcd to expire the dead node's lease",
            )
    finally:
        lone.stop()


def test_an_unknown_instance_is_told_to_register_again(
    launchers: list[Proc],  # noqa: F811
    tmp_path: Path,
) -> None:
    """The agent's side of ``unknown`` (the same on both stores: the unit tests cover the registry's)."""
    reg, node = start_registry(tmp_path, *FLAGS, "--token", TOKEN), f"node-{uuid.uuid4().hex[:8]}"
    try:
        _reregistered(reg, node, launchers, tmp_path)
    finally:
        reg.stop()


def _reregistered(reg: Proc, node: str, launchers: list[Proc], tmp_path: Path) -> None:  # noqa: F811
    launch(
        launchers, tmp_path, "echo", "--replicas", "1", "--registry", reg.base_url, "--token", TOKEN,
        "--node", node, "--latency-ms", "1",
    )  # fmt: skip
    wait_until(lambda: len(node_ids(reg, node)) == 1, timeout=30, what="the replica on the node")
    iid = node_ids(reg, node)[0]
    # An operator removes it by mistake: the agent's next beat names it unknown and the worker re-registers.
    assert requests.delete(f"{reg.base_url}/api/v1/services/{iid}", headers=AUTH, timeout=5).status_code == 200
    wait_until(lambda: node_ids(reg, node) == [iid], timeout=10 * INTERVAL + SLACK, what="re-registration")
    assert instances(reg)[iid]["status"] == "passing"
