"""The address a worker advertises: the one other machines reach it at.

Order: ``--advertise-host``; else the bind address when it is a specific one; else (a
wildcard bind) the address of the local interface that routes to the registry. The route is
asked of the kernel by connecting a UDP socket to the registry's host and port, which sends
no packet; nothing is ever sent towards the internet. A registry on loopback makes loopback
the right answer (everything is on one machine). When no route can be found the worker falls
back to this host name's address (else 127.0.0.1) and says so: a registry on another machine
then refuses a loopback address with a message naming ``--advertise-host``.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from services.common.addresses import is_loopback

log = logging.getLogger(__name__)

WILDCARDS = frozenset({"0.0.0.0", "::", ""})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def registry_endpoints(urls: Sequence[str]) -> list[tuple[str, int]]:
    """``(host, port)`` of each registry URL (``http://h:p``, ``h:p``, comma lists), in order."""
    out: list[tuple[str, int]] = []
    for raw in urls:
        for part in raw.split(","):
            url = part.strip()
            if not url:
                continue
            if "://" not in url:
                url = "http://" + url
            try:
                split = urlsplit(url)
                port = split.port or _DEFAULT_PORTS.get(split.scheme, 80)
            except ValueError:  # a malformed port; the agent reports the URL itself
                continue
            if split.hostname and (split.hostname, port) not in out:
                out.append((split.hostname, port))
    return out


def route_source_address(host: str, port: int, family: int = socket.AF_UNSPEC) -> str | None:
    """The local address the kernel would send from to reach ``host:port`` (None: no route).

    ``connect`` on a UDP socket only picks the route and the source address; no packet leaves.
    The host name is resolved first (every address is tried, in the resolver's order).
    """
    try:
        candidates = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as exc:
        log.debug("cannot resolve %s: %s", host, exc)
        return None
    for fam, kind, proto, _, sockaddr in candidates:
        try:
            with socket.socket(fam, kind, proto) as probe:
                probe.connect(sockaddr)
                address = str(probe.getsockname()[0])
        except OSError as exc:
            log.debug("no route to %s (%s): %s", sockaddr[0], host, exc)
            continue
        if address not in WILDCARDS:
            return address.split("%", 1)[0]
    return None


def _families(bound_host: str) -> int:
    """A 0.0.0.0 socket only answers on IPv4, so only an IPv4 address may be advertised for it."""
    return socket.AF_INET if bound_host in ("0.0.0.0", "") else socket.AF_UNSPEC


def host_name_address(family: int = socket.AF_UNSPEC) -> str | None:
    """This host name's first non-loopback address, from the resolver (/etc/hosts first)."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, family, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    for *_, sockaddr in infos:
        address = str(sockaddr[0])
        if not is_loopback(address):
            return address
    return None


def detect_advertise_host(registry_urls: Sequence[str], bound_host: str) -> str:
    """The address of the interface that routes to the registry (a wildcard bind's advertise host).

    With several registries, the first routable (non-loopback) answer wins: a worker that
    registers with a local and a remote registry must be reachable from the remote side.
    Loopback is returned only when every registry is on this machine's loopback.
    """
    family = _families(bound_host)
    endpoints = registry_endpoints(registry_urls)
    loopback: str | None = None
    for host, port in endpoints:
        address = route_source_address(host, port, family)
        if address is None:
            continue
        if not is_loopback(address):
            log.info("advertising %s: the interface that routes to the registry at %s", address, host)
            return address
        loopback = loopback or address
    if loopback is not None:
        log.info("every registry is on loopback: advertising %s", loopback)
        return loopback
    fallback = host_name_address(family) or "127.0.0.1"
    if not endpoints:
        log.info("no registry to route to: advertising %s (this host name's address)", fallback)
        return fallback
    log.warning(
        "cannot find the interface that routes to the registry (%s): it does not resolve or has no route; "
        "advertising %s instead. Pass --advertise-host with an address other machines can reach",
        ", ".join(f"{h}:{p}" for h, p in endpoints),
        fallback,
    )
    return fallback
