"""The advertised address: flag, specific bind, else the interface that routes to the registry."""

from __future__ import annotations

import logging
import socket
from typing import ClassVar

import pytest

from services.common.settings import WorkerSettings
from services.worker import address
from services.worker.address import (
    detect_advertise_host,
    is_loopback,
    registry_endpoints,
    route_source_address,
)
from services.worker.serve import advertise_host
from tests.support import own_ipv4


def settings(*registry: str, advertise: str = "") -> WorkerSettings:
    return WorkerSettings(registry_urls=list(registry), advertise_host=advertise)


@pytest.fixture
def udp_listener():
    """A real UDP socket on loopback: the 'registry' a probe connects to (it receives nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.2)
        yield sock


def test_the_flag_wins_then_a_specific_bind() -> None:
    assert advertise_host(settings("http://10.1.2.3:8500", advertise="gpu-7.lab"), "0.0.0.0") == "gpu-7.lab"
    assert advertise_host(settings("http://10.1.2.3:8500"), "192.0.2.10") == "192.0.2.10"
    assert advertise_host(settings("http://10.1.2.3:8500"), "127.0.0.1") == "127.0.0.1"


def test_registry_on_loopback_means_loopback_and_no_packet_is_sent(udp_listener: socket.socket) -> None:
    port = udp_listener.getsockname()[1]
    assert route_source_address("127.0.0.1", port) == "127.0.0.1"
    with pytest.raises(TimeoutError):
        udp_listener.recvfrom(64)  # connecting a UDP socket only picks the route
    assert advertise_host(settings(f"http://127.0.0.1:{port}"), "0.0.0.0") == "127.0.0.1"


def test_host_names_are_resolved_first() -> None:
    assert detect_advertise_host(["http://localhost:8500"], "0.0.0.0") == "127.0.0.1"


def test_a_registry_on_this_machines_interface_gives_that_interfaces_address() -> None:
    own = own_ipv4()
    if own is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    assert detect_advertise_host([f"http://{own}:8500"], "0.0.0.0") == own


class RecordingSocket:
    """Stands in for socket.socket: records every connect, answers from a route table."""

    connects: ClassVar[list[tuple[str, int]]] = []
    routes: ClassVar[dict[str, str]] = {}

    def __init__(self, family: int, kind: int, proto: int = 0) -> None:
        self.peer: tuple[str, int] | None = None

    def __enter__(self) -> RecordingSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def connect(self, sockaddr: tuple[str, int]) -> None:
        RecordingSocket.connects.append(sockaddr[:2])
        if sockaddr[0] not in self.routes:
            raise OSError(101, "Network is unreachable")
        self.peer = sockaddr[:2]

    def getsockname(self) -> tuple[str, int]:
        assert self.peer is not None
        return (self.routes[self.peer[0]], 40000)


@pytest.fixture
def fake_net(monkeypatch: pytest.MonkeyPatch):
    """Routes by destination; names resolve through a small table (no DNS, no real socket)."""
    names = {"reg-a.lab": "10.9.0.1", "reg-b.lab": "10.8.0.1", "localhost": "127.0.0.1"}

    def getaddrinfo(host, port, family=0, kind=0, *rest):
        ip = names.get(host, host)
        try:
            socket.inet_aton(ip)
        except OSError:
            raise socket.gaierror(-2, "Name or service not known") from None
        return [(socket.AF_INET, socket.SOCK_DGRAM, 17, "", (ip, port))]

    RecordingSocket.connects = []
    RecordingSocket.routes = {"10.9.0.1": "10.9.0.42", "127.0.0.1": "127.0.0.1"}
    monkeypatch.setattr(address.socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(address.socket, "socket", RecordingSocket)
    monkeypatch.setattr(address.socket, "gethostname", lambda: "worker-host")
    return RecordingSocket


def test_only_the_registry_is_probed_never_an_outside_address(fake_net) -> None:
    assert detect_advertise_host(["http://reg-a.lab:8500"], "0.0.0.0") == "10.9.0.42"
    assert fake_net.connects == [("10.9.0.1", 8500)]


def test_a_routable_registry_beats_a_local_one(fake_net) -> None:
    urls = ["http://localhost:8500,http://reg-b.lab:8500", "reg-a.lab:9000"]
    assert detect_advertise_host(urls, "0.0.0.0") == "10.9.0.42"
    assert fake_net.connects == [("127.0.0.1", 8500), ("10.8.0.1", 8500), ("10.9.0.1", 9000)]


def test_no_route_falls_back_with_a_clear_warning(fake_net, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="services.worker.address"):
        assert detect_advertise_host(["http://reg-b.lab:8500", "http://nowhere.lab:1"], "0.0.0.0") == "127.0.0.1"
    message = caplog.text
    assert "cannot find the interface that routes to the registry" in message
    assert "reg-b.lab:8500" in message and "nowhere.lab:1" in message and "--advertise-host" in message


def test_fallback_prefers_this_host_names_address(fake_net, monkeypatch: pytest.MonkeyPatch) -> None:
    def getaddrinfo(host, port, family=0, kind=0, *rest):
        if host == "worker-host":
            return [(socket.AF_INET, kind, 6, "", ("127.0.1.1", 0)), (socket.AF_INET, kind, 6, "", ("10.7.7.7", 0))]
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(address.socket, "getaddrinfo", getaddrinfo)
    assert detect_advertise_host(["http://reg-a.lab:8500"], "0.0.0.0") == "10.7.7.7"


def test_standalone_worker_does_not_warn(fake_net, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="services.worker.address"):
        assert detect_advertise_host([], "0.0.0.0") == "127.0.0.1"
    assert not caplog.records
    assert fake_net.connects == []


def test_registry_endpoints_parse_every_url_form() -> None:
    urls = ["http://a:1,b:2/", "https://c", "http://[fd00::5]:8500/x", "a:1", " ", "http://bad:port"]
    assert registry_endpoints(urls) == [("a", 1), ("b", 2), ("c", 443), ("fd00::5", 8500)]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LocalHost.", True),
        ("api.localhost", True),
        ("10.0.0.5", False),
        ("::", False),
        ("gpu-7.lab", False),
        ("localhost-7", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected
