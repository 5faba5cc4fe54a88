"""The peer table: what this daemon knows of every cluster member. No I/O, no clock.

Rules of this file:

* ``now`` is a monotonic time in seconds passed in by the caller.
* Reports and news of a member are ordered by (incarnation, seq); what is
  not newer never moves a member backwards. One exception: a member that is
  down or left accepts another incarnation, because a node whose clock
  stepped back before a restart must still be able to rejoin.
* Peers are made lazily: a member nobody has said anything about has no
  record, so that a node of a 10,000-member cluster holds records only of the
  members it has heard of (the listed ones are in the shared Roster).
* The membership protocol (when a member is suspected, declared down,
  refuted) is gossip.py's; this file holds its state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .cluster import NodeSpec
from .roster import Ring, Roster, member_id
from .wire import State

# A member's status in this node's view.
NEW = "new"  # nothing heard of it yet (shown as down)
ALIVE = "alive"
SUSPECT = "suspect"
DOWN = "down"
LEFT = "left"
GONE = (DOWN, LEFT)
NO_ORDER = (-1, -1)


@dataclass
class Extra:
    """Load this daemon added to a node for a job it just sent there.

    It lasts until the node has sent ``reports_left`` more reports (by then a
    report sampled after the job started has arrived, so the job shows in the
    node's own load) or until ``expires_at``, whichever comes first; but not
    before ``kept_until`` (jobs promised to this node itself, whose samples
    come four times an interval: a job takes a while to start over SSH).
    """

    amount: float
    expires_at: float
    reports_left: int
    kept_until: float = -math.inf


@dataclass(slots=True)
class Suspicion:
    order: tuple[int, int]  # the member's order the suspicion is about
    since: float
    confirmers: set[bytes]  # ids of the members that suspect it (Lifeguard's confirmations)
    deadline: float = 0.0
    mine_since: float | None = None  # when this node itself began to suspect it
    # Suspectors whose suspicion we gossiped to everyone (a full mesh, or once
    # confirmed above it); empty while it stays between the monitors.
    told: set[bytes] = field(default_factory=set)


@dataclass(slots=True)
class Peer:
    spec: NodeSpec
    id: bytes
    state: State | None = None  # the last report heard from the member itself
    heard_at: float | None = None  # when that report came
    # The freshest news of the member by any way (its own report or another
    # member's news of it): its order, when it was fresh, and the load it gave.
    order: tuple[int, int] = NO_ORDER
    fresh_at: float | None = None
    relayed: tuple[int, float, int] | None = None  # (ncpu, load, mem_avail) newer than state
    status: str = NEW
    status_since: float = 0.0
    suspicion: Suspicion | None = None
    extras: list[Extra] = field(default_factory=list)
    # The newest datagram version heard from its current incarnation: what it
    # speaks, whatever it sends us (it sends the version it thinks we speak).
    speaks: int = 0

    @property
    def extra(self) -> float:
        return sum(e.amount for e in self.extras)

    @property
    def drained(self) -> bool:
        return self.spec.drained or (self.state is not None and self.state.drained)

    @property
    def known(self) -> bool:
        """Its load is known (from itself or from news)."""
        return self.state is not None or self.relayed is not None

    def load_view(self) -> tuple[int, float, float, int]:
        """(ncpu, load, load1, mem_avail) from the freshest news; only if known."""
        s = self.state
        if self.relayed is not None:
            ncpu, load, avail = self.relayed
            return ncpu, load, s.load1 if s is not None else load, avail
        assert s is not None
        return s.ncpu, s.load, s.load1, s.mem_avail


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
        roster: Roster,
        self_name: str,
        extra_reports: int = 2,
        extra_ttl: float = 6.0,
        *,
        unlisted_self: bool = False,
    ) -> None:
        self.self_key = self_name.lower().rstrip(".")
        self.extra_reports = extra_reports
        self.extra_ttl = extra_ttl
        self.roster = roster
        # Members not in the cluster file: learned by discovery, or this node
        # itself when the file lists nobody (cluster.py's @broadcast lines).
        self.found: dict[str, NodeSpec] = {}
        self.found_ids: dict[bytes, str] = {}
        self.peers: dict[str, Peer] = {}
        self.gone: set[str] = set()  # keys of members down or left
        # While this node is young, members it never heard of hold their places
        # on the ring (gossip.py sets it): they are most likely up, not heard yet.
        self.unheard_hold_places = True
        self.with_extras: set[str] = set()
        self._ring: Ring | None = None  # roster.ring, merged with found members
        if self.self_key not in roster.specs:
            if not unlisted_self:
                raise ValueError(f"{self_name} is not in the cluster")
            self.add_found(NodeSpec(self_name))
        me = self.peer(self.self_key)
        assert me is not None
        me.status = ALIVE
        self.me = me

    # -- members -----------------------------------------------------------------

    def spec(self, key: str) -> NodeSpec | None:
        return self.roster.specs.get(key) or self.found.get(key)

    def key_of(self, member: bytes) -> str | None:
        return self.roster.by_id.get(member) or self.found_ids.get(member)

    def id_of(self, key: str) -> bytes:
        return self.roster.ids.get(key) or member_id(key)

    def members(self) -> list[str]:
        return [*self.roster.specs, *self.found]

    def __len__(self) -> int:
        return len(self.roster) + len(self.found)

    def live_count(self) -> int:
        """N of the timeouts: members neither down nor left."""
        return len(self) - len(self.gone)

    def get(self, name: str) -> Peer | None:
        """The record of a member, if anything was heard of it."""
        return self.peers.get(name.lower().rstrip("."))

    def peer(self, key: str) -> Peer | None:
        """The record of a member, made if needed; None for a non-member."""
        peer = self.peers.get(key)
        if peer is None:
            spec = self.spec(key)
            if spec is None:
                return None
            peer = self.peers[key] = Peer(spec, self.id_of(key))
        return peer

    def add_found(self, spec: NodeSpec) -> Peer:
        self.found[spec.key] = spec
        self.found_ids[member_id(spec.key)] = spec.key
        self._ring = None
        peer = self.peer(spec.key)
        assert peer is not None
        return peer

    def forget(self, key: str) -> None:
        """Remove a found member (down or left for long)."""
        spec = self.found.pop(key, None)
        if spec is not None:
            self.found_ids.pop(member_id(key), None)
            self.peers.pop(key, None)
            self.gone.discard(key)
            self.with_extras.discard(key)
            self._ring = None

    def set_status(self, peer: Peer, status: str, now: float) -> None:
        if peer.status == status:
            return
        was_gone = peer.status in GONE
        peer.status, peer.status_since = status, now
        if status != SUSPECT:
            peer.suspicion = None
        if status in GONE:
            self.gone.add(peer.spec.key)
        elif was_gone:
            self.gone.discard(peer.spec.key)

    @property
    def ring(self) -> Ring:
        if not self.found:
            return self.roster.ring
        if self._ring is None:
            ids = dict(self.roster.ids)
            ids.update((k, member_id(k)) for k in self.found)
            self._ring = Ring(ids, ids)
        return self._ring

    def walk(self, start: str, count: int, step: int) -> list[str]:
        """``count`` members after (step 1) or before (step -1) ``start`` on the
        ring that are alive or suspect in this node's view, or never heard of
        while ``unheard_hold_places``.

        A node that has just started has heard of no one. Were the unheard
        skipped, it would send to no monitor and judge members far back on
        the ring that do not send to it: 10,000 nodes booted at once then
        spent their first minutes probing and suspecting each other (the
        simulator's start-up cost 60 s a virtual second). Holding their places,
        every node sends to its true successors from its first tick and they
        hear it at once."""
        ring = self.ring
        keys, n = ring.keys, len(ring.keys)
        i = ring.index[start]
        out: list[str] = []
        hold = self.unheard_hold_places
        # At most 256 positions: while a node has heard of few members (a big
        # cluster starting), a walk over the whole ring per tick is O(N).
        for _ in range(min(n - 1, 256)):
            i = (i + step) % n
            peer = self.peers.get(keys[i])
            status = NEW if peer is None else peer.status
            if status in (ALIVE, SUSPECT) or (hold and status == NEW):
                out.append(keys[i])
                if len(out) == count:
                    break
        return out

    # -- extra load ---------------------------------------------------------------

    def add_extra(self, peer: Peer, amount: float, now: float, keep: float = 0.0) -> None:
        if amount > 0:
            kept = now + keep if keep > 0 else -math.inf  # a relayed report may predate now
            peer.extras.append(Extra(amount, now + self.extra_ttl, self.extra_reports, kept))
            self.with_extras.add(peer.spec.key)

    def count_report(self, peer: Peer, now: float) -> None:
        """A newer report of ``peer`` arrived: its extras have one report less to live."""
        if peer.extras:
            for extra in peer.extras:
                extra.reports_left -= 1
            peer.extras = [e for e in peer.extras if e.expires_at > now
                           and (e.reports_left > 0 or now < e.kept_until)]  # fmt: skip

    def expire(self, now: float) -> None:
        """Drop extra load past its time limit (for peers that stopped reporting)."""
        for key in list(self.with_extras):
            peer = self.peers.get(key)
            if peer is not None and peer.extras:
                peer.extras = [e for e in peer.extras if e.expires_at > now]
            if peer is None or not peer.extras:
                self.with_extras.discard(key)

    # -- reload -------------------------------------------------------------------

    def replace_roster(self, roster: Roster) -> Changes:
        """Take a new cluster file, keeping what we know of members still in it."""
        if self.self_key not in roster.specs and self.self_key not in self.found:
            raise ValueError("this node is no longer in the cluster file")
        old = self.roster.specs
        new = roster.specs
        added = tuple(s.name for k, s in new.items() if k not in old)
        removed = tuple(s.name for k, s in old.items() if k not in new)
        changed = tuple(
            s.name
            for k, s in new.items()
            if k in old
            and (old[k].loadscale, old[k].memscale, old[k].drained, old[k].name)
            != (s.loadscale, s.memscale, s.drained, s.name)
        )
        self.roster = roster
        for key in list(self.found):
            if key in new:  # now listed: the file's scales from now on
                del self.found[key]
                self.found_ids.pop(member_id(key), None)
        for key in list(self.peers):
            spec = self.spec(key)
            if spec is None:
                del self.peers[key]
                self.gone.discard(key)
                self.with_extras.discard(key)
            else:
                self.peers[key].spec = spec
        self._ring = None
        return Changes(added, removed, changed)
