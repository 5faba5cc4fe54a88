"""One node's gossip logic without I/O: datagrams and ticks in, datagrams and answers out.

The daemon calls ``receive`` for every datagram, ``tick`` every interval with
a fresh local sample, and ``best``/``status_rows`` for the TCP ports. Time
comes in as ``now`` (monotonic seconds) and ``wall_ms``; randomness from the
``rng`` given at construction. That makes a minute of cluster life testable
in milliseconds with a fake network (tests/unit/core).
"""

from __future__ import annotations

import ipaddress
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import AuthError, WireError
from .auth import Sealer, is_sealed
from .cluster import NodeSpec
from .score import NodeView, ScoreFunction
from .table import Changes, Peer, PeerTable
from .wire import VERSION, State, Usage, decode, encode_state

log = logging.getLogger(__name__)

# Why a datagram was dropped; each is a counter in the status dump.
ACCEPTED = "accepted"
NOT_MEMBER = "not_member"  # source address is no cluster member's
MALFORMED = "malformed"  # does not decode
NAME_MISMATCH = "name_mismatch"  # decodes, but names another node than its source
BAD_AUTH = "bad_auth"  # not sealed with one of our keys (or sealed when we have none)
REPLAYED = "replayed"  # sealed, but sent too long ago (or too far ahead) by our clock
STALE = "stale"  # not newer than what we have: duplicate or reordered
DROP_LOG_INTERVAL = 10.0  # seconds between two log lines for drops of one reason
OUTCOMES = (ACCEPTED, NOT_MEMBER, MALFORMED, NAME_MISMATCH, BAD_AUTH, REPLAYED, STALE)


@dataclass(frozen=True)
class Sample:
    """This machine's state, as sampler.py reads it."""

    ncpu: int
    load: float
    load1: float
    mem_avail: int
    mem_total: int
    usage: Usage | None = None


@dataclass(frozen=True)
class StatusRow:
    name: str
    state: str  # up, down or drained
    load: float | None
    ncpu: int | None
    mem_avail: int | None
    loadscale: float
    memscale: float
    score: float | None  # None when the node cannot be chosen (down, never heard)
    age: float | None  # seconds since last heard; None if never
    load1: float | None
    extra: float
    is_self: bool
    mem_total: int | None = None
    drained: bool = False
    usage: Usage | None = None  # None for a node never heard, or one that sends version 1


def normalize_address(addr: str) -> str:
    """One spelling per address: ``::ffff:10.0.0.1`` is 10.0.0.1, zones dropped."""
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return addr
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


class GossipNode:
    def __init__(
        self,
        specs: list[NodeSpec],
        self_name: str,
        score: ScoreFunction,
        *,
        dead_after: float,
        extraload: float,
        extra_reports: int,
        extra_ttl: float,
        incarnation: int,
        rng: random.Random,
        sealer: Sealer | None = None,
        nonce: Callable[[], bytes] | None = None,
        replay_window_ms: int = 10_000,
    ) -> None:
        self.table = PeerTable(specs, self_name, dead_after, extra_reports, extra_ttl)
        self.score_fn = score
        self.extraload = extraload
        self.incarnation = incarnation
        self.rng = rng
        # With a sealer every datagram sent is sealed and every one received
        # must be; ``nonce`` gives 12 fresh random bytes per datagram.
        self.sealer = sealer
        self.nonce = nonce or (lambda: rng.randbytes(12))
        self.replay_window_ms = replay_window_ms
        self.seq = 0
        self.drained = False  # set at run time by dshd --drain
        self.counters: Counter[str] = Counter({k: 0 for k in OUTCOMES})
        self._addresses: dict[str, tuple[str, ...]] = {}  # node key -> addresses
        self._by_address: dict[str, str] = {}  # address -> node key
        self._quiet_until: dict[str, float] = {}

    @property
    def name(self) -> str:
        return self.table.me.spec.name

    # -- membership ----------------------------------------------------------

    def set_addresses(self, name: str, addresses: tuple[str, ...]) -> None:
        """Record what a member's name resolves to (empty: it does not resolve)."""
        key = name.lower().rstrip(".")
        addresses = tuple(normalize_address(a) for a in addresses)
        self._addresses[key] = addresses
        self._by_address = {a: k for k, addrs in self._addresses.items() for a in addrs}

    def addresses(self, name: str) -> tuple[str, ...]:
        return self._addresses.get(name.lower().rstrip("."), ())

    def member_at(self, address: str) -> str | None:
        # The exact spelling first: it is what recvfrom gives for IPv4, and
        # this runs for every datagram of a flood.
        key = self._by_address.get(address)
        return key if key is not None else self._by_address.get(normalize_address(address))

    def reload(self, specs: list[NodeSpec]) -> Changes:
        changes = self.table.replace_specs(specs)
        keys = {s.key for s in specs}
        for key in list(self._addresses):
            if key not in keys:
                del self._addresses[key]
        self._by_address = {a: k for k, addrs in self._addresses.items() for a in addrs}
        return changes

    # -- datagrams -------------------------------------------------------------

    def receive(self, data: bytes, address: str, now: float, wall_ms: int | None = None) -> str:
        """Take one datagram from ``address``; return the outcome and count it.

        ``wall_ms`` is this machine's clock, for the replay window of sealed
        datagrams; without it (tests of unsealed gossip) no window applies.
        """
        outcome = self._receive(data, address, now, wall_ms)
        self.counters[outcome] += 1
        if outcome != ACCEPTED and now >= self._quiet_until.get(outcome, 0.0):
            # One line per reason per DROP_LOG_INTERVAL: a flood must not
            # turn into a flood of log lines (the counters have the totals).
            self._quiet_until[outcome] = now + DROP_LOG_INTERVAL
            log.debug("dropped datagram from %s: %s (total %d)", address, outcome,
                      self.counters[outcome])  # fmt: skip
        return outcome

    def _receive(self, data: bytes, address: str, now: float, wall_ms: int | None) -> str:
        key = self.member_at(address)
        if key is None:
            return NOT_MEMBER
        if self.sealer is not None:
            try:
                data = self.sealer.open(data)
            except AuthError:
                return BAD_AUTH
        elif is_sealed(data):
            return BAD_AUTH
        try:
            state = decode(data)
        except WireError:
            return MALFORMED
        if state.name.lower().rstrip(".") != key or key == self.table.self_key:
            return NAME_MISMATCH
        if (
            self.sealer is not None
            and wall_ms is not None
            and abs(wall_ms - state.sent_ms) > self.replay_window_ms
        ):
            return REPLAYED
        return ACCEPTED if self.table.merge(state, now) else STALE

    def tick(self, sample: Sample, now: float, wall_ms: int) -> list[tuple[bytes, str]]:
        """Take this node's new sample; return the datagrams to send, one per peer."""
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        state = State(
            name=self.name,
            incarnation=self.incarnation,
            seq=self.seq,
            sent_ms=wall_ms,
            ncpu=sample.ncpu,
            load=sample.load,
            load1=sample.load1,
            mem_avail=sample.mem_avail,
            mem_total=sample.mem_total,
            drained=self.drained,
            usage=sample.usage,
        )
        self.table.merge(state, now)
        self.table.expire(now)
        # Each peer gets the version it speaks (a rolling upgrade, wire.py);
        # one not heard yet gets ours. Each version is encoded (and sealed) once.
        datagrams: dict[int, bytes] = {}
        out = []
        for key, peer in self.table.peers.items():
            addresses = self._addresses.get(key)
            if key == self.table.self_key or not addresses:
                continue
            version = VERSION if peer.state is None else min(peer.state.version, VERSION)
            if state.usage is None:
                version = 1
            datagram = datagrams.get(version)
            if datagram is None:
                datagram = encode_state(state, version)
                if self.sealer is not None:
                    datagram = self.sealer.seal(datagram, self.nonce())
                datagrams[version] = datagram
            out.append((datagram, addresses[0]))
        return out

    # -- answers ---------------------------------------------------------------

    def view(self, peer: Peer) -> NodeView | None:
        s = peer.state
        if s is None:
            return None
        return NodeView(
            load=s.load,
            load1=s.load1,
            ncpu=s.ncpu,
            mem_avail=s.mem_avail,
            loadscale=peer.spec.loadscale,
            memscale=peer.spec.memscale,
            extra=peer.extra,
        )

    def _score(self, peer: Peer) -> float:
        view = self.view(peer)
        assert view is not None
        return self.score_fn(view)

    def best(self, now: float) -> str | None:
        """The name of the node for the next job, or None; counts the job against it."""
        candidates = self.table.candidates(now)
        if not candidates:
            return None
        scored = [(self._score(p), p) for p in candidates]
        scored = [(s, p) for s, p in scored if s == s] or [(0.0, p) for _, p in scored]  # NaN
        low = min(s for s, _ in scored)
        # Equal nodes are chosen at random, so that daemons on different nodes
        # asked at the same moment do not all send their first job to one node.
        tied = [p for s, p in scored if s <= low + 1e-9]
        chosen = tied[0] if len(tied) == 1 else self.rng.choice(tied)
        self.table.add_extra(chosen, self.extraload, now)
        return chosen.spec.name

    def status_rows(self, now: float) -> list[StatusRow]:
        rows = []
        for peer in self.table.peers.values():
            live = self.table.is_live(peer, now)
            s = peer.state
            if not live or s is None:
                state = "down"
            elif peer.drained:
                state = "drained"
            else:
                state = "up"
            rows.append(
                StatusRow(
                    name=peer.spec.name,
                    state=state,
                    load=s.load if s else None,
                    ncpu=s.ncpu if s else None,
                    mem_avail=s.mem_avail if s else None,
                    loadscale=peer.spec.loadscale,
                    memscale=peer.spec.memscale,
                    score=self._score(peer) if s and live else None,
                    age=None if peer.heard_at is None else max(0.0, now - peer.heard_at),
                    load1=s.load1 if s else None,
                    extra=peer.extra,
                    is_self=peer is self.table.me,
                    mem_total=s.mem_total if s else None,
                    drained=peer.drained,
                    usage=s.usage if s else None,
                )
            )
        return rows
