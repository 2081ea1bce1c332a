"""Multi-host mesh with network namespaces as hosts.

A bridge in the root namespace joins three namespaces ("hosts") by veth pairs: the registry
runs in A, echo workers in B and C bind 0.0.0.0 without --advertise-host. They must find the
address of their own interface towards the registry, and a Router here (root namespace,
on the bridge) must reach both. A worker advertising 127.0.0.1 from B is refused with a 400
that names --advertise-host. Needs root and a working ``ip netns``; skips otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.client import RegistryClient, Router
from tests.support import (
    REGISTRY_FLAGS,
    REPO,
    TOKEN,
    Proc,
    free_port,
    python_env,
    read_json_line,
    wait_for_http,
    wait_until,
)

IP = shutil.which("ip")
HOSTS = ("a", "b", "c")


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    assert IP is not None
    return subprocess.run([IP, *args], capture_output=True, text=True, timeout=20, check=True)


def _ip_quiet(*args: str) -> None:
    """Cleanup: best effort, never raises."""
    if IP is not None:
        subprocess.run([IP, *args], capture_output=True, text=True, timeout=20, check=False)


def _skip_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux-only"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    if IP is None:
        return "the iproute2 'ip' command is not installed"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


def _free_subnet(seed: int) -> int:
    """The x of a 10.213.x.0/24 that no route or address on this machine uses yet."""
    used = _ip("-4", "-o", "addr", "show").stdout + _ip("-4", "route", "show", "table", "all").stdout
    for step in range(254):
        x = (seed + step) % 254 + 1
        if f"10.213.{x}." not in used:
            return x
    raise RuntimeError("no free 10.213.x.0/24")


@dataclass
class Net:
    """The bridge, the namespaces and every process started inside them."""

    tag: str
    subnet: int
    namespaces: dict[str, str] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"cmb{self.tag}"  # ≤ 15 characters with a 5-digit tag

    def veth(self, host: str) -> str:
        return f"cmv{self.tag}{host}"

    def peer(self, host: str) -> str:
        return f"cmp{self.tag}{host}"

    def build(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"10.213.{self.subnet}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for n, host in enumerate(HOSTS, start=2):
            ns = f"cmesh{self.tag}{host}"
            _ip("netns", "add", ns)
            self.namespaces[host] = ns
            _ip("link", "add", self.veth(host), "type", "veth", "peer", "name", self.peer(host))
            _ip("link", "set", self.veth(host), "master", self.bridge)
            _ip("link", "set", self.veth(host), "up")
            _ip("link", "set", self.peer(host), "netns", ns)
            address = f"10.213.{self.subnet}.{n}"
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", self.peer(host))
            _ip("-n", ns, "link", "set", self.peer(host), "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            self.addresses[host] = address
        _ip("netns", "exec", self.namespaces["a"], "true")  # `ip netns exec` itself works

    def spawn(self, host: str, args: list[str], log_path: Path, base_url: str = "") -> Proc:
        """``python args...`` inside ``host``'s namespace: an argv list, never a shell string."""
        assert IP is not None
        handle = open(log_path, "ab")  # noqa: SIM115 - lives as long as the process
        # `ip netns exec` execs the command, so the pid is the Python process itself.
        popen = subprocess.Popen(
            [IP, "netns", "exec", self.namespaces[host], sys.executable, *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=python_env(),
            cwd=REPO,
        )
        proc = Proc(popen, base_url, log_path)
        self.procs.append(proc)
        return proc

    def teardown(self) -> None:
        for proc in reversed(self.procs):
            try:
                proc.stop()
            except Exception:  # keep cleaning up whatever one process did
                proc.popen.kill()
        for host, ns in self.namespaces.items():
            _ip_quiet("link", "del", self.veth(host))  # takes its peer in the namespace along
            _ip_quiet("netns", "del", ns)
        _ip_quiet("link", "del", self.bridge)


@pytest.fixture
def net() -> Iterator[Net]:
    pid = os.getpid()
    topology = Net(tag=f"{pid % 100000:05d}", subnet=_free_subnet(pid))
    try:
        topology.build()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        topology.teardown()
        stderr = getattr(exc, "stderr", "") or ""
        pytest.skip(f"cannot build the namespace network ({' '.join(map(str, exc.cmd))}): {stderr.strip()}")
    try:
        yield topology
    finally:
        topology.teardown()


@pytest.fixture
def mesh(net: Net, tmp_path: Path) -> dict[str, str]:
    """A registry in namespace A, reachable from the root namespace over the bridge."""
    port = free_port()
    url = f"http://{net.addresses['a']}:{port}"
    registry = net.spawn(
        "a",
        ["-m", "services.registry", "--host", "0.0.0.0", "--port", str(port), "--db", str(tmp_path / "reg.db"),
         *REGISTRY_FLAGS],
        tmp_path / "registry.log",
        url,
    )  # fmt: skip
    wait_for_http(registry, "/health", timeout=30)
    return {"registry": url}


def start_echo(net: Net, host: str, registry: str, log_path: Path, *extra: str) -> Proc:
    proc = net.spawn(
        host,
        ["-m", "services.worker.echo", "--host", "0.0.0.0", "--port", "0", "--registry", registry,
         "--token", TOKEN, "--drain-timeout", "2", *extra],
        log_path,
    )  # fmt: skip
    proc.base_url = read_json_line(proc, "event", timeout=30)["base_url"]
    return proc


def test_workers_advertise_their_own_host_and_the_router_reaches_them(
    net: Net, mesh: dict[str, str], tmp_path: Path
) -> None:
    registry = mesh["registry"]
    workers = {host: start_echo(net, host, registry, tmp_path / f"echo-{host}.log") for host in ("b", "c")}
    for host, proc in workers.items():
        assert proc.base_url.startswith(f"http://{net.addresses[host]}:"), proc.log()

    client = RegistryClient(registry, wait_s=2, backoff_base_s=0.05, backoff_cap_s=0.5)
    try:

        def passing() -> dict[str, str] | None:
            snap = client.refresh(name="echo")
            found = {i.host: i.base_url for i in snap.instances if i.status == "passing"}
            return found if len(found) == 2 else None

        found = wait_until(passing, timeout=30, what="both workers registered and passing")
        assert set(found) == {net.addresses["b"], net.addresses["c"]}
        assert not any(host.startswith("127.") for host in found)
        assert set(found.values()) == {proc.base_url for proc in workers.values()}

        with Router(client, balancer="round_robin", deadline_s=10) as router:
            results = [router.call("echo", "POST", "/predict", json={"i": i}) for i in range(10)]
        served = {r.data["served_by"]["base_url"] for r in results}
        assert served == {proc.base_url for proc in workers.values()}
        assert all(r.attempts == 1 for r in results)
    finally:
        client.close()


def test_a_loopback_advertise_host_from_another_host_is_refused_clearly(
    net: Net, mesh: dict[str, str], tmp_path: Path
) -> None:
    registry = mesh["registry"]
    proc = start_echo(net, "b", registry, tmp_path / "echo-loopback.log", "--advertise-host", "127.0.0.1")
    assert proc.base_url.startswith("http://127.0.0.1:")

    def refused() -> bool:
        log = proc.log()
        return "registration failed" in log and "HTTP 400" in log

    wait_until(refused, timeout=30, what="the registration to be refused")
    log = proc.log()
    assert "loopback" in log and "--advertise-host" in log and net.addresses["b"] in log, log
    client = RegistryClient(registry, wait_s=1)
    try:
        assert not client.refresh(name="echo").instances
    finally:
        client.close()
