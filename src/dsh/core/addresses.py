"""What each member's name resolves to, both ways. No I/O: the daemon resolves.

One AddressBook per daemon; the simulator shares one among all its nodes.
"""

from __future__ import annotations

import ipaddress


def normalize_address(addr: str) -> str:
    """One spelling per address: ``::ffff:10.0.0.1`` is 10.0.0.1, zones dropped."""
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return addr
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


class AddressBook:
    def __init__(self) -> None:
        self._addresses: dict[str, tuple[str, ...]] = {}  # member key -> addresses
        self._by_address: dict[str, str] = {}  # address -> member key

    def put(self, key: str, addresses: tuple[str, ...]) -> None:
        """Record what a member resolves to (empty: it does not resolve)."""
        addresses = tuple(normalize_address(a) for a in addresses)
        for a in self._addresses.get(key, ()):
            if self._by_address.get(a) == key:
                del self._by_address[a]
        self._addresses[key] = addresses
        for a in addresses:
            self._by_address[a] = key

    def get(self, key: str) -> tuple[str, ...]:
        return self._addresses.get(key, ())

    def member_at(self, address: str) -> str | None:
        # The exact spelling first: it is what recvfrom gives for IPv4, and
        # this runs for every datagram of a flood.
        key = self._by_address.get(address)
        return key if key is not None else self._by_address.get(normalize_address(address))

    def keep(self, keys: set[str]) -> None:
        """Forget every member not in ``keys``."""
        for key in [k for k in self._addresses if k not in keys]:
            for a in self._addresses.pop(key):
                if self._by_address.get(a) == key:
                    del self._by_address[a]
