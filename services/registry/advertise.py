"""The registry's half of multi-host: a loopback address is only fine from this machine.

A worker on another machine that advertises 127.0.0.1 would be registered at an address no
client can reach; refusing it with the fix in the message beats a fleet of unreachable rows.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from services.common.addresses import is_loopback, is_own_address, is_unspecified
from services.common.envelope import ApiError, ErrorCode
from services.common.instance import Instance


def refuse_loopback_from_afar(inst: Instance, remote: str | None) -> None:
    """400 when a worker on another machine advertises a loopback address nobody else can reach.

    A registration sent from this machine (over loopback, from one of its own addresses, or
    from no IP at all) may advertise loopback: the registry and the worker share a host.
    """
    try:
        url_host = urlsplit(inst.base_url).hostname
    except ValueError:
        url_host = None
    field_name, value = next(
        ((f, v) for f, v in (("host", inst.host), ("base_url", url_host)) if v and _local_only(v)), (None, None)
    )
    if field_name is None or not remote or is_loopback(remote) or is_own_address(remote):
        return
    raise ApiError(
        ErrorCode.INVALID_REQUEST,
        f"{field_name} {value!r} is a loopback (or wildcard) address, but this registration came from {remote} "
        "(another machine): no client could reach the worker there. Start the worker with "
        "--advertise-host <an address of its machine that clients can reach> (or bind a routable --host)",
    )


def _local_only(host: str) -> bool:
    """Loopback, or the wildcard address (which reaches whoever connects to it: their own machine).

    Hosts are canonical by now (``services.common.addresses.canonical_host``), so 127.1 and
    0x7f000001 cannot dodge this.
    """
    return is_loopback(host) or is_unspecified(host)
