"""Two stateless registry replicas over a 3-member etcd cluster, with real workers and clients.

Failures tried, under client load: kill -9 of the etcd leader, then kill -9 of one registry
replica. Nothing may be lost: no registration, no idempotent request; and a worker killed
afterwards must still turn critical and be removed on time (etcd's lease does the removal).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from services.client import RegistryClient, Router
from tests.etcd_support import EtcdCluster, etcd_binary, unique_prefix
from tests.integration.test_client_mesh import hammer
from tests.support import Proc, start_registry, start_workers, wait_until

INTERVAL = 0.5
CRITICAL_AFTER = 3
DEREGISTER_AFTER = 3.0
FLAGS = (
    "--heartbeat-interval", str(INTERVAL),
    "--critical-after", str(CRITICAL_AFTER),
    "--deregister-after", str(DEREGISTER_AFTER),
)  # fmt: skip

pytestmark = pytest.mark.skipif(etcd_binary() is None, reason="etcd is not installed (Debian etcd-server)")


def leader(cluster: EtcdCluster) -> int:
    """Index of the member that leads now (etcd's maintenance status names the leader's id)."""
    for i, member in enumerate(cluster.members):
        if member.popen is None or member.popen.poll() is not None:
            continue
        status = requests.post(member.client_url + "/v3/maintenance/status", json={}, timeout=2).json()
        if status.get("leader") == status["header"]["member_id"]:
            return i
    raise AssertionError("no etcd member leads")


def passing(registry: str) -> dict[str, dict]:
    listed = requests.get(f"{registry}/api/v1/services", params={"name": "echo"}, timeout=5).json()["data"]
    return {i["instance_id"]: i for i in listed["instances"] if i["status"] == "passing"}


@pytest.fixture
def fleet(tmp_path: Path):
    cluster = EtcdCluster(tmp_path, size=3).start()
    procs: list[Proc] = []
    try:
        store = ("--store", "etcd", "--etcd-endpoints", ",".join(cluster.endpoints), "--etcd-prefix", unique_prefix())
        replicas = [start_registry(tmp_path, *FLAGS, *store, name=f"registry{i}") for i in range(2)]
        procs += replicas
        urls = ",".join(r.base_url for r in replicas)
        workers = start_workers(tmp_path, 3, "--registry", urls, "--latency-ms", "2", "--drain-timeout", "5")
        procs += workers
        yield {"cluster": cluster, "replicas": replicas, "workers": workers, "urls": urls}
    finally:
        for proc in procs:
            proc.stop()
        cluster.stop()


def test_etcd_leader_then_a_replica_killed_under_load_loses_nothing(fleet) -> None:
    cluster, replicas, workers = fleet["cluster"], fleet["replicas"], fleet["workers"]
    for replica in replicas:  # both replicas see all three: they share one etcd
        wait_until(lambda r=replica: len(passing(r.base_url)) == 3, timeout=20, what="3 workers on each replica")
    ids = set(passing(replicas[0].base_url))

    client = RegistryClient([r.base_url for r in replicas], wait_s=2, backoff_base_s=0.05, backoff_cap_s=0.5)
    with Router(client, deadline_s=20) as router:
        results, failures, (threads, done) = hammer(router, 1200, 6, target="echo", method="POST", path="/predict")
        wait_until(lambda: done[0] >= 200, timeout=60, interval=0.01, what="load to be under way")
        cluster.members[leader(cluster)].kill9()
        wait_until(lambda: done[0] >= 500, timeout=60, interval=0.01, what="load after the leader was killed")
        replicas[0].kill9()
        for t in threads:
            t.join(timeout=120)
    client.close()
    assert not failures, f"{len(failures)} idempotent requests failed: {failures[:3]}"
    assert len(results) == 1200
    assert {r.instance for r in results} == ids  # every worker kept serving

    survivor = replicas[1].base_url
    # Registrations survived both kills, and the workers keep beating through the survivor.
    beats = {i: inst["last_heartbeat"] for i, inst in passing(survivor).items()}
    assert set(beats) == ids
    wait_until(
        lambda: all(passing(survivor).get(i, {}).get("last_heartbeat", b) != b for i, b in beats.items()),
        timeout=10,
        what="every worker to heartbeat through the surviving replica",
    )

    # A worker killed now still turns critical, then etcd's lease removes it, on time.
    victim = workers[0]
    victim_id = next(i for i, inst in passing(survivor).items() if inst["base_url"] == victim.base_url)
    victim.kill9()
    killed = time.monotonic()
    critical_budget = (CRITICAL_AFTER + 1) * INTERVAL + INTERVAL / 2 + 0.5  # one sweep + the etcd round trip

    def state() -> str | None:
        listed = requests.get(f"{survivor}/api/v1/services/{victim_id}", timeout=5)
        return listed.json()["data"]["status"] if listed.status_code == 200 else None

    wait_until(lambda: state() == "critical", timeout=critical_budget + 1, interval=0.05, what="critical")
    assert time.monotonic() - killed <= critical_budget
    ttl = CRITICAL_AFTER * INTERVAL
    lease = ttl + DEREGISTER_AFTER + ttl  # plus one refresh period; whole seconds in etcd: 6
    wait_until(lambda: state() is None, timeout=lease + 3, interval=0.1, what="etcd to expire the dead worker")
    assert set(passing(survivor)) == ids - {victim_id}
