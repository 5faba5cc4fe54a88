"""The gossip logic, deterministically: GossipNodes on a seeded fake network in virtual time.

As in trio's fake-network tests, nothing here sleeps or opens a socket: datagrams
wait in a heap with their delivery times, the fake network drops, duplicates and
delays them from its own seeded ``random.Random``, and a minute of cluster life
runs in milliseconds.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from support.gossip_node import make_node

from dsh.core.cluster import parse_cluster
from dsh.core.gossip import (
    ACCEPTED,
    MALFORMED,
    NAME_MISMATCH,
    NOT_MEMBER,
    OUTCOMES,
    STALE,
    GossipNode,
    Sample,
    normalize_address,
)
from dsh.core.membership import ANNOUNCE_TICKS, suspicion_timeout, t_min
from dsh.core.score import GIB, NodeView, score_load
from dsh.core.wire import VERSION, State, Usage, decode, encode_state

CLUSTER = """\
newton.foo.bar 1.0 1.0
galileo.foo.bar 2.0 2.0
kepler.foo.bar 2.0
"""
ADDRESSES = {
    "newton.foo.bar": "127.0.0.11",
    "galileo.foo.bar": "127.0.0.12",
    "kepler.foo.bar": "127.0.0.13",
}
NAME_AT = {a: n for n, a in ADDRESSES.items()}
NAMES = tuple(ADDRESSES)

# The daemon's defaults (config.py): every 1.5 s +-10 %, down after 3 silent intervals.
INTERVAL = 1.5
JITTER = 0.1
DEAD_AFTER = 3 * INTERVAL
SUSPECT_AFTER = 2 * INTERVAL * (1 + JITTER)
EXTRA_REPORTS = 2
EXTRA_TTL = (EXTRA_REPORTS + 1) * INTERVAL * (1 + JITTER)
EPOCH_MS = 1_700_000_000_000  # virtual time 0 on the nodes' wall clocks

IDLE = Usage(0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0)
# What the daemon's sampler gives: with usage, so datagrams are version 3 (with news).
SAMPLE = Sample(ncpu=4, load=0.0, load1=0.0, mem_avail=8 * GIB, mem_total=16 * GIB, usage=IDLE)


def new_node(
    name: str,
    text: str = CLUSTER,
    *,
    incarnation: int = EPOCH_MS,
    seed: int = 0,
    extraload: float = 1.0,
    addresses: dict[str, str] | None = None,
) -> GossipNode:
    node = GossipNode(
        parse_cluster(text),
        name,
        score_load,
        interval=INTERVAL,
        suspect_after=SUSPECT_AFTER,
        extraload=extraload,
        extra_reports=EXTRA_REPORTS,
        extra_ttl=EXTRA_TTL,
        incarnation=incarnation,
        rng=random.Random(seed),
    )
    for member, address in (ADDRESSES if addresses is None else addresses).items():
        node.set_addresses(member, (address,))
    return node


# -- the fake network ------------------------------------------------------------


@dataclass(frozen=True)
class Datagram:
    data: bytes
    src: str
    dst: str
    order: tuple[int, int]  # the sender's (incarnation, seq), noted when it was sent


@dataclass(frozen=True)
class Delivery:
    at: float
    dst: str  # node names
    src: str
    order: tuple[int, int]
    outcome: str
    before: tuple[int, int] | None  # what the receiver held for src, before and after
    after: tuple[int, int] | None
    # The freshest order the receiver knew, from src itself or another member's news.
    known: tuple[int, int] | None = None


@dataclass
class FakeNetwork:
    """Datagrams in flight in virtual time; seeded loss, duplication and delay."""

    rng: random.Random
    loss: float = 0.0
    duplicate: float = 0.0
    delay: tuple[float, float] = (0.001, 0.005)  # seconds; a wide range reorders
    in_flight: list[tuple[float, int, Datagram]] = field(default_factory=list)
    sent: int = 0
    lost: int = 0
    duplicated: int = 0
    _n: Iterator[int] = field(default_factory=itertools.count)

    def send(self, datagram: Datagram, now: float) -> None:
        self.sent += 1
        if self.rng.random() < self.loss:
            self.lost += 1
            return
        copies = 1
        if self.rng.random() < self.duplicate:
            self.duplicated += 1
            copies = 2
        for _ in range(copies):
            at = now + self.rng.uniform(*self.delay)
            heapq.heappush(self.in_flight, (at, next(self._n), datagram))

    def next_time(self) -> float:
        return self.in_flight[0][0] if self.in_flight else float("inf")

    def pop(self) -> Datagram:
        return heapq.heappop(self.in_flight)[2]


class VirtualCluster:
    """The three nodes of CLUSTER, each ticking on its own jittered timer."""

    def __init__(self, net: FakeNetwork, seed: int) -> None:
        self.net = net
        self.rng = random.Random(seed)
        self.now = 0.0
        self.nodes: dict[str, GossipNode] = {}
        self.next_tick: dict[str, float] = {}
        self.next_poll: dict[str, float] = {}
        self.last_sent: dict[str, float] = {}
        self.deliveries: list[Delivery] = []

    def start(self, name: str, incarnation: int | None = None) -> GossipNode:
        if incarnation is None:
            incarnation = EPOCH_MS + int(self.now * 1000)
        node = new_node(name, incarnation=incarnation, seed=self.rng.randrange(2**32))
        self.nodes[name] = node
        # the first report comes after a random stagger, as the daemon's timers do
        self.next_tick[name] = self.now + self.rng.uniform(0, INTERVAL)
        self.next_poll[name] = self.next_tick[name] + INTERVAL / 4
        return node

    def stop(self, name: str) -> None:
        del self.nodes[name]
        del self.next_tick[name]
        del self.next_poll[name]

    def _tick(self, name: str) -> None:
        node = self.nodes[name]
        wall_ms = EPOCH_MS + int(self.now * 1000)
        for data, address in node.tick(SAMPLE, self.now, wall_ms):
            order = (node.incarnation, node.seq)
            self.net.send(Datagram(data, ADDRESSES[name], address, order), self.now)
        self.last_sent[name] = self.now
        self.next_tick[name] = self.now + INTERVAL * self.rng.uniform(1 - JITTER, 1 + JITTER)

    def _poll(self, name: str) -> None:
        node = self.nodes[name]
        for data, address in node.poll(self.now, EPOCH_MS + int(self.now * 1000)):
            order = (node.incarnation, node.seq)
            self.net.send(Datagram(data, ADDRESSES[name], address, order), self.now)
        self.next_poll[name] = self.now + INTERVAL / 4

    def _deliver(self, datagram: Datagram) -> None:
        dst, src = NAME_AT[datagram.dst], NAME_AT[datagram.src]
        node = self.nodes.get(dst)
        if node is None:
            return  # nobody listening: lost, as on a real network
        peer = node.table.get(src)
        before = peer.state.order if peer and peer.state else None
        known = peer.order if peer and peer.state else None
        outcome = node.receive(datagram.data, datagram.src, self.now)
        peer = node.table.get(src)
        after = peer.state.order if peer and peer.state else None
        self.deliveries.append(
            Delivery(self.now, dst, src, datagram.order, outcome, before, after, known)
        )
        # What the daemon does after each batch it reads: answers to probes, at once.
        for data, address in node.flush(self.now, EPOCH_MS + int(self.now * 1000)):
            order = (node.incarnation, node.seq)
            self.net.send(Datagram(data, ADDRESSES[dst], address, order), self.now)

    def run_until(self, end: float) -> None:
        while True:
            tick_at, name = min(
                ((t, n) for n, t in self.next_tick.items()), default=(float("inf"), "")
            )
            poll_at, polled = min(
                ((t, n) for n, t in self.next_poll.items()), default=(float("inf"), "")
            )
            net_at = self.net.next_time()
            if min(tick_at, net_at, poll_at) > end:
                break
            if net_at <= min(tick_at, poll_at):
                self.now = net_at
                self._deliver(self.net.pop())
            elif poll_at < tick_at:
                self.now = poll_at
                self._poll(polled)
            else:
                self.now = tick_at
                self._tick(name)
        self.now = end

    def watch(self, start: float, end: float, step: float) -> Iterator[float]:
        """Run to each point of a grid; the caller looks at the nodes at each."""
        for i in range(round((end - start) / step) + 1):
            t = start + i * step
            self.run_until(t)
            yield t

    def states(self, observer: str) -> dict[str, str]:
        return {r.name: r.state for r in self.nodes[observer].status_rows(self.now)}


def all_up() -> dict[str, str]:
    return dict.fromkeys(NAMES, "up")


# -- a cluster in virtual time -----------------------------------------------------


def test_three_nodes_see_each_other_up() -> None:
    cluster = VirtualCluster(FakeNetwork(random.Random(1)), seed=2)
    for name in NAMES:
        cluster.start(name)
    cluster.run_until(60.0)
    for name in NAMES:
        assert cluster.states(name) == all_up(), name
    for name, node in cluster.nodes.items():
        received = [d for d in cluster.deliveries if d.dst == name]
        outcomes = {k: v for k, v in node.counters.items() if k in OUTCOMES}
        assert outcomes == {ACCEPTED: len(received)} | dict.fromkeys(OUTCOMES[1:], 0)
        assert node.events["suspected"] == node.events["heard_suspect"] == 0
        # each peer reports every 1.35..1.65 s: 36 to 45 reports in 60 s
        per_peer = Counter(d.src for d in received)
        assert set(per_peer) == set(NAMES) - {name}
        assert all(36 <= n <= 45 for n in per_peer.values()), per_peer
        # ... and what it knows is each peer's latest report
        for peer_name, peer_node in cluster.nodes.items():
            state = node.table.get(peer_name).state  # type: ignore[union-attr]
            assert state is not None
            assert state.incarnation == peer_node.incarnation
            assert peer_node.seq - 1 <= state.seq <= peer_node.seq


def test_stopped_node_is_suspect_then_down_and_comes_back_on_restart() -> None:
    cluster = VirtualCluster(FakeNetwork(random.Random(3)), seed=4)
    for name in NAMES:
        cluster.start(name)
    cluster.run_until(20.0)
    assert all(cluster.states(n) == all_up() for n in NAMES)

    gone = "kepler.foo.bar"
    observers = [n for n in NAMES if n != gone]
    cluster.stop(gone)
    last_report = cluster.last_sent[gone]
    first_suspect: dict[str, float] = {}
    first_down: dict[str, float] = {}
    longest = SUSPECT_AFTER + suspicion_timeout(3, 0, INTERVAL) + INTERVAL / 4
    for t in cluster.watch(20.0, last_report + longest + INTERVAL, 0.01):
        for observer in observers:
            states = cluster.states(observer)
            assert states[observer] == "up"
            assert states[next(o for o in observers if o != observer)] == "up"
            if states[gone] == "suspect":
                first_suspect.setdefault(observer, t)
                assert observer not in first_down, (observer, t)
            elif states[gone] == "down":
                first_down.setdefault(observer, t)
            else:  # up until suspected
                assert observer not in first_suspect and observer not in first_down
    for observer in observers:
        # suspect after suspect_after without news (checked every quarter interval) ...
        suspect = first_suspect[observer] - last_report
        assert SUSPECT_AFTER < suspect <= SUSPECT_AFTER + INTERVAL / 4 + 0.02
        # ... down once the timeout is over: the other observer's confirmation
        # brings it near t_min, and no later than a lone suspector's
        down = first_down[observer] - first_suspect[observer]
        assert t_min(3, INTERVAL) <= down <= suspicion_timeout(3, 0, INTERVAL) + INTERVAL / 4
        assert down < suspicion_timeout(3, 0, INTERVAL)  # confirmed: faster than alone

    restarted = cluster.start(gone, incarnation=EPOCH_MS + 40_000)
    assert restarted.incarnation > cluster.nodes[observers[0]].table.get(gone).state.incarnation  # type: ignore[union-attr]
    # its first report comes within one interval (the stagger) and is accepted at once,
    # despite a seq that starts again at 1
    cluster.run_until(cluster.now + INTERVAL + 0.01)
    for observer in observers:
        assert cluster.states(observer)[gone] == "up"
        state = cluster.nodes[observer].table.get(gone).state  # type: ignore[union-attr]
        assert state is not None and state.incarnation == restarted.incarnation
    # and it hears everybody within one more interval
    cluster.run_until(cluster.now + INTERVAL * (1 + JITTER) + 0.01)
    assert all(cluster.states(n) == all_up() for n in NAMES)


def test_restart_with_clock_stepped_back_rejoins_once_the_old_reports_are_dead() -> None:
    cluster = VirtualCluster(FakeNetwork(random.Random(5)), seed=6)
    for name in NAMES:
        cluster.start(name)
    cluster.run_until(20.0)
    gone = "kepler.foo.bar"
    cluster.stop(gone)
    last_report = cluster.last_sent[gone]
    # restarted at once, its clock an hour behind: a lower incarnation
    restarted = cluster.start(gone, incarnation=EPOCH_MS - 3_600_000)
    cluster.run_until(last_report + SUSPECT_AFTER)
    observers = [n for n in NAMES if n != gone]
    for observer in observers:
        # while the old incarnation is live its reports win: the new ones are stale
        assert cluster.nodes[observer].counters[STALE] >= 1
        state = cluster.nodes[observer].table.get(gone).state  # type: ignore[union-attr]
        assert state is not None and state.incarnation == EPOCH_MS
    # Once the observers suspect the old incarnation, the node hears of it and
    # refutes with a higher incarnation than the suspected one (SWIM): it is up
    # again without waiting to be declared down.
    cluster.run_until(last_report + SUSPECT_AFTER + INTERVAL * (1 + JITTER) + 0.01)
    assert restarted.incarnation == EPOCH_MS + 1
    for observer in observers:
        assert cluster.states(observer)[gone] == "up"
        state = cluster.nodes[observer].table.get(gone).state  # type: ignore[union-attr]
        assert state is not None and state.incarnation == restarted.incarnation
        events = cluster.nodes[observer].events
        assert events["declared_down"] == events["heard_down"] == 0


def test_thirty_percent_loss_never_makes_a_node_down() -> None:
    net = FakeNetwork(random.Random(7), loss=0.3)
    cluster = VirtualCluster(net, seed=8)
    for name in NAMES:
        cluster.start(name)
    cluster.run_until(10.0)
    shown: Counter[str] = Counter()
    for _ in cluster.watch(10.0, 610.0, 0.05):
        for observer in NAMES:
            states = cluster.states(observer)
            shown.update(states[p] for p in NAMES if p != observer)
    # Ten minutes at 30 % loss: never down. A member is suspect only when no news
    # of it (its own reports, or the others' news that they heard it) came for
    # 3.3 s, and a suspicion is refuted by the next news that does come.
    assert 0.25 < net.lost / net.sent < 0.35  # it did lose about 30 % (n ~ 5,000)
    print(shown)
    assert shown["down"] == 0, shown
    assert shown["up"] >= 0.99 * sum(shown.values()), shown
    for node in cluster.nodes.values():
        assert node.events["declared_down"] == node.events["heard_down"] == 0
        assert node.counters[MALFORMED] == 0


def test_duplicated_and_reordered_datagrams_are_stale_and_never_move_state_back() -> None:
    # Delays up to two intervals: a report often overtakes the one before it.
    net = FakeNetwork(random.Random(9), duplicate=0.3, delay=(0.001, 2 * INTERVAL))
    cluster = VirtualCluster(net, seed=10)
    for name in NAMES:
        cluster.start(name)
    cluster.run_until(60.0)

    newest: dict[tuple[str, str], tuple[int, int]] = {}
    older = equal = 0
    for d in cluster.deliveries:
        if d.before is not None:
            assert d.after is not None and d.after >= d.before  # never backwards
        known = newest.get((d.dst, d.src))
        # Newer than its last report, and not older than another member's news of it.
        fresh = known is None or d.order > known
        expected = ACCEPTED if fresh and (d.known is None or d.order >= d.known) else STALE
        assert d.outcome == expected, d
        if expected == ACCEPTED:
            newest[d.dst, d.src] = d.order
            assert d.after == d.order
        else:
            assert d.after == d.before
            older += known is not None and d.order < known
            equal += d.order == known
    # both kinds happened, so the test tested something
    assert equal >= 10 and older >= 10, (equal, older)
    for name, node in cluster.nodes.items():
        mine = Counter(d.outcome for d in cluster.deliveries if d.dst == name)
        assert node.counters[STALE] == mine[STALE] > 0
        assert node.counters[ACCEPTED] == mine[ACCEPTED]
        assert cluster.states(name) == all_up()


# -- receive() -----------------------------------------------------------------------


def report(name: str, seq: int = 1, incarnation: int = EPOCH_MS, **kw: object) -> bytes:
    fields: dict[str, object] = dict(
        name=name,
        incarnation=incarnation,
        seq=seq,
        sent_ms=EPOCH_MS,
        ncpu=4,
        load=0.0,
        load1=0.0,
        mem_avail=8 * GIB,
        mem_total=16 * GIB,
    )
    fields.update(kw)
    return encode_state(State(**fields))  # type: ignore[arg-type]


def test_receive_outcomes_and_counters() -> None:
    node = new_node("newton.foo.bar")
    galileo = ADDRESSES["galileo.foo.bar"]
    outcomes = [
        node.receive(report("galileo.foo.bar"), "10.9.9.9", 1.0),  # stranger
        node.receive(report("galileo.foo.bar"), "::1", 1.0),  # stranger
        node.receive(b"GET / HTTP/1.0\r\n\r\n", galileo, 1.0),  # garbage
        node.receive(report("galileo.foo.bar")[:-1], galileo, 1.0),  # truncated
        node.receive(report("kepler.foo.bar"), galileo, 1.0),  # names another member
        node.receive(report("tycho.foo.bar"), galileo, 1.0),  # names a non-member
        node.receive(report("newton.foo.bar"), galileo, 1.0),  # claims to be me
        node.receive(report("newton.foo.bar"), ADDRESSES["newton.foo.bar"], 1.0),  # me, looped
        node.receive(report("galileo.foo.bar", seq=1), galileo, 1.0),
        node.receive(report("GALILEO.foo.bar.", seq=2), galileo, 2.0),  # any spelling
        node.receive(report("galileo.foo.bar", seq=2), galileo, 2.0),  # duplicate
        node.receive(report("galileo.foo.bar", seq=1), galileo, 2.0),  # reordered
    ]
    assert outcomes == [
        NOT_MEMBER,
        NOT_MEMBER,
        MALFORMED,
        MALFORMED,
        NAME_MISMATCH,
        NAME_MISMATCH,
        NAME_MISMATCH,
        NAME_MISMATCH,
        ACCEPTED,
        ACCEPTED,
        STALE,
        STALE,
    ]
    assert node.counters == Counter(
        {ACCEPTED: 2, NOT_MEMBER: 2, MALFORMED: 2, NAME_MISMATCH: 4, STALE: 2}
    )
    # nothing but the two accepted reports changed the table
    assert node.table.me.state is None
    assert node.table.get("kepler.foo.bar") is None  # no record made for it
    peer = node.table.get("galileo.foo.bar")
    assert peer is not None and peer.state is not None and peer.state.seq == 2


def test_member_without_address_is_not_a_member_yet() -> None:
    node = new_node("newton.foo.bar", addresses={"galileo.foo.bar": "127.0.0.12"})
    assert node.receive(report("kepler.foo.bar"), "127.0.0.13", 1.0) == NOT_MEMBER
    node.set_addresses("kepler.foo.bar", ("10.1.1.1", "127.0.0.13"))
    assert node.receive(report("kepler.foo.bar"), "127.0.0.13", 1.0) == ACCEPTED
    node.set_addresses("KEPLER.foo.bar.", ())  # no longer resolves
    assert node.receive(report("kepler.foo.bar", seq=2), "127.0.0.13", 2.0) == NOT_MEMBER


def test_ipv4_mapped_source_counts_as_ipv4() -> None:
    node = new_node("newton.foo.bar")
    assert node.member_at("::ffff:127.0.0.11") == "newton.foo.bar"
    assert node.receive(report("galileo.foo.bar"), "::ffff:127.0.0.12", 1.0) == ACCEPTED
    # and the other way round: a mapped spelling from the resolver
    node.set_addresses("kepler.foo.bar", ("::ffff:127.0.0.13",))
    assert node.addresses("kepler.foo.bar") == ("127.0.0.13",)
    assert node.receive(report("kepler.foo.bar"), "127.0.0.13", 1.0) == ACCEPTED


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("::ffff:10.0.0.1", "10.0.0.1"),
        ("::FFFF:10.0.0.1", "10.0.0.1"),
        ("fe80::1%eth0", "fe80::1"),
        ("FE80:0:0::1", "fe80::1"),
        ("10.0.0.1", "10.0.0.1"),
        ("::1", "::1"),
        ("not an address", "not an address"),
    ],
)
def test_normalize_address(given: str, normal: str) -> None:
    assert normalize_address(given) == normal


def test_reload_forgets_removed_members_addresses() -> None:
    node = new_node("newton.foo.bar")
    changes = node.reload(parse_cluster("newton.foo.bar\ngalileo.foo.bar 2.0 2.0\ntycho\n"))
    assert (changes.added, changes.removed) == (("tycho",), ("kepler.foo.bar",))
    assert node.receive(report("kepler.foo.bar"), ADDRESSES["kepler.foo.bar"], 1.0) == NOT_MEMBER
    assert node.receive(report("galileo.foo.bar"), ADDRESSES["galileo.foo.bar"], 1.0) == ACCEPTED


def test_tick_sends_one_report_to_each_peer_with_an_address() -> None:
    node = new_node("newton.foo.bar", incarnation=EPOCH_MS + 5)
    node.set_addresses("kepler.foo.bar", ())
    out = node.tick(SAMPLE, now=1.0, wall_ms=EPOCH_MS + 1000)
    assert [address for _, address in out] == [ADDRESSES["galileo.foo.bar"]]
    node.set_addresses("kepler.foo.bar", ("127.0.0.13", "10.0.0.13"))
    node.drained = True
    out = node.tick(SAMPLE, now=2.0, wall_ms=EPOCH_MS + 2000)
    assert sorted(a for _, a in out) == ["127.0.0.12", "127.0.0.13"]  # first address only
    state = decode(out[0][0])
    assert (state.name, state.incarnation, state.seq, state.sent_ms) == (
        "newton.foo.bar",
        EPOCH_MS + 5,
        2,
        EPOCH_MS + 2000,
    )
    assert state.drained
    assert (state.ncpu, state.mem_avail, state.mem_total) == (4, 8 * GIB, 16 * GIB)
    assert node.table.me.state == state  # it knows its own state too


# -- best() ----------------------------------------------------------------------------

EQUAL = "a.foo.bar\nb.foo.bar\nc.foo.bar\n"
EQUAL_ADDRESSES = {"a.foo.bar": "10.0.0.1", "b.foo.bar": "10.0.0.2", "c.foo.bar": "10.0.0.3"}


def best_node(text: str = EQUAL, *, extraload: float = 1.0, seed: int = 0) -> GossipNode:
    """Node a, with a report from every other member and one sample of its own."""
    specs = parse_cluster(text)
    addresses = {s.name: f"10.0.0.{i}" for i, s in enumerate(specs, start=1)}
    node = new_node("a.foo.bar", text, extraload=extraload, seed=seed, addresses=addresses)
    node.tick(SAMPLE, now=0.0, wall_ms=EPOCH_MS)
    for spec in specs[1:]:
        assert node.receive(report(spec.name), addresses[spec.name], 0.0) == ACCEPTED
    return node


def tick_until(node: GossipNode, end: float, start: float = 0.0) -> None:
    """Ticks every interval up to ``end``: on time, so the node's health stays good."""
    t = start
    while t + INTERVAL < end:
        t += INTERVAL
        node.tick(SAMPLE, now=t, wall_ms=EPOCH_MS)
    node.tick(SAMPLE, now=end, wall_ms=EPOCH_MS)


def test_best_is_none_before_anything_is_known() -> None:
    node = new_node("a.foo.bar", EQUAL, addresses=EQUAL_ADDRESSES)
    assert node.best(0.0) is None


def test_best_is_none_when_every_node_is_drained() -> None:
    text = "a.foo.bar\nb.foo.bar drain\nc.foo.bar\n"
    node = new_node("a.foo.bar", text, addresses=EQUAL_ADDRESSES)
    node.drained = True  # dshd --drain on this node
    node.tick(SAMPLE, now=0.0, wall_ms=EPOCH_MS)
    node.receive(report("b.foo.bar"), "10.0.0.2", 0.0)  # drained in the cluster file
    node.receive(report("c.foo.bar", drained=True), "10.0.0.3", 0.0)  # drained itself
    assert [r.state for r in node.status_rows(0.0)] == ["drained"] * 3
    assert node.best(0.0) is None


def test_best_never_returns_a_drained_node() -> None:
    node = best_node("a.foo.bar\nb.foo.bar drain\nc.foo.bar\nd.foo.bar\n")
    node.receive(report("c.foo.bar", seq=2, drained=True), "10.0.0.3", 0.0)
    picks = Counter(node.best(0.0) for _ in range(30))
    assert set(picks) == {"a.foo.bar", "d.foo.bar"}


def test_best_skips_suspect_and_down_nodes() -> None:
    node = best_node()
    late = SUSPECT_AFTER + 0.1
    tick_until(node, late)  # a keeps reporting, b, c do not
    assert [r.state for r in node.status_rows(late)] == ["up", "suspect", "suspect"]
    assert {node.best(late) for _ in range(10)} == {"a.foo.bar"}
    later = late + suspicion_timeout(3, 0, INTERVAL)
    node.poll(later, EPOCH_MS)
    assert [r.state for r in node.status_rows(later)] == ["up", "down", "down"]
    assert {node.best(later) for _ in range(10)} == {"a.foo.bar"}


def test_burst_spreads_over_equal_nodes_because_of_extraload() -> None:
    node = best_node(extraload=1.0)
    picks = Counter(node.best(1.0) for _ in range(20))
    assert set(picks) == {"a.foo.bar", "b.foo.bar", "c.foo.bar"}
    assert min(picks.values()) >= 5
    # always the least loaded, each pick adding 1: never more than 1 apart
    assert max(picks.values()) - min(picks.values()) <= 1
    extras = {r.name: r.extra for r in node.status_rows(1.0)}
    assert extras == {name: float(n) for name, n in picks.items()}


def test_without_extraload_the_rng_picks_among_ties() -> None:
    node = best_node(extraload=0.0)
    picks = Counter(node.best(1.0) for _ in range(30))
    # always the same node would be the bug; each misses 30 draws with p = (2/3)**30
    assert set(picks) == {"a.foo.bar", "b.foo.bar", "c.foo.bar"}
    assert all(r.extra == 0.0 for r in node.status_rows(1.0))


def test_slower_node_is_chosen_less() -> None:
    text = "a.foo.bar\nb.foo.bar\nc.foo.bar 2.0\n"
    node = best_node(text, extraload=1.0)
    picks = Counter(node.best(1.0) for _ in range(30))
    assert picks["c.foo.bar"] < picks["a.foo.bar"]
    assert picks["c.foo.bar"] < picks["b.foo.bar"]
    # idle and without extra load, a node twice as slow always scores higher
    idle = best_node(text, extraload=0.0)
    assert "c.foo.bar" not in {idle.best(1.0) for _ in range(30)}


def test_busier_node_is_chosen_less() -> None:
    node = best_node(extraload=0.0)
    node.receive(report("b.foo.bar", seq=2, load=3.0), "10.0.0.2", 1.0)
    assert "b.foo.bar" not in {node.best(1.0) for _ in range(30)}


def test_best_answers_even_when_scores_are_not_finite() -> None:
    # A score function someone adds may return inf or nan; best() must still
    # name a candidate rather than fail in the path that answers the port.
    for value in (math.inf, math.nan):
        node = new_node("a.foo.bar", "a.foo.bar\nb.foo.bar\n")

        def score(_view: NodeView, value: float = value) -> float:
            return value

        node.score_fn = score
        node.tick(Sample(ncpu=4, load=8.0, load1=8.0, mem_avail=GIB, mem_total=GIB), 0.0, EPOCH_MS)
        assert node.best(0.0) == "a.foo.bar"


# -- status_rows() ----------------------------------------------------------------------


def test_status_rows_states() -> None:
    text = "a.foo.bar\nb.foo.bar drain\nc.foo.bar\nd.foo.bar\ne.foo.bar 2.0 3.0\n"
    node = best_node(text)  # heard from everyone at 0.0
    node.receive(report("c.foo.bar", seq=2, drained=True), "10.0.0.3", 0.0)
    tick_until(node, 4.0)
    node.receive(report("b.foo.bar", seq=2), "10.0.0.2", 4.0)
    node.receive(report("c.foo.bar", seq=3, drained=True), "10.0.0.3", 4.0)
    node.receive(report("e.foo.bar", seq=2, load=1.5), "10.0.0.5", 4.0)
    # d has been silent since 0.0: a suspects it at 4.0, and it is down after the timeout.
    later = 4.0 + suspicion_timeout(5, 0, INTERVAL) + 0.01
    node.poll(later, EPOCH_MS)
    node.best(later)  # the one extra goes to a: b, c drained, d down, e slower, busier
    rows = {r.name: r for r in node.status_rows(later)}
    assert {n: r.state for n, r in rows.items()} == {
        "a.foo.bar": "up",
        "b.foo.bar": "drained",
        "c.foo.bar": "drained",
        "d.foo.bar": "down",
        "e.foo.bar": "up",
    }
    assert [n for n, r in rows.items() if r.is_self] == ["a.foo.bar"]
    d, e = rows["d.foo.bar"], rows["e.foo.bar"]
    assert d.score is None  # down: no score
    assert d.age == pytest.approx(later)
    assert d.load == 0.0 and d.ncpu == 4  # but its last report is still shown
    assert (e.load, e.loadscale, e.memscale) == (1.5, 2.0, 3.0)
    assert e.age == pytest.approx(later - 4.0)
    assert e.score is not None and rows["a.foo.bar"].score is not None
    assert e.score > rows["a.foo.bar"].score
    assert rows["a.foo.bar"].extra == 1.0


def test_status_rows_of_a_never_heard_node() -> None:
    node = new_node("a.foo.bar", EQUAL, addresses=EQUAL_ADDRESSES)
    node.tick(SAMPLE, now=0.0, wall_ms=EPOCH_MS)
    row = {r.name: r for r in node.status_rows(0.0)}["b.foo.bar"]
    assert (row.state, row.load, row.ncpu, row.mem_avail, row.score, row.age, row.load1) == (
        "down",
        None,
        None,
        None,
        None,
        None,
        None,
    )


# -- a rolling upgrade: each peer hears the version it speaks ---------------------

USAGE = Usage(0.5, 0.25, 0.25, 0.0, 1e6, 2e6, 3e6, 4e6, GIB, 2 * GIB)


def sample_with_usage() -> Sample:
    return Sample(ncpu=2, load=0.5, load1=0.25, mem_avail=GIB, mem_total=2 * GIB, usage=USAGE)


def sent_versions(node: GossipNode, now: float) -> dict[str, int]:
    sent = node.tick(sample_with_usage(), now, EPOCH_MS)
    return {address: decode(data).version for data, address in sent}


def test_each_peer_is_sent_the_version_it_last_sent() -> None:
    a, b, c = "127.0.0.1", "127.0.0.2", "127.0.0.3"
    node = make_node(f"{a}\n{b}\n{c}\n")
    assert sent_versions(node, 1.0) == {b: VERSION, c: VERSION}  # not heard yet: the newest
    old = report(b, seq=1)  # a state without usage encodes as version 1
    assert decode(old).version == 1
    assert node.receive(old, b, 1.5) == ACCEPTED
    # Its first ANNOUNCE_TICKS ticks go out in the newest version to everyone.
    for k in range(1, ANNOUNCE_TICKS):
        assert sent_versions(node, 1.0 + k * 0.1) == {b: VERSION, c: VERSION}
    assert sent_versions(node, 2.0) == {b: 1, c: VERSION}  # b runs a release before version 2
    rows = {r.name: r for r in node.status_rows(2.0)}
    assert rows[b].state == "up" and rows[b].usage is None
    upgraded = report(b, seq=1, incarnation=EPOCH_MS + 1, usage=USAGE)  # b restarted, upgraded
    assert node.receive(upgraded, b, 2.5) == ACCEPTED
    assert sent_versions(node, 3.0) == {b: VERSION, c: VERSION}
    assert {r.name: r for r in node.status_rows(3.0)}[b].usage == USAGE


def test_a_version_1_receiver_accepts_what_it_is_sent() -> None:
    # What a daemon of the previous release decodes: exactly the version-1 layout.
    a, b = "127.0.0.1", "127.0.0.2"
    node = make_node(f"{a}\n{b}\n")
    node.receive(report(b), b, 0.5)
    for k in range(ANNOUNCE_TICKS):
        node.tick(sample_with_usage(), 0.6 + k * 0.1, EPOCH_MS)
    ((data, _),) = node.tick(sample_with_usage(), 1.0, EPOCH_MS)
    assert data[2] == 1 and len(data) == 52 + len(a)


def test_two_upgraded_daemons_never_take_each_other_for_the_old_release() -> None:
    # b was of version 1 when a last heard it. a is upgraded in place and hears
    # b's version-1 datagrams (b has not heard a's restart yet) before its first
    # tick; b then hears a's. Each must end up sending the other the newest.
    a, b = "127.0.0.1", "127.0.0.2"
    node_a, node_b = make_node(f"{a}\n{b}\n"), make_node(f"{a}\n{b}\n", name=b)
    assert node_b.receive(report(a, seq=1), a, 0.1) == ACCEPTED  # a's old release
    for k in range(ANNOUNCE_TICKS):
        node_b.tick(sample_with_usage(), 0.2 + k * 0.1, EPOCH_MS)
    ((to_a, _),) = node_b.tick(sample_with_usage(), 0.6, EPOCH_MS)
    assert decode(to_a).version == 1
    upgraded = EPOCH_MS + 10_000
    node_a = make_node(f"{a}\n{b}\n", incarnation=upgraded)
    assert node_a.receive(to_a, b, 0.7) == ACCEPTED
    for t in (0.8, 1.0, 1.2, 1.4, 1.6, 1.8):
        for data, _ in node_a.tick(sample_with_usage(), t, EPOCH_MS):
            node_b.receive(data, a, t + 0.01)
        for data, _ in node_b.tick(sample_with_usage(), t + 0.05, EPOCH_MS):
            node_a.receive(data, b, t + 0.06)
    assert sent_versions(node_a, 2.0) == {b: VERSION}
    assert sent_versions(node_b, 2.0) == {a: VERSION}
    # And an older version from the same incarnation does not move it back.
    node_b.receive(encode_state(decode(report(a, seq=99, incarnation=upgraded, usage=USAGE)), 1),
                   a, 2.1)  # fmt: skip
    assert sent_versions(node_b, 2.2) == {a: VERSION}


def test_only_releases_before_news_are_sent_a_report_every_tick() -> None:
    # 40 members, above the threshold: a node sends to 2 monitors, 2 random
    # members, and every member of a release that judges by silence alone
    # (versions 1 and 2); a version-3 member has news and is sparse as we are.
    names = [f"127.0.1.{i}" for i in range(1, 41)]
    node = make_node("".join(f"{n}\n" for n in names), name=names[0])
    v2, v3 = names[20], names[30]
    for member, version in ((v2, 2), (v3, 3)):
        state = decode(report(member, usage=USAGE))
        assert node.receive(encode_state(state, version), member, 0.5) == ACCEPTED
    sent = [{a for _, a in node.tick(sample_with_usage(), 1.0 + k, EPOCH_MS)} for k in range(20)]
    assert all(v2 in s for s in sent)
    assert sum(v3 in s for s in sent) < 20


def test_brief_datagrams_keep_the_last_usage_and_go_to_version_5_only() -> None:
    # Between ticks a node leaves its usage out (version 5): the receiver keeps
    # the usage of the sender's last full report. A version-4 peer gets it all.
    a, b, c = "127.0.0.1", "127.0.0.2", "127.0.0.3"
    node = make_node(f"{a}\n{b}\n{c}\n")
    assert node.receive(report(b, usage=USAGE), b, 0.5) == ACCEPTED
    assert node.receive(encode_state(decode(report(c, usage=USAGE)), 4), c, 0.5) == ACCEPTED
    for k in range(ANNOUNCE_TICKS + 1):  # past the intervals in which all get the newest
        node.tick(sample_with_usage(), 0.6 + k * 0.1, EPOCH_MS)
    brief = report(b, seq=2, load=3.0, usage=USAGE, brief=True)
    assert decode(brief).brief and decode(brief).usage is None
    assert node.receive(brief, b, 1.2) == ACCEPTED
    row = {r.name: r for r in node.status_rows(1.2)}[b]
    assert (row.load, row.usage) == (3.0, USAGE)  # the new load, the last usage
    # Both probe it: the answers, at once (flush), are brief to b, full to c.
    assert node.receive(report(b, seq=3, usage=USAGE, probe=True), b, 1.3) == ACCEPTED
    probe4 = encode_state(decode(report(c, seq=2, usage=USAGE, probe=True)), 4)
    assert node.receive(probe4, c, 1.3) == ACCEPTED
    flushed = node.flush(1.3, EPOCH_MS)
    answers = {address: decode(data) for data, address in flushed}
    assert len(flushed) == 2 and set(answers) == {b, c}  # the probers, once each
    assert node.poll(1.4, EPOCH_MS) == [] and node.flush(1.4, EPOCH_MS) == []  # once
    assert answers[b].brief and answers[b].usage is None and answers[b].version == 5
    assert not answers[c].brief and answers[c].usage is not None and answers[c].version == 4
    ticked = {address: decode(data) for data, address in node.tick(sample_with_usage(), 2.5,
                                                                   EPOCH_MS)}  # fmt: skip
    assert not ticked[b].brief and ticked[b].usage is not None  # a tick carries it
