"""Who may ask the TCP ports: ``--allow`` rules, pure.

Rules are CIDRs (an address is a /32 or /128) and two words: ``loopback``
(127.0.0.0/8, ::1) and ``members`` (every address the cluster's names
resolve to, as the daemon knows them now). The default is both words.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from ..errors import ConfigError

Rule = str | ipaddress.IPv4Network | ipaddress.IPv6Network
WORDS = ("loopback", "members")


def parse_allow(items: tuple[str, ...]) -> list[Rule]:
    rules: list[Rule] = []
    for item in items:
        if item in WORDS:
            rules.append(item)
            continue
        try:
            rules.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"--allow {item}: not a CIDR, 'loopback' or 'members'") from None
    return rules


def allowed(address: str, rules: list[Rule], is_member: Callable[[str], bool]) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if "loopback" in rules and ip.is_loopback:
        return True
    if "members" in rules and is_member(str(ip)):
        return True
    return any(ip in rule for rule in rules if not isinstance(rule, str))
