"""The peer table: what this daemon knows of every cluster member. No I/O, no clock.

Rules of this file:

* ``now`` is a monotonic time in seconds passed in by the caller.
* A report replaces a peer's state only if it is newer, by (incarnation, seq),
  so reordered or duplicated datagrams never move a node backwards. One
  exception: a peer that is down accepts another incarnation, because a node
  whose clock stepped back before a restart must still be able to rejoin.
* The node itself is always live.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .cluster import NodeSpec
from .wire import State


@dataclass
class Extra:
    """Load this daemon added to a node for a job it just sent there.

    It lasts until the node has sent ``reports_left`` more reports (by then a
    report sampled after the job started has arrived, so the job shows in the
    node's own load) or until ``expires_at``, whichever comes first.
    """

    amount: float
    expires_at: float
    reports_left: int


@dataclass
class Peer:
    spec: NodeSpec
    state: State | None = None
    heard_at: float | None = None
    extras: list[Extra] = field(default_factory=list)

    @property
    def extra(self) -> float:
        return sum(e.amount for e in self.extras)

    @property
    def drained(self) -> bool:
        return self.spec.drained or (self.state is not None and self.state.drained)


@dataclass(frozen=True)
class Changes:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


class PeerTable:
    def __init__(
        self,
        specs: list[NodeSpec],
        self_name: str,
        dead_after: float,
        extra_reports: int = 2,
        extra_ttl: float = 6.0,
    ) -> None:
        self.self_key = self_name.lower().rstrip(".")
        self.dead_after = dead_after  # seconds without a report before a peer is down
        self.extra_reports = extra_reports
        self.extra_ttl = extra_ttl
        self.peers: dict[str, Peer] = {s.key: Peer(s) for s in specs}
        if self.self_key not in self.peers:
            raise ValueError(f"{self_name} is not in the cluster")

    @property
    def me(self) -> Peer:
        return self.peers[self.self_key]

    def get(self, name: str) -> Peer | None:
        return self.peers.get(name.lower().rstrip("."))

    def is_live(self, peer: Peer, now: float) -> bool:
        if peer.spec.key == self.self_key:
            return True
        return peer.heard_at is not None and now - peer.heard_at <= self.dead_after

    def merge(self, state: State, now: float) -> bool:
        """Take a report; False if it is not newer than what we have (stale)."""
        peer = self.get(state.name)
        if peer is None:
            return False
        if peer.state is not None and state.order <= peer.state.order:
            rejoining = not self.is_live(peer, now) and state.incarnation != peer.state.incarnation
            if not rejoining:
                return False
        peer.state = state
        peer.heard_at = now
        for extra in peer.extras:
            extra.reports_left -= 1
        peer.extras = [e for e in peer.extras if e.reports_left > 0 and e.expires_at > now]
        return True

    def add_extra(self, peer: Peer, amount: float, now: float) -> None:
        if amount > 0:
            peer.extras.append(Extra(amount, now + self.extra_ttl, self.extra_reports))

    def expire(self, now: float) -> None:
        """Drop extra load past its time limit (for peers that stopped reporting)."""
        for peer in self.peers.values():
            if peer.extras:
                peer.extras = [e for e in peer.extras if e.expires_at > now]

    def candidates(self, now: float) -> list[Peer]:
        """Nodes that may be chosen: live, reported at least once, not drained."""
        return [
            p
            for p in self.peers.values()
            if p.state is not None and self.is_live(p, now) and not p.drained
        ]

    def replace_specs(self, specs: list[NodeSpec]) -> Changes:
        """Take a new cluster file, keeping what we know of nodes still in it."""
        new = {s.key: s for s in specs}
        if self.self_key not in new:
            raise ValueError("this node is no longer in the cluster file")
        old = self.peers
        added = tuple(s.name for k, s in new.items() if k not in old)
        removed = tuple(p.spec.name for k, p in old.items() if k not in new)
        changed = tuple(
            s.name
            for k, s in new.items()
            if k in old
            and (old[k].spec.loadscale, old[k].spec.memscale, old[k].spec.drained, old[k].spec.name)
            != (s.loadscale, s.memscale, s.drained, s.name)
        )
        peers: dict[str, Peer] = {}
        for key, spec in new.items():
            peer = old.get(key) or Peer(spec)
            peer.spec = spec
            peers[key] = peer
        self.peers = peers
        return Changes(added, removed, changed)
