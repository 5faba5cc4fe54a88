"""Which cluster entry is this machine, and what do the members' names resolve to.

``find_self`` is pure: it matches resolved addresses against this machine's
interface addresses and its host names. ``local_addresses`` and ``resolve``
do the I/O.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping

import psutil

from ..core.addresses import normalize_address
from ..core.cluster import Discovery, NodeSpec
from ..errors import ConfigError


def find_self(
    specs: Iterable[NodeSpec],
    resolved: Mapping[str, tuple[str, ...]],
    local_addresses: set[str],
    hostnames: Iterable[str],
) -> NodeSpec:
    """The one entry that is this machine; ConfigError listing what was tried otherwise."""
    specs = list(specs)
    names = {h.lower().rstrip(".") for h in hostnames if h}
    by_name = [s for s in specs if s.key in names]
    by_address = [s for s in specs if set(resolved.get(s.key, ())) & local_addresses]
    matches = by_address or by_name
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ConfigError(
            "this machine matches several cluster entries ("
            + ", ".join(s.name for s in matches)
            + "); choose one with --name"
        )
    raise ConfigError(
        "no cluster entry matches this machine; tried addresses "
        + ", ".join(sorted(local_addresses))
        + " and names "
        + ", ".join(sorted(names))
        + " (use --name NAME)"
    )


def local_addresses() -> set[str]:
    """Every IP address of this machine's interfaces."""
    found = set()
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                found.add(normalize_address(a.address))
    return found


def local_hostnames() -> list[str]:
    return [socket.gethostname(), socket.getfqdn()]


def resolve(name: str) -> tuple[str, ...]:
    """Addresses of ``name``, IPv4 first; () if it does not resolve."""
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError):
        return ()
    addresses = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for info in infos:
            address = normalize_address(str(info[4][0]))
            if info[0] == family and address not in addresses:
                addresses.append(address)
    return tuple(addresses)


def discovery_name(discovery: Iterable[Discovery]) -> str:
    """A name for a node that no cluster entry lists: its address on the subnet
    of a broadcast line, else its first IPv4 address that is not loopback, else
    its host name."""
    broadcasts = {d.address for d in discovery if d.kind == "broadcast"}
    first = None
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family != socket.AF_INET or a.address.startswith("127."):
                continue
            if a.broadcast in broadcasts:
                return a.address
            first = first or a.address
    return first or socket.gethostname()
