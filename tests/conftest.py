"""Fixtures every test folder may use: one real etcd member for the etcd-store variants."""

from __future__ import annotations

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
