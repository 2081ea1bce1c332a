"""Fixtures every test folder may use: one real etcd member for the etcd-store variants."""

from __future__ import annotations

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
    """Stop the Milvus Lite servers of in-process vector tests while pytest's streams are still open.

    Milvus Lite keeps one server per file until interpreter exit, and its exit handler logs each
    stop: after pytest has closed its capture streams, which printed "I/O operation on closed file".
    """
    manager = sys.modules.get("milvus_lite.server_manager")
    if manager is not None:
        manager.server_manager_instance.release_all()
