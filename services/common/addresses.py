"""Address predicates shared by workers (what to advertise) and the registry (what to refuse), and
the one canonical spelling of a host, so one socket is one address however it is written."""

from __future__ import annotations

import ipaddress
import re
import socket

# A name whose last label is a number is an IPv4 address in inet_aton's (and browsers') reading:
# 127.1, 2130706433, 0x7f000001 and 0177.0.0.1 all connect to 127.0.0.1.
_NUMERIC_LABEL = re.compile(r"^(0[xX][0-9A-Fa-f]*|[0-9]+)$")


def canonical_host(host: str) -> str:
    """The one spelling of ``host``: dotted-quad IPv4 (IPv4-mapped IPv6 too), compressed IPv6, lower-case name.

    Raises ValueError for a name that reads as a number but is no IPv4 address (``1.2.3.999``).
    """
    name = host.strip().strip("[]").rstrip(".").lower()
    try:
        addr = ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        mapped = getattr(addr, "ipv4_mapped", None)
        return str(mapped or addr)
    if name and _NUMERIC_LABEL.match(name.rsplit(".", 1)[-1]):
        return str(_ipv4_from_numbers(name))
    return name


def _ipv4_from_numbers(name: str) -> ipaddress.IPv4Address:
    """inet_aton's forms: 1 to 4 parts, each decimal, 0x-hex or 0-octal; the last fills the rest."""
    parts = name.split(".")
    if len(parts) > 4 or not all(_NUMERIC_LABEL.match(p) for p in parts):
        raise ValueError(f"{name!r} reads as an IPv4 address but is not one")
    numbers = [int(p, 16) if p[:2] == "0x" else int(p, 8) if len(p) > 1 and p[0] == "0" else int(p) for p in parts]
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(parts)):
        raise ValueError(f"{name!r} reads as an IPv4 address but is out of range")
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (also IPv4-mapped, and in any spelling: 127.1, 0x7f000001) and ``localhost``.

    The name ``localhost`` counts, and (RFC 6761) ``*.localhost`` too.
    """
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        addr = ipaddress.ip_address(canonical_host(name.split("%", 1)[0]))
    except ValueError:
        return False
    return addr.is_loopback


def is_unspecified(host: str) -> bool:
    """0.0.0.0 or :: in any spelling (``0``, ``0x0``): a wildcard, which reaches the caller's own machine."""
    try:
        return ipaddress.ip_address(canonical_host(host.split("%", 1)[0])).is_unspecified
    except ValueError:
        return False


def is_own_address(address: str) -> bool:
    """Whether ``address`` belongs to this machine (only a local address can be bound)."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((address, 0))
        return True
    except (OSError, ValueError):
        return False
