"""The cluster file: one node per line, ``NAME [LOADSCALE [MEMSCALE]] [drain]``,
and discovery lines ``@broadcast ADDRESS`` or ``@multicast GROUP`` (the nodes
then find each other, and the node list may be empty).

Pure: it parses text and reports ``FILE:LINE: problem``; resolving names to
addresses is the daemon's job, because a name that does not resolve today may
resolve tomorrow and must not stop the daemon.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ClusterFileError

# RFC 1123 host names, with dots; a trailing dot (absolute name) is allowed.
_HOSTNAME = re.compile(
    r"^(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)

DRAIN_KEYWORD = "drain"
# Scales beyond this are typos (a node a million times slower is not in a
# cluster); the bound also keeps every score finite.
MAX_SCALE = 1e6


@dataclass(frozen=True)
class Discovery:
    """Where a node announces itself so that others find it (gossip.py adds them)."""

    kind: str  # "broadcast" or "multicast"
    address: str  # an IPv4 broadcast address or multicast group (the gossip socket is IPv4)
    line: int = 0


@dataclass(frozen=True)
class ClusterFile:
    nodes: list[NodeSpec]
    discovery: tuple[Discovery, ...] = ()


@dataclass(frozen=True)
class NodeSpec:
    """One cluster member as the cluster file describes it."""

    name: str
    loadscale: float = 1.0  # multiplies the load: 2.0 = the node is half as fast
    memscale: float = 1.0  # multiplies free memory: higher = its memory counts for more
    drained: bool = False  # never chosen as best node, still gossips and is listed
    line: int = 0  # where it was defined, for messages

    @property
    def key(self) -> str:
        """Names compare case-insensitively, as DNS does."""
        return self.name.lower().rstrip(".")


def is_valid_name(name: str) -> bool:
    """A host name or an IPv4/IPv6 literal (an IPv6 zone such as ``%eth0`` allowed)."""
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
        return True
    except ValueError:
        return bool(_HOSTNAME.match(name)) and not name.replace(".", "").isdigit()


def _scale(token: str, what: str, filename: str, lineno: int) -> float:
    try:
        value = float(token)
    except ValueError:
        raise ClusterFileError(filename, lineno, f"{what} {token!r} is not a number") from None
    if not 0 < value <= MAX_SCALE:
        raise ClusterFileError(
            filename, lineno, f"{what} {token!r} must be a positive number up to {MAX_SCALE:g}"
        )
    return value


def _discovery(tokens: list[str], filename: str, lineno: int) -> Discovery:
    kind = tokens[0][1:]
    if kind not in ("broadcast", "multicast"):
        expected = "expected @broadcast or @multicast"
        raise ClusterFileError(filename, lineno, f"unknown {tokens[0]!r} ({expected})")
    if len(tokens) != 2:
        raise ClusterFileError(filename, lineno, f"expected {tokens[0]} ADDRESS")
    try:
        ip = ipaddress.ip_address(tokens[1])
    except ValueError:
        raise ClusterFileError(filename, lineno, f"{tokens[1]!r} is not an IP address") from None
    if kind == "multicast" and (ip.version != 4 or not ip.is_multicast):
        raise ClusterFileError(filename, lineno, f"{tokens[1]} is not an IPv4 multicast group")
    if kind == "broadcast" and (ip.version != 4 or ip.is_multicast):
        raise ClusterFileError(filename, lineno, f"{tokens[1]} is not an IPv4 broadcast address")
    return Discovery(kind, str(ip), lineno)


def parse_cluster(text: str, filename: str = "<cluster>") -> list[NodeSpec]:
    """The nodes of a cluster file (see parse_cluster_file)."""
    return parse_cluster_file(text, filename).nodes


def parse_cluster_file(text: str, filename: str = "<cluster>") -> ClusterFile:
    """Parse a cluster file; raise ClusterFileError at the first bad line."""
    nodes: list[NodeSpec] = []
    discovery: list[Discovery] = []
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0]
        tokens = line.split()
        if not tokens:
            continue
        if tokens[0].startswith("@"):
            discovery.append(_discovery(tokens, filename, lineno))
            continue
        name, rest = tokens[0], tokens[1:]
        if not is_valid_name(name):
            raise ClusterFileError(filename, lineno, f"{name!r} is not a host name or IP address")
        drained = False
        if rest and rest[-1] == DRAIN_KEYWORD:
            drained = True
            rest = rest[:-1]
        if len(rest) > 2:
            raise ClusterFileError(
                filename,
                lineno,
                f"unexpected {' '.join(rest[2:])!r} (expected NAME [LOADSCALE [MEMSCALE]] [drain])",
            )
        loadscale = _scale(rest[0], "loadscale", filename, lineno) if rest else 1.0
        memscale = _scale(rest[1], "memscale", filename, lineno) if len(rest) > 1 else 1.0
        spec = NodeSpec(name, loadscale, memscale, drained, lineno)
        if spec.key in seen:
            raise ClusterFileError(
                filename, lineno, f"duplicate node {name!r} (first on line {seen[spec.key]})"
            )
        seen[spec.key] = lineno
        nodes.append(spec)
    if not nodes and not discovery:
        raise ClusterFileError(filename, 0, "no nodes defined (and no @broadcast or @multicast)")
    return ClusterFile(nodes, tuple(discovery))


def load_cluster(path: str | Path) -> list[NodeSpec]:
    return load_cluster_file(path).nodes


def load_cluster_file(path: str | Path) -> ClusterFile:
    """Read and parse a cluster file; unreadable files are ClusterFileErrors too."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ClusterFileError(str(path), 0, f"cannot read: {reason}") from None
    return parse_cluster_file(text, str(path))
