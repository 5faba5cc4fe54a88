"""One node's gossip logic without I/O: datagrams and ticks in, datagrams and answers out.

The daemon calls ``receive`` for every datagram, ``tick`` every interval with
a fresh local sample, ``poll`` four times an interval (it sends only when
membership news is waiting), ``leave`` when it stops, and
``best``/``status_rows`` for the TCP ports. Time comes in as ``now``
(monotonic seconds) and ``wall_ms``; randomness from the ``rng`` given at
construction. That makes a minute of cluster life testable in milliseconds
with a fake network (tests/unit/core), and 10,000 nodes in minutes (dsh.sim).
The membership rules are described in membership.py.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import AuthError, WireError
from . import bids as b
from . import membership as m
from .addresses import AddressBook, normalize_address
from .auth import Sealer, is_sealed
from .cluster import NodeSpec, is_valid_name
from .roster import Roster
from .score import NodeView, ScoreFunction
from .table import (
    ALIVE,
    DOWN,
    GONE,
    LEFT,
    NEW,
    NO_ORDER,
    SUSPECT,
    Changes,
    Peer,
    PeerTable,
    Suspicion,
)
from .wire import (
    ASKS_FROM,
    COMPACT_FROM,
    NEWS_FROM,
    VERSION,
    Ask,
    Bid,
    Claim,
    Kind,
    News,
    State,
    Usage,
    decode_message,
    encode_message,
    encode_state,
)

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
# Membership events, counted in ``events`` (the status footer, /metrics).
# "suspected" and "declared_down" are this node's own judgments; "heard_suspect"
# and "heard_down" the others' it took from news (one suspicion reaches everyone).
EVENTS = ("suspected", "heard_suspect", "refuted", "declared_down", "heard_down", "left",
          "rejoined", "found", "forgotten", "refuted_self")  # fmt: skip
MAX_FOUND = 65_536  # members learned by discovery; beyond that a flood, not a cluster
RECENT = 128  # members whose news advanced lately, candidates for the news we send
__all__ = ["normalize_address"]


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
    state: str  # up, drained, suspect, down or left
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
    # None for a node never heard, one that sends version 1, or one heard only
    # in brief datagrams so far (version 5: its next tick brings it)
    usage: Usage | None = None
    listed: bool = True  # False: learned by discovery, not in the cluster file


class GossipNode:
    def __init__(
        self,
        specs: list[NodeSpec],
        self_name: str,
        score: ScoreFunction,
        *,
        interval: float,
        suspect_after: float,
        extraload: float,
        extra_reports: int,
        extra_ttl: float,
        incarnation: int,
        rng: random.Random,
        sealer: Sealer | None = None,
        nonce: Callable[[], bytes] | None = None,
        replay_window_ms: int = 10_000,
        fanout_above: int = m.FANOUT_ABOVE,
        fanout: int = m.FANOUT,
        discovery: bool = False,
        roster: Roster | None = None,
        addresses: AddressBook | None = None,
        ask_best: int = b.ASK_BEST,
    ) -> None:
        self.roster = roster if roster is not None else Roster(specs)
        self.table = PeerTable(self.roster, self_name, extra_reports, extra_ttl,
                               unlisted_self=discovery)  # fmt: skip
        self.score_fn = score
        self.interval = interval
        self.suspect_after = suspect_after  # seconds without fresh news before a monitor suspects
        self.extraload = extraload
        self.incarnation = incarnation
        self.rng = rng
        # With a sealer every datagram sent is sealed and every one received
        # must be; ``nonce`` gives 12 fresh random bytes per datagram.
        self.sealer = sealer
        self.nonce = nonce or (lambda: rng.randbytes(12))
        self.replay_window_ms = replay_window_ms
        self.fanout_above = fanout_above
        self.fanout = fanout
        self.discovery = discovery  # datagrams from unknown addresses may add members
        self.seq = 0
        self.drained = False  # set at run time by dshd --drain
        self.counters: Counter[str] = Counter({k: 0 for k in OUTCOMES})
        self.events: Counter[str] = Counter({k: 0 for k in EVENTS})
        self.book = addresses if addresses is not None else AddressBook()
        self._quiet_until: dict[str, float] = {}
        self._broadcasts = m.Broadcasts()
        self._recent: deque[str] = deque(maxlen=RECENT)
        self._answer: set[str] = set()  # members to send to at the next poll
        self._probed_by: set[str] = set()  # members that probed us: answered at the flush
        self._probe: set[str] = set()  # members to ask for an answer at the next poll
        self._watchers: dict[str, float] = {}  # members that probed us -> until when to send
        self._refuting: dict[str, int] = {}  # members told we live -> datagrams still to send
        self._tell: dict[str, set[str]] = {}  # member -> suspicions only it is told of, next send
        self._older: set[str] = set()  # members of a release that judges by silence (wire < 3)
        self._suspecting: set[str] = set()  # members suspected, for their deadlines
        self._sample: Sample | None = None
        self._last_tick: float | None = None
        self._first_tick: float | None = None
        self._ticks = 0
        self.health = 0  # Lifeguard: grows when this node is late or suspected
        # Until when poll() spreads news to random members: news this node made
        # (its own suspicion or down, a refutation) cannot wait for the ticks;
        # news it only passes on rides on them, or churn would cost 4 extra
        # datagrams an interval at every node (the simulator measured 8/s).
        self._urgent_until = -math.inf
        self._urgent_needed = False
        # Above the threshold, a down or left heard from others goes once to
        # FORWARD random members as it arrives (flush; a hot rumour): on the ticks
        # alone it took 5 s at 1,000 members to reach every node (simulator).
        self._forward = False
        # Best-node questions (bids.py): candidates asked per question (0: never
        # ask), the questions in flight, the bids to send at the next flush, and
        # the claims counted lately (a replayed one must not count twice).
        self.ask_best = ask_best
        # Others' questions this node bid on, and the jobs claimed on it (status, /metrics).
        self.bids: Counter[str] = Counter({"answered": 0, "claimed": 0})
        self._questions: dict[int, b.Question] = {}
        self._bids_out: list[tuple[bytes, str]] = []
        self._claims: dict[tuple[str, int], float] = {}
        self._asks_seen: dict[tuple[str, int], int] = {}  # (asker, nonce) -> bids sent
        # Members asked that did not bid, in a row, and since when: one known
        # only from others' news may run an older release that never answers.
        self._unanswered: dict[str, tuple[int, float]] = {}
        self._load_now: float | None = None  # refresh(): fresher than the tick's sample

    @property
    def name(self) -> str:
        return self.table.me.spec.name

    @property
    def key(self) -> str:
        return self.table.self_key

    # -- membership ----------------------------------------------------------

    def set_addresses(self, name: str, addresses: tuple[str, ...]) -> None:
        """Record what a member's name resolves to (empty: it does not resolve)."""
        self.book.put(name.lower().rstrip("."), addresses)

    def addresses(self, name: str) -> tuple[str, ...]:
        return self.book.get(name.lower().rstrip("."))

    def member_at(self, address: str) -> str | None:
        return self.book.member_at(address)

    def reload(self, specs: list[NodeSpec]) -> Changes:
        changes = self.table.replace_roster(Roster(specs))
        self.roster = self.table.roster
        members = set(self.table.members())
        self.book.keep(members)
        self._older &= members
        self._suspecting &= members
        self._watchers = {k: t for k, t in self._watchers.items() if k in members}
        self._refuting = {k: n for k, n in self._refuting.items() if k in members}
        self._tell = {k: v & members for k, v in self._tell.items() if k in members}
        return changes

    def full_mesh(self) -> bool:
        """Whether every member sends to every other (small clusters)."""
        return self.table.live_count() <= self.fanout_above

    def member_state(self, name: str, now: float) -> str:
        """What the status table says of a member: up, drained, suspect, down or left."""
        peer = self.table.get(name)
        if peer is None:
            return "down"
        return self._shown(peer)

    def _shown(self, peer: Peer) -> str:
        if peer is self.table.me:
            return "drained" if self.drained or peer.spec.drained else "up"
        if peer.status == ALIVE:
            return "drained" if peer.drained else "up"
        if peer.status == SUSPECT:
            return "suspect"
        if peer.status == LEFT:
            return "left"
        return "down"  # DOWN, or NEW: never heard of

    # -- datagrams in ------------------------------------------------------------

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
        key = self.book.member_at(address)
        if key is None and not self.discovery:
            return NOT_MEMBER
        if self.sealer is not None:
            try:
                data = self.sealer.open(data)
            except AuthError:
                return BAD_AUTH
        elif is_sealed(data):
            return BAD_AUTH
        try:
            state = decode_message(data)
        except WireError:
            return MALFORMED
        name_key = state.name.lower().rstrip(".")
        if name_key == self.key or (key is not None and name_key != key):
            return NAME_MISMATCH
        if (
            self.sealer is not None
            and wall_ms is not None
            and abs(wall_ms - state.sent_ms) > self.replay_window_ms
        ):
            return REPLAYED
        if not isinstance(state, State):
            # Discovery learns a member from its reports, not from a question.
            if key is None:
                return NOT_MEMBER
            return self._take_message(state, key, address, now, wall_ms)
        if key is None:
            outcome = self._discover(state, name_key, address)
            if outcome is not None:
                return outcome
        peer = self.table.peer(name_key)
        if peer is None:
            return NOT_MEMBER
        if not self._take_report(peer, state, now):
            return STALE
        if state.probe:
            # It has no fresh news of us: answer at once (flush), and send it our
            # ticks for a while (it takes itself for one of our monitors). At the
            # next poll, a quarter interval later, the prober had often probed
            # again: 0.73 probes and 0.53 answers a node a second at 200 members
            # and 30 % loss (simulator), a fifth of the traffic that loss adds.
            self._probed_by.add(name_key)
            if not self.full_mesh():
                self._watchers[name_key] = now + 2 * self.suspect_after
        for news in state.news:
            self._take_news(news, peer, now)
        return ACCEPTED

    def _take_message(self, message: Ask | Bid | Claim, key: str, address: str, now: float,
                      wall_ms: int | None) -> str:  # fmt: skip
        """A best-node question, its answer or a claim, from member ``key`` (bids.py)."""
        me = self.table.me
        if isinstance(message, Ask):
            sample = self._sample
            if sample is None or self.drained or me.drained:
                return STALE  # nothing to bid yet; or it takes no jobs
            asked = (key, message.nonce)
            if len(self._bids_out) >= b.MAX_QUESTIONS or self._asks_seen.get(asked, 0) >= 2:
                return STALE  # a flood; or a question replayed (it may come twice)
            if len(self._asks_seen) >= b.CLAIM_MEMORY:
                del self._asks_seen[next(iter(self._asks_seen))]
            self._asks_seen[asked] = self._asks_seen.get(asked, 0) + 1
            load = sample.load if self._load_now is None else self._load_now
            bid = Bid(self.name, message.nonce, wall_ms or 0, sample.ncpu, load,
                      sample.load1, me.extra, sample.mem_avail)  # fmt: skip
            self._bids_out.append((self._sealed(encode_message(bid)), address))
            self.bids["answered"] += 1
            return ACCEPTED
        if isinstance(message, Bid):
            question = self._questions.get(message.nonce)
            if question is None:
                return STALE  # answered already (the timeout), or never asked
            spec = self.table.spec(key)
            assert spec is not None
            view = NodeView(load=message.load, load1=message.load1, ncpu=message.ncpu,
                            mem_avail=message.mem_avail, loadscale=spec.loadscale,
                            memscale=spec.memscale, extra=message.promised)  # fmt: skip
            return ACCEPTED if question.take(key, self.score_fn(view)) else STALE
        claim = (key, message.nonce)
        if claim in self._claims:
            return STALE
        if len(self._claims) >= b.CLAIM_MEMORY:
            del self._claims[next(iter(self._claims))]
        self._claims[claim] = now
        self.table.add_extra(me, max(0.0, min(message.amount, 64.0)), now, b.PROMISE_KEEP)
        self.bids["claimed"] += 1
        return ACCEPTED

    def _discover(self, state: State, key: str, address: str) -> str | None:
        """A datagram from an address no member has: a new member, if discovery is on."""
        if self.table.spec(key) is not None:
            peer = self.table.get(key)
            moved = key in self.table.found and peer is not None and peer.status in GONE
            if self.book.get(key) and not moved:
                return NAME_MISMATCH  # a member we know elsewhere
            # Listed but its name does not resolve, or a found member back at a new
            # address (DHCP): where it is heard from is where it is.
            self.book.put(key, (address,))
            return None
        if not is_valid_name(state.name) or len(self.table.found) >= MAX_FOUND:
            return NOT_MEMBER
        self.table.add_found(NodeSpec(state.name))
        self.book.put(key, (address,))
        self.events["found"] += 1
        log.info("found member %s at %s", state.name, address)
        return None

    def _newer(self, peer: Peer, order: tuple[int, int]) -> bool:
        """Whether news at ``order`` is newer than what we know of ``peer``.

        A member down or left takes another incarnation even if lower: its clock
        may have stepped back before it restarted."""
        if order > peer.order:
            return True
        return peer.status in GONE and order[0] != peer.order[0]

    def _take_report(self, peer: Peer, state: State, now: float) -> bool:
        """The member's own report; False if it is not newer (duplicate, reordered)."""
        rejoin = peer.status in GONE and state.incarnation != peer.order[0]
        if not rejoin and (
            state.order < peer.order or (peer.state is not None and state.order <= peer.state.order)
        ):
            return False
        if (peer.status in (ALIVE, SUSPECT) and state.incarnation > peer.order[0]
                and not self.full_mesh() and self.rng.random() < m.RELAY_SHARE):  # fmt: skip
            # A new incarnation: it refutes a suspicion, maybe one whose own
            # monitors it cannot reach. Pass it to them, by another path than
            # its lost datagrams (SWIM's indirect probe, the other way round).
            # A quarter of the 16 or so nodes its refutation reaches first: all
            # of them cost 75 B/s a node at 1,000 members and 30 % loss.
            self._broadcasts.put(peer.spec.key, Kind.ALIVE)
            self._answer.update(k for k in self.table.walk(peer.spec.key, m.MONITORS, 1)
                                if k != self.key)  # fmt: skip
        if state.brief and peer.state is not None:
            # Between its reports the member leaves its usage out: the last stands.
            state = dataclasses.replace(state, usage=peer.state.usage)
        # A release does not change within an incarnation: an older version from
        # it says what it thinks we speak, not what it speaks.
        same = peer.state is not None and peer.state.incarnation == state.incarnation
        peer.speaks = max(state.version, peer.speaks) if same else state.version
        peer.state, peer.heard_at = state, now
        # Releases before version 3 have no news: they judge a member by its
        # own reports alone, so it must send them one every interval.
        # (Version 3 has news and is sparse like this one.)
        if peer.speaks < NEWS_FROM:
            self._older.add(peer.spec.key)
        else:
            self._older.discard(peer.spec.key)
        self._advance(peer, state.order, now, None)
        if state.leaving:
            self._gone(peer, LEFT, now)
        else:
            self._alive(peer, now)
        return True

    def _advance(self, peer: Peer, order: tuple[int, int], fresh_at: float,
                 relayed: tuple[int, float, int] | None) -> None:  # fmt: skip
        if order != peer.order:
            self.table.count_report(peer, fresh_at)
        peer.order = order
        peer.relayed = relayed
        peer.fresh_at = fresh_at if peer.fresh_at is None else max(peer.fresh_at, fresh_at)
        if not self._recent or self._recent[-1] != peer.spec.key:
            self._recent.append(peer.spec.key)

    def _alive(self, peer: Peer, now: float) -> None:
        """Fresh news of ``peer``: it is alive, whatever we thought."""
        if peer.status == ALIVE:
            return
        if peer.status == SUSPECT:
            self.events["refuted"] += 1
            if peer.suspicion is not None and self.table.me.id in peer.suspicion.confirmers:
                # Our own suspicion is refuted: the others who hold it hear it
                # from us now, so that they need not all hear the member itself.
                for suspector in peer.suspicion.confirmers:
                    key = self.table.key_of(suspector)
                    if key is not None and key != self.key:
                        self._answer.add(key)
            self._suspecting.discard(peer.spec.key)
            if peer.suspicion is None or peer.suspicion.told:
                self._broadcasts.put(peer.spec.key, Kind.ALIVE)  # tell the other suspectors
        elif peer.status in GONE:
            self.events["rejoined"] += 1
            self._broadcasts.put(peer.spec.key, Kind.ALIVE)
            log.info("member %s is up again", peer.spec.name)
        self.table.set_status(peer, ALIVE, now)

    def _urgent(self) -> None:
        self._urgent_needed = True

    def _gone(self, peer: Peer, status: str, now: float, mine: bool = False) -> None:
        if peer.status == status:
            return
        self._suspecting.discard(peer.spec.key)
        self.table.set_status(peer, status, now)
        self.events["left" if status == LEFT else "declared_down" if mine else "heard_down"] += 1
        self._broadcasts.put(peer.spec.key, Kind.LEFT if status == LEFT else Kind.DOWN)
        if mine:
            self._urgent()
        if not self.full_mesh():
            # A hot rumour, ours too: sent at the urgent polls alone (to FANOUT
            # random members), our own down had left every member waiting a
            # quarter interval more when both were lost (9 % at 30 % loss),
            # and the last of 100 nodes heard of a crash up to 6.0 s after it
            # (p99 over 60 crashes; 5.1-5.3 s with this, simulator).
            self._forward = True
        log.info("member %s %s", peer.spec.name, "has left" if status == LEFT else "is down")

    def _take_news(self, news: News, sender: Peer, now: float) -> None:
        key = self.table.key_of(news.member)
        if key is None:
            return  # a member we do not know: discovery learns members from themselves
        if key == self.key:
            self._news_of_me(news, sender)
            return
        peer = self.table.peer(key)
        if peer is None:
            return
        order = news.order
        if news.kind == Kind.ALIVE:
            # Strictly newer: the rejoin rule (_newer) is for a member's own reports,
            # not for another member's old news of it.
            if order > peer.order:
                self._advance(peer, order, now - news.age,
                              (news.ncpu, news.load, news.mem_avail))  # fmt: skip
                self._alive(peer, now)
            # The same order again says nothing newer: the member sent it once.
            # Taking its age again would let two nodes relaying a dead member's
            # last report to each other keep it fresh by their rounding.
            return
        fresh = peer.fresh_at is not None and now - peer.fresh_at <= self.suspect_after
        if order < peer.order and peer.status in (ALIVE, SUSPECT) and fresh:
            # We know it fresher than the news does, and had news of it within
            # S (a later report of a crashed member, relayed to us but not to
            # its monitor, is no reason to refute its down): say so to the sender, who
            # holds the old news and passes it on, and to others on our ticks.
            # Not urgently: every node that hears an old suspicion knows better,
            # and were each to spread its refutation between ticks, the cost of
            # one suspicion would grow with N (11.7 datagrams/s a node at 1,000
            # members and 30 % loss, 3.9 at 0 %).
            self._broadcasts.put(key, Kind.ALIVE)
            self._answer.add(sender.spec.key)
            return
        if news.kind == Kind.SUSPECT:
            self._suspect(peer, order, news.suspector, now)
        elif news.kind in (Kind.DOWN, Kind.LEFT):
            if peer.status == NEW:
                peer.order = order
            self._gone(peer, LEFT if news.kind == Kind.LEFT else DOWN, now)

    def _news_of_me(self, news: News, sender: Peer) -> None:
        if news.kind in (Kind.SUSPECT, Kind.DOWN) and news.incarnation >= self.incarnation:
            # SWIM's refutation: a higher incarnation than any news of us.
            self.incarnation = news.incarnation + 1
            self.events["refuted_self"] += 1
            self.health = min(m.MAX_HEALTH, self.health + 1)
            self._broadcasts.put(self.key, Kind.ALIVE)
            self._urgent()
            # To the sender and the suspector directly, at the next REFUTE_REPEAT
            # polls: the suspector declares us down t_min after both our monitors
            # suspect us, and one lost answer was enough to let it (simulator).
            self._refuting[sender.spec.key] = m.REFUTE_REPEAT
            suspector = self.table.key_of(news.suspector)
            if suspector is not None and suspector != self.key:
                self._refuting[suspector] = m.REFUTE_REPEAT

    def _suspect(self, peer: Peer, order: tuple[int, int], suspector: bytes, now: float) -> None:
        if peer.status in GONE:
            return
        s = peer.suspicion
        if s is None or peer.status != SUSPECT:
            if peer.status == NEW:
                peer.order = order
            self.table.set_status(peer, SUSPECT, now)
            s = peer.suspicion = Suspicion(order, now, {suspector})
            self._suspecting.add(peer.spec.key)
            self.events["suspected" if suspector == self.table.me.id else "heard_suspect"] += 1
        elif suspector not in s.confirmers:
            s.confirmers.add(suspector)
        me = self.table.me.id
        mesh = self.full_mesh()
        # In a full mesh every suspicion is news for everyone. Above the threshold
        # one monitor's suspicion stays between the member's monitors until a
        # second confirms it: at 30 % loss a lone monitor misses a member a few
        # times an hour, and each suspicion gossiped to 1,000 nodes cost them
        # 13 datagrams a second each and false downs by the thousand.
        # One heard from a non-monitor's gossip was spread already: pass it on.
        monitors = () if mesh else self.table.walk(peer.spec.key, m.MONITORS, 1)
        spread = (mesh or len(s.confirmers) >= m.MONITORS
                  or (suspector != me and self.key not in monitors))  # fmt: skip
        if spread and suspector not in s.told:
            s.told.add(suspector)
            self._broadcasts.put(peer.spec.key, Kind.SUSPECT)
            if me in s.confirmers:
                self._urgent()
        if me in s.confirmers and not mesh and suspector == me:
            self._tell_monitors(peer)
        n = self.table.live_count()
        stretch = 1 + self.health
        if me in s.confirmers:
            if s.mine_since is None:
                s.mine_since = now
            c = len(s.confirmers) - 1
            if mesh:
                low = m.t_min(n, self.interval)
                timeout = m.suspicion_timeout(n, c, self.interval)
            else:
                low = m.CONFIRMED * self.interval
                timeout = m.suspicion_timeout(n, c, self.interval, m.MONITORS - 1, low)
            # A node that joins a suspicion late still gives its own probes that long:
            # from the first news of it alone, a monitor whose view lagged (it had
            # heard nothing because the member sent to another) declared down the
            # moment it confirmed.
            s.deadline = max(s.since + timeout * stretch,
                             s.mine_since + low * stretch)  # fmt: skip
        else:
            s.deadline = s.since + m.backstop(n, self.interval, self.suspect_after) * stretch

    def _tell_monitors(self, peer: Peer) -> None:
        """Our suspicion of ``peer``, in the next datagram to its other monitors
        (and whoever else suspects it), so that their suspicions meet ours now,
        not when gossip brings them together. Again at every poll until one
        confirms: one lost datagram had left a monitor suspecting alone, and a
        lone suspector waits 6 t_min (10 s after the crash, simulator)."""
        s = peer.suspicion
        assert s is not None
        others = set(self.table.walk(peer.spec.key, m.MONITORS, 1))
        others.update(k for k in map(self.table.key_of, s.confirmers) if k is not None)
        # And the member itself, as SWIM tells a suspect: it refutes at a new
        # incarnation, which nodes that hear it pass to its monitors
        # (_take_report). Its own answers alone had all been lost for 5 s in the
        # one false down left at 1,000 members and 30 % loss (simulator).
        others.add(peer.spec.key)
        others.discard(self.key)
        for key in others:
            self._tell.setdefault(key, set()).add(peer.spec.key)
        self._answer.update(others)

    # -- time passes -------------------------------------------------------------

    def _monitored(self) -> list[str]:
        """The members whose silence this node judges."""
        if self.full_mesh():
            peers = self.table.peers.items()
            return [k for k, p in peers if p.status in (ALIVE, SUSPECT) and k != self.key]
        return self.table.walk(self.key, m.MONITORS, -1)

    def _judge(self, now: float) -> None:
        late = self.suspect_after * (1 + self.health)
        me = self.table.me.id
        for key in self._monitored():
            peer = self.table.peers.get(key)
            if peer is None or peer.status not in (ALIVE, SUSPECT):
                continue  # never heard of: nothing to judge yet
            age = None if peer.fresh_at is None else now - peer.fresh_at
            if age is not None and age > late / 2:
                # Quiet for over an interval: ask it directly, at every poll until
                # it answers or is down (SWIM's ping). It may just not be sending
                # to us: above the threshold two nodes' rings can differ while
                # news spreads, and a probe makes it send its ticks to us too.
                self._probe.add(key)
            if age is not None and age <= late:
                continue
            if peer.status == ALIVE or (
                peer.status == SUSPECT and peer.suspicion and me not in peer.suspicion.confirmers
            ):
                # Our own suspicion, or our confirmation of another's: independent
                # ones are what shorten the timeout (Lifeguard).
                self._suspect(peer, peer.order, me, now)
                self._answer.add(key)  # ask it directly, too
        for key in sorted(self._suspecting):  # sorted: set order follows PYTHONHASHSEED
            suspect = self.table.peers.get(key)
            if suspect is None or suspect.status != SUSPECT or suspect.suspicion is None:
                self._suspecting.discard(key)
                continue
            s = suspect.suspicion
            if now >= s.deadline:
                self._gone(suspect, DOWN, now, mine=True)
            elif me in s.confirmers:
                if len(s.confirmers) < m.MONITORS and not self.full_mesh():
                    self._tell_monitors(suspect)  # again: not confirmed yet
            elif now >= (s.since + s.deadline) / 2:
                # Only heard of, and not refuted for half the wait: ask the
                # member itself before taking it as down.
                self._probe.add(key)
        for key in [k for k in self.table.gone if k in self.table.found]:
            gone = self.table.peers.get(key)
            if gone is not None and now - gone.status_since > m.FORGET_AFTER:
                self.table.forget(key)
                self.book.keep(set(self.table.members()))
                self.events["forgotten"] += 1
                log.info("forgot member %s (gone for %.0f s)", gone.spec.name, m.FORGET_AFTER)

    def _own_state(self, sample: Sample, wall_ms: int, now: float, leaving: bool = False) -> State:
        """This node's next report, also taken as its own freshest news."""
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
            leaving=leaving,
        )
        me = self.table.me
        me.state, me.heard_at, me.order, me.fresh_at = state, now, state.order, now
        return state

    def _everyone(self) -> list[str]:
        return [k for k in self.table.members() if k != self.key]

    def tick(self, sample: Sample, now: float, wall_ms: int) -> list[tuple[bytes, str]]:
        """Take this node's new sample; return the datagrams to send this interval."""
        if self._last_tick is not None:
            # Lifeguard's local health: a tick much later than due means this
            # node is starved, and what it failed to hear is its own fault.
            # Late by more than an interval and at least a second: short test
            # intervals on a busy machine are not starvation.
            late = now - self._last_tick > self.interval * 1.1 + max(self.interval, 1.0)
            self.health = min(m.MAX_HEALTH, self.health + 1) if late else max(0, self.health - 1)
        if self._first_tick is None:
            self._first_tick = now
        self._ticks += 1
        # Members never heard of after the grace are not running: their places
        # on the ring go to the next ones (table.walk).
        self.table.unheard_hold_places = now - self._first_tick < m.UNHEARD_GRACE * self.interval
        self._last_tick = now
        self._sample = sample
        self._load_now = None
        # Jobs promised to this node (its own picks, others' claims) live two
        # of its samples (this and refresh's), as others' extras live two of
        # their reports: by then the load shows them.
        self.table.count_report(self.table.me, now)
        # Twice the replay window: a sender whose clock runs ahead may have its
        # claim replayed that much later and still pass the window.
        self._claims = {c: t for c, t in self._claims.items()
                        if now - t <= 2 * self.replay_window_ms / 1000}  # fmt: skip
        self._asks_seen.clear()  # a question is answered within milliseconds, not a tick
        state = self._own_state(sample, wall_ms, now)
        self.table.expire(now)
        self._judge(now)
        spreaders: set[str] | None = None  # full mesh: every report gets the full filler
        if self.full_mesh():
            targets = self._everyone()
        else:
            targets, spreaders = self._sparse_targets(now)
        targets.extend(k for k in sorted(self._answer) if k not in targets)
        self._answer.clear()
        return self._datagrams(state, targets, now, spreaders=spreaders)

    def _sparse_targets(self, now: float) -> tuple[list[str], set[str]]:
        """Above the threshold: the monitors, the members that probed us lately,
        FANOUT random members, and every member of an older release (it judges
        by silence); and of those, the random ones (LEAN_FILL)."""
        targets = self.table.walk(self.key, m.MONITORS, 1)
        for key, until in list(self._watchers.items()):
            if until < now or key in self.table.gone:
                del self._watchers[key]
            elif key not in targets:
                targets.append(key)
        spreaders = self._random_members(self.fanout, exclude=set(targets))
        targets += spreaders
        targets += [k for k in sorted(self._older) if k not in targets and k not in self.table.gone]
        return targets, set(spreaders)

    def _random_members(self, count: int, exclude: set[str]) -> list[str]:
        keys = self.table.ring.keys
        out: list[str] = []
        for _ in range(4 * count):
            if len(out) == count or len(keys) < 2:
                break
            key = keys[self.rng.randrange(len(keys))]
            if key == self.key or key in exclude or key in out or key in self.table.gone:
                continue
            out.append(key)
        return out

    def refresh(self, load: float, now: float) -> None:
        """This node's load measured since the last tick or refresh (the daemon's
        poller): what its bids say until the next tick. A sample as a tick's
        is: jobs promised to this node live two of them (and PROMISE_KEEP)."""
        self._load_now = load
        self.table.count_report(self.table.me, now)

    def poll(self, now: float, wall_ms: int) -> list[tuple[bytes, str]]:
        """Between ticks: spread waiting membership news at once (it cannot wait an
        interval: detection must be within a few). Usually nothing."""
        if self._sample is None:
            return []
        self._judge(now)  # suspicions time out at a quarter interval's precision
        for key, left in list(self._refuting.items()):
            self._answer.add(key)
            if left <= 1 or key in self.table.gone:
                del self._refuting[key]
            else:
                self._refuting[key] = left - 1
        if self._urgent_needed:  # for two intervals: some nine polls, its retransmissions
            self._urgent_needed, self._urgent_until = False, now + 2 * self.interval
        hot = self.flush(now, wall_ms)  # nothing, where the shell flushed after its reads
        if not self._broadcasts and not self._answer and not self._probe:
            return hot
        state = self._own_state(self._sample, wall_ms, now)
        if self.full_mesh():
            targets = self._everyone()
        elif self._broadcasts and now < self._urgent_until:
            targets = self._random_members(self.fanout, exclude=set(self._answer))
        else:
            targets = []
        targets.extend(k for k in sorted(self._answer) if k not in targets)
        self._answer.clear()
        # Changes only, no load of members heard lately: a poll's datagrams are
        # probes, answers and urgent news, and the filler made them 330 bytes
        # instead of 150 (at 30 % loss a third of a node's traffic, simulator).
        return hot + self._datagrams(state, targets, now, fill=False)

    def flush(self, now: float, wall_ms: int) -> list[tuple[bytes, str]]:
        """After datagrams came in: what must go on at once, not at the next poll.

        The answers to probes (reports to the members that probed, brief in
        version 5), the
        bids for others' questions, and above the threshold a down or left
        heard from others, once, to FORWARD random members (a hot rumour).
        Waiting for the next poll cost a quarter interval per hop, half a
        second of the time until the last of 100 nodes showed a crash
        (simulator). Usually nothing."""
        out, self._bids_out = self._bids_out, []
        if self._sample is None:
            return out
        targets = sorted(self._probed_by)  # sorted: set order follows PYTHONHASHSEED
        self._probed_by.clear()
        if self._forward:
            self._forward = False
            if not self.full_mesh() and self._broadcasts:
                targets += self._random_members(m.FORWARD, exclude=set(targets))
        if not targets:
            return out
        state = self._own_state(self._sample, wall_ms, now)
        return out + self._datagrams(state, targets, now, fill=False)

    def leave(self, now: float, wall_ms: int) -> list[tuple[bytes, str]]:
        """Stopping: a datagram saying so, twice, to every member (at most 64 above
        the threshold, who spread the news)."""
        if self._sample is None:
            return []
        if self.full_mesh():
            targets = self._everyone()
        else:
            targets = self.table.walk(self.key, m.MONITORS, 1) + self.table.walk(
                self.key, m.MONITORS, -1
            )
            targets += self._random_members(64 - len(targets), exclude=set(targets))
        out = []
        for _ in range(2):  # one lost datagram must not leave a member waiting for the timeout
            out += self._datagrams(
                self._own_state(self._sample, wall_ms, now, leaving=True), targets, now
            )
        return out

    def announce(self, now: float, wall_ms: int) -> bytes | None:
        """This node's report for a broadcast or multicast address (discovery):
        whoever hears it and has discovery on learns of this node."""
        if self._sample is None:
            return None
        state = self._own_state(self._sample, wall_ms, now)
        return self._encoded(dataclasses.replace(state, news=self._news(now)[0]))

    # -- datagrams out -------------------------------------------------------------

    def _news(self, now: float, fill: bool = True) -> tuple[tuple[News, ...], int]:
        """What this datagram says of others: waiting changes first, then (with
        ``fill``) the members heard of most recently (their load, and that they
        live); and how many of them are changes."""
        members = self.table.live_count()
        chosen: dict[str, News] = {}
        for key, kind in self._broadcasts.take(m.NEWS_PER_DATAGRAM, m.retransmit_limit(members)):
            news = self._news_of(key, Kind(kind), now)
            if news is not None:
                chosen[key] = news
        changes = len(chosen)
        fresh = self.suspect_after
        for key in reversed(self._recent) if fill else ():
            if len(chosen) >= m.NEWS_PER_DATAGRAM:
                break
            if key in chosen or key == self.key:
                continue
            peer = self.table.peers.get(key)
            if peer is None or peer.status != ALIVE or peer.fresh_at is None:
                continue
            if now - peer.fresh_at > fresh:
                continue  # relayed news can be older than what came before it
            news = self._news_of(key, Kind.ALIVE, now)
            if news is not None:
                chosen[key] = news
        return tuple(chosen.values()), changes

    def _news_of(self, key: str, kind: Kind, now: float) -> News | None:
        peer = self.table.peers.get(key)
        if peer is None or peer.order == NO_ORDER:
            return None
        inc, seq = peer.order
        age = 0.0 if peer.fresh_at is None else max(0.0, now - peer.fresh_at)
        if kind == Kind.ALIVE:
            if not peer.known or peer.status != ALIVE:
                return None
            ncpu, load, _load1, avail = peer.load_view()
            return News(peer.id, inc, seq, kind, age, ncpu, load, avail)
        if kind == Kind.SUSPECT:
            s = peer.suspicion
            if s is None or peer.status != SUSPECT:
                return None
            # Our own suspicion if we hold one: each suspector speaks for itself.
            me = self.table.me.id
            suspector = me if me in s.confirmers else min(s.confirmers)
            return News(peer.id, s.order[0], s.order[1], kind, age, suspector=suspector)
        return News(peer.id, inc, seq, kind, age)

    def _encoded(self, state: State, version: int | None = None) -> bytes:
        """``state`` on the wire at ``version`` (wire.encode_state's default
        without one), sealed if we have a key."""
        return self._sealed(encode_state(state, version))

    def _sealed(self, datagram: bytes) -> bytes:
        return self.sealer.seal(datagram, self.nonce()) if self.sealer is not None else datagram

    def _datagrams(self, state: State, targets: list[str], now: float,
                   fill: bool = True,
                   spreaders: set[str] | None = None) -> list[tuple[bytes, str]]:  # fmt: skip
        """``state`` with news to each of ``targets``; given ``spreaders`` (a
        tick above the threshold), the others get only LEAN_FILL of the filler."""
        full_news, changes = self._news(now, fill)
        lean_news = full_news[: changes + m.LEAN_FILL]
        # Above the threshold the others than the random members get the usage
        # only in every USAGE_EVERY-th tick, from the first on (membership.py).
        others_brief = (self._ticks - 1) % m.USAGE_EVERY != 0
        # Each peer gets the version it speaks (a rolling upgrade, wire.py);
        # one not heard yet gets ours. Each version is encoded (and sealed) once
        # (twice, lean and full, in a tick above the threshold).
        # A member we probe gets the probe flag (version 3 only; an older one
        # answers every interval anyway). Without ``fill`` (between ticks) the
        # datagram is brief, in version 5: no usage, which the tick carries
        # (and above the threshold, a tick to the others than ``spreaders``
        # carries in only every USAGE_EVERY-th).
        datagrams: dict[tuple[int, bool, bool, bool], bytes] = {}
        out = []
        probes = self._probe
        targets = targets + [k for k in sorted(probes) if k not in targets]
        for key in targets:
            addresses = self.book.get(key)
            if not addresses:
                continue
            peer = self.table.peers.get(key)
            speaks = peer.speaks if peer is not None and peer.state is not None else VERSION
            if self._ticks <= m.ANNOUNCE_TICKS:
                speaks = VERSION  # what we speak, to everyone, first (ANNOUNCE_TICKS)
            version = 1 if state.usage is None else min(speaks, VERSION)
            probe = key in probes and version >= 3
            # (When the filler is short the lean news is the full: one encoding.)
            other = spreaders is not None and key not in spreaders
            lean = other and len(lean_news) < len(full_news)
            # (Brief exists from version 5 on: below, one encoding either way.)
            brief = (not fill or (other and others_brief)) and version >= COMPACT_FROM
            news = lean_news if lean else full_news
            told = self._tell.pop(key, None)
            if told and version >= 3:
                # Suspicions for this member's eyes only, before the common news.
                extra = [n for n in (self._news_of(k, Kind.SUSPECT, now) for k in sorted(told))
                         if n is not None]  # fmt: skip
                members = {e.member for e in extra}
                mine = extra + [n for n in news if n.member not in members]
                full = dataclasses.replace(state, news=tuple(mine[: m.NEWS_PER_DATAGRAM]),
                                           probe=probe, brief=brief)  # fmt: skip
                out.append((self._encoded(full, version), addresses[0]))
                continue
            datagram = datagrams.get((version, probe, lean, brief))
            if datagram is None:
                full = (dataclasses.replace(state, news=news, probe=probe, brief=brief)
                        if version >= 3 else state)  # fmt: skip
                datagram = datagrams[version, probe, lean, brief] = self._encoded(full, version)
            out.append((datagram, addresses[0]))
        probes.clear()
        return out

    # -- answers ---------------------------------------------------------------

    def view(self, peer: Peer) -> NodeView | None:
        if not peer.known:
            return None
        ncpu, load, load1, avail = peer.load_view()
        if peer is self.table.me and self._load_now is not None:
            # Its own load as fresh as its bids: the jobs it promised itself
            # last only two of these samples (refresh).
            load = self._load_now
        return NodeView(
            load=load,
            load1=load1,
            ncpu=ncpu,
            mem_avail=avail,
            loadscale=peer.spec.loadscale,
            memscale=peer.spec.memscale,
            extra=peer.extra,
        )

    def _score(self, peer: Peer) -> float:
        view = self.view(peer)
        assert view is not None
        return self.score_fn(view)

    def candidates(self, now: float) -> list[Peer]:
        """Nodes that may be chosen: alive (not suspect), load known, not drained;
        above the threshold only those with fresh news."""
        me = self.table.me
        sparse = not self.full_mesh()
        out = []
        for peer in self.table.peers.values():
            if peer is me:
                if me.state is not None and not (self.drained or me.drained):
                    out.append(me)
                continue
            if peer.status != ALIVE or not peer.known or peer.drained:
                continue
            if sparse and (peer.fresh_at is None or now - peer.fresh_at > self.suspect_after):
                continue
            out.append(peer)
        return out

    def best(self, now: float, choices: int = 32) -> str | None:
        """The name of the node for the next job, or None; counts the job against it.

        Above the threshold, one of the best two of ``choices`` fresh members
        drawn at random (power of d choices): daemons on different nodes then
        do not all send their jobs to one node, and none scores the whole
        cluster."""
        candidates = self.candidates(now)
        if not candidates:
            return None
        sparse = not self.full_mesh()
        if sparse and len(candidates) > choices:
            candidates = self.rng.sample(candidates, choices)
        scored = [(self._score(p), p) for p in candidates]
        scored = [(s, p) for s, p in scored if s == s] or [(0.0, p) for _, p in scored]  # NaN
        low = min(s for s, _ in scored)
        # Equal nodes are chosen at random, so that daemons on different nodes
        # asked at the same moment do not all send their first job to one node.
        tied = [p for s, p in scored if s <= low + 1e-9]
        if sparse and len(tied) == 1 and len(scored) > 1:
            # Above the threshold the loads are up to S old, and the daemons that
            # hold the same best node send it jobs it does not report yet: either
            # of the best two halved the picks in the worst 50 % at 1,000 members
            # (p90 of the true-load percentile 61 -> 48, simulator).
            tied.append(min(((s, p) for s, p in scored if p is not tied[0]), key=lambda t: t[0])[1])
        chosen = tied[0] if len(tied) == 1 else self.rng.choice(tied)
        keep = b.PROMISE_KEEP if chosen is self.table.me else 0.0
        self.table.add_extra(chosen, self.extraload, now, keep)
        return chosen.spec.name

    def ask(self, now: float, wall_ms: int, choices: int = 32) -> b.Question | None:
        """Above the threshold: a best-node question to the ``ask_best`` best of
        ``choices`` fresh members drawn at random (bids.py). The shell sends its
        ``datagrams``, feeds the bids to ``receive`` and calls ``answer`` when
        it is ``complete`` or ASK_TIMEOUT has passed (sending ``again()`` after
        ASK_AGAIN_AFTER if it is not complete by then). None: answer with
        ``best`` at once (full mesh, or no candidate that answers questions)."""
        if self.ask_best <= 0 or self.full_mesh():
            return None
        candidates = self.candidates(now)
        if len(candidates) > choices:
            candidates = self.rng.sample(candidates, choices)
        scored = [(self._score(p), p) for p in candidates]
        scored.sort(key=lambda t: t[0] if t[0] == t[0] else math.inf)
        me = self.table.me
        top = scored[: self.ask_best]
        asked = [p for _, p in top if p is not me and self._answers_asks(p, now)]
        if not asked:
            return None
        while len(self._questions) >= b.MAX_QUESTIONS:  # a shell that never answers
            del self._questions[next(iter(self._questions))]
        nonce = self.rng.getrandbits(32)
        while nonce in self._questions:
            nonce = self.rng.getrandbits(32)
        # The report-based answer, should no bid come: either of the best two,
        # as best() does (the extra load is added when the question is answered).
        low = [p for _, p in top[:2]]
        fallback = low[0] if len(low) == 1 else self.rng.choice(low)
        question = b.Question(nonce, set(), fallback.spec.key)
        if any(p is me for _, p in top):
            # This node's own load now, without a datagram.
            question.own = (me.spec.key, self._score(me))
        ask = self._sealed(encode_message(Ask(self.name, nonce, wall_ms)))
        for peer in asked:
            addresses = self.book.get(peer.spec.key)
            if addresses:
                question.asks[peer.spec.key] = (ask, addresses[0])
                question.waiting.add(peer.spec.key)
        if not question.waiting:
            return None
        self._questions[nonce] = question
        return question

    def _answers_asks(self, peer: Peer, now: float) -> bool:
        """Whether to ask ``peer``: its own reports say it speaks version 4; or,
        known only from others' news (most members, above the threshold), it
        has not left MAX_UNANSWERED questions in a row unanswered lately."""
        if peer.state is not None and peer.speaks >= ASKS_FROM:
            return True
        if peer.state is not None:
            return False  # an older release
        missed, since = self._unanswered.get(peer.spec.key, (0, now))
        return missed < b.MAX_UNANSWERED or now - since >= b.UNANSWERED_FOR

    def answer(self, question: b.Question, now: float,
               wall_ms: int) -> tuple[str | None, list[tuple[bytes, str]]]:  # fmt: skip
        """The answer to ``question``: the least loaded bidder (or, without bids,
        the report-based choice), with the job counted against it; and the
        CLAIM that tells it so."""
        if self._questions.pop(question.nonce, None) is None:
            question.waiting.clear()  # evicted (a burst): its bids were refused, not lost
        for waited in question.waiting:
            missed, since = self._unanswered.get(waited, (0, now))
            fresh = now - since < b.UNANSWERED_FOR  # an old tally is forgotten
            self._unanswered[waited] = ((missed if fresh else 0) + 1, now)
        if len(self._unanswered) > 4 * b.CLAIM_MEMORY:
            self._unanswered = {k: v for k, v in self._unanswered.items()
                                if now - v[1] < b.UNANSWERED_FOR}  # fmt: skip
        for bidder in question.bids:
            self._unanswered.pop(bidder, None)
        key = question.choice(self.rng.random())
        peer = None if key is None else self.table.peers.get(key)
        if peer is None or (peer is not self.table.me and peer.status != ALIVE):
            return self.best(now), []  # it went down while we asked
        keep = b.PROMISE_KEEP if peer is self.table.me else 0.0
        self.table.add_extra(peer, self.extraload, now, keep)
        out: list[tuple[bytes, str]] = []
        addresses = self.book.get(peer.spec.key)
        speaks = peer.speaks if peer.state is not None else 0
        answers = key in question.bids or speaks >= ASKS_FROM
        if peer is not self.table.me and answers and addresses:
            claim = Claim(self.name, question.nonce, wall_ms, self.extraload)
            out += [(self._sealed(encode_message(claim)), addresses[0])] * b.CLAIM_COPIES
        return peer.spec.name, out

    def status_rows(self, now: float) -> list[StatusRow]:
        rows = []
        me = self.table.me
        for key in self.table.members():
            spec = self.table.spec(key)
            assert spec is not None
            peer = self.table.peers.get(key)
            if peer is None:
                rows.append(StatusRow(name=spec.name, state="down", load=None, ncpu=None,
                                      mem_avail=None, loadscale=spec.loadscale,
                                      memscale=spec.memscale, score=None, age=None, load1=None,
                                      extra=0.0, is_self=False, drained=spec.drained,
                                      listed=key in self.roster.specs))  # fmt: skip
                continue
            shown = self._shown(peer)
            view = self.view(peer)
            s = peer.state
            live = shown in ("up", "drained", "suspect")
            rows.append(
                StatusRow(
                    name=spec.name,
                    state=shown,
                    load=view.load if view else None,
                    ncpu=view.ncpu if view else None,
                    mem_avail=view.mem_avail if view else None,
                    loadscale=spec.loadscale,
                    memscale=spec.memscale,
                    score=self.score_fn(view) if view and live else None,
                    age=None if peer.fresh_at is None else max(0.0, now - peer.fresh_at),
                    load1=view.load1 if view else None,
                    extra=peer.extra,
                    is_self=peer is me,
                    mem_total=s.mem_total if s else None,
                    drained=peer.drained or (peer is me and self.drained),
                    usage=s.usage if s else None,
                    listed=key in self.roster.specs,
                )
            )
        return rows
