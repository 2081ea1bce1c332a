"""Real etcd members on loopback for the etcd-store tests (Debian's ``etcd-server`` package)."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.support import free_port, wait_until

# Fast elections so a killed leader is replaced in about a second, not the default's few.
TIMING_FLAGS = ("--heartbeat-interval", "50", "--election-timeout", "500")


def etcd_binary() -> str | None:
    return shutil.which("etcd")


def unique_prefix() -> str:
    """A key prefix of its own, so tests sharing one etcd never see each other's instances."""
    return f"/test-{uuid.uuid4().hex[:12]}/"


@dataclass
class EtcdMember:
    name: str
    client_url: str
    peer_url: str
    log_path: Path
    popen: subprocess.Popen | None = None
    argv: list[str] = field(default_factory=list)

    def healthy(self) -> bool:
        try:
            return requests.get(self.client_url + "/health", timeout=1).json().get("health") == "true"
        except (requests.RequestException, ValueError):
            return False

    def start(self) -> None:
        """(Re)start this member with its own ports and data dir."""
        handle = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.popen = subprocess.Popen(self.argv, stdout=handle, stderr=subprocess.STDOUT)

    def kill9(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


@dataclass
class EtcdCluster:
    """``size`` etcd members forming one cluster, each with its own data dir under ``root``."""

    root: Path
    size: int = 1
    members: list[EtcdMember] = field(default_factory=list)

    def start(self) -> EtcdCluster:
        binary = etcd_binary()
        assert binary, "etcd is not installed"
        token = uuid.uuid4().hex[:8]
        for i in range(self.size):
            name = f"m{i}"
            self.members.append(
                EtcdMember(
                    name,
                    f"http://127.0.0.1:{free_port()}",
                    f"http://127.0.0.1:{free_port()}",
                    self.root / f"etcd-{name}.log",
                )
            )
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for m in self.members:
            args = [
                binary,
                "--name", m.name,
                "--data-dir", str(self.root / f"etcd-{m.name}"),
                "--listen-client-urls", m.client_url,
                "--advertise-client-urls", m.client_url,
                "--listen-peer-urls", m.peer_url,
                "--initial-advertise-peer-urls", m.peer_url,
                "--initial-cluster", initial,
                "--initial-cluster-token", token,
                "--initial-cluster-state", "new",
                *TIMING_FLAGS,
            ]  # fmt: skip
            m.argv = args
            m.start()
        for m in self.members:
            wait_until(m.healthy, timeout=30, what=f"etcd member {m.name} healthy")
        return self

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def stop(self) -> None:
        for m in self.members:
            m.stop()
