"""Fixtures every test folder may use: one real etcd member for the etcd-store variants."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest

from tests.etcd_support import EtcdCluster, etcd_binary


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """A one-member etcd cluster for the whole run; tests keep apart by key prefix."""
    if etcd_binary() is None:
        pytest.skip("etcd is not installed (Debian etcd-server; scripts/system_packages.sh installs it)")
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd"), size=1).start()
    yield cluster
    cluster.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the Milvus Lite servers of in-process vector tests quietly, once every test has run.

    Milvus Lite keeps one server per file until interpreter exit, and it and its background threads
    log each step at INFO through handlers some test set up on a capture stream that pytest has
    closed since ("--- Logging error --- ... I/O operation on closed file" at the end of a run).
    The session is over, so nothing of ours logs at INFO after this.
    """
    logging.disable(logging.INFO)
    manager = sys.modules.get("milvus_lite.server_manager")
    if manager is not None:
        manager.server_manager_instance.release_all()
