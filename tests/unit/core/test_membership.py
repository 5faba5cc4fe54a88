"""The membership protocol of core/gossip.py and core/membership.py, in virtual time.

Real GossipNodes on a small seeded network of their own (dsh.sim is the big
one): suspicion and its refutation through other members' news, a node
refuting a suspicion of itself, departures, the fan-out regime above the
threshold, discovery, forgetting, and partitions that heal.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable

import pytest

from dsh.core import membership as m
from dsh.core.addresses import AddressBook
from dsh.core.auth import Sealer
from dsh.core.cluster import parse_cluster
from dsh.core.gossip import ACCEPTED, BAD_AUTH, NOT_MEMBER, GossipNode, Sample
from dsh.core.roster import Roster, member_id
from dsh.core.score import GIB, score_load
from dsh.core.table import ALIVE, DOWN, SUSPECT, Peer
from dsh.core.wire import Kind, News, State, Usage, decode, encode_state

INTERVAL = 1.5
JITTER = 0.1
SUSPECT_AFTER = 2 * INTERVAL * (1 + JITTER)
EPOCH_MS = 1_700_000_000_000
IDLE = Usage(0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0)


def sample(load: float = 0.0) -> Sample:
    return Sample(ncpu=4, load=load, load1=load, mem_avail=8 * GIB, mem_total=16 * GIB,
                  usage=IDLE)  # fmt: skip


def names(n: int) -> list[str]:
    return [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(n)]


class Net:
    """Members named by their addresses, ticking and polling on jittered timers;
    ``drop(src, dst)`` says which datagrams are lost (``lose(src, dst, data)``
    too, for a test that looks inside)."""

    def __init__(self, n: int, seed: int = 1, **node_args: object) -> None:
        self.rng = random.Random(seed)
        self.members = names(n)
        text = "".join(f"{name}\n" for name in self.members)
        self.roster = Roster(parse_cluster(text))
        self.book = AddressBook()
        for name in self.members:
            self.book.put(name, (name,))
        self.node_args = node_args
        self.nodes: dict[str, GossipNode] = {}
        self.loads: dict[str, float] = {}
        self.events: list[tuple[float, int, str, str, bytes | None]] = []
        self.counter = itertools.count()
        self.now = 0.0
        self.drop: Callable[[str, str], bool] = lambda src, dst: False
        self.lose: Callable[[str, str, bytes], bool] = lambda src, dst, data: False
        self.sent = 0
        for name in self.members:
            self.start(name)

    def start(self, name: str, incarnation: int | None = None) -> GossipNode:
        node = GossipNode(
            [], name, score_load, interval=INTERVAL, suspect_after=SUSPECT_AFTER,
            extraload=1.0, extra_reports=2, extra_ttl=5.0,
            incarnation=EPOCH_MS + int(self.now * 1000) if incarnation is None else incarnation,
            rng=random.Random(self.rng.randrange(2**32)), roster=self.roster,
            addresses=self.book, **self.node_args,  # type: ignore[arg-type]
        )  # fmt: skip
        self.nodes[name] = node
        self._at(self.now + self.rng.uniform(0, INTERVAL), "tick", name)
        return node

    def stop(self, name: str) -> None:
        del self.nodes[name]  # its timers find it gone

    def _at(self, when: float, what: str, name: str, data: bytes | None = None) -> None:
        heapq.heappush(self.events, (when, next(self.counter), what, name, data))

    def _send(self, src: str, datagrams: list[tuple[bytes, str]]) -> None:
        for data, dst in datagrams:
            self.sent += 1
            if not self.drop(src, dst) and not self.lose(src, dst, data):
                self._at(self.now + self.rng.uniform(0.0005, 0.003), f"from {src}", dst, data)

    def run(self, until: float, each: Callable[[], None] | None = None, step: float = 0.25) -> None:
        next_look = self.now
        while self.events and self.events[0][0] <= until:
            when, _, what, name, data = heapq.heappop(self.events)
            while each is not None and next_look <= when:
                self.now = next_look
                each()
                next_look += step
            self.now = when
            node = self.nodes.get(name)
            if node is None:
                continue
            wall = EPOCH_MS + int(when * 1000)
            if what == "tick":
                self._send(name, node.tick(sample(self.loads.get(name, 0.0)), when, wall))
                self._at(when + INTERVAL * self.rng.uniform(1 - JITTER, 1 + JITTER), "tick", name)
                self._at(when + INTERVAL / 4, "poll", name)
            elif what == "poll":
                self._send(name, node.poll(when, wall))
                if node._last_tick is not None and when + INTERVAL / 4 < node._last_tick + INTERVAL:
                    self._at(when + INTERVAL / 4, "poll", name)
            else:
                assert data is not None
                node.receive(data, what[5:], when, wall)
                self._send(name, node.flush(when, wall))
        self.now = until

    def states(self, observer: str) -> dict[str, str]:
        node = self.nodes[observer]
        return {name: node.member_state(name, self.now) for name in self.members}


def edges(net: Net) -> Callable[[], None]:
    """A look at every observer's view, counting the times a live member that
    was up turns suspect or down there (``counts``), and the looks (``looks``).

    It compares the records' statuses with the last look's, not member_state()
    of every pair: that had been two thirds of these tests' time."""
    counts: Counter[str] = Counter()
    last: dict[str, dict[str, str]] = {}

    def look() -> None:
        live = net.nodes
        for observer, node in live.items():
            now = {name: peer.status for name, peer in node.table.peers.items()}
            before = last.get(observer, {})
            if now != before:
                for name, status in now.items():
                    was = before.get(name)
                    if (was == ALIVE and status in (SUSPECT, DOWN) and name in live
                            and name != observer):  # fmt: skip
                        counts[status] += 1
                last[observer] = now
            counts["looks"] += len(live) - 1

    look.counts = counts  # type: ignore[attr-defined]
    return look


def test_an_observer_that_never_hears_a_member_learns_from_the_others_that_it_lives() -> None:
    net = Net(4, seed=2)
    a, b = net.members[:2]
    net.drop = lambda src, dst: (src, dst) == (b, a)  # a never hears b itself
    net.run(10.0)
    look = edges(net)
    net.run(130.0, look)
    assert net.nodes[a].table.get(b).state is None  # type: ignore[union-attr]
    assert net.states(a)[b] == "up"
    assert look.counts["down"] == 0  # type: ignore[attr-defined]
    assert net.nodes[a].events["declared_down"] == net.nodes[a].events["heard_down"] == 0
    load = net.nodes[a].table.get(b).relayed  # type: ignore[union-attr]
    assert load is not None and load[0] == 4  # its load came with the news


def test_a_suspected_node_refutes_with_a_higher_incarnation() -> None:
    net = Net(3, seed=3)
    a, b, c = net.members
    net.run(10.0)
    before = net.nodes[b].incarnation
    # a hears neither b nor c (which would say that b lives): a suspects b alone.
    net.drop = lambda src, dst: dst == a
    while net.nodes[a].events["suspected"] == 0:
        net.run(net.now + 0.05)
    assert net.now - 10.0 < SUSPECT_AFTER + INTERVAL
    net.drop = lambda src, dst: False
    net.run(net.now + INTERVAL * (1 + JITTER))
    # b heard the suspicion and answered it with a higher incarnation, at once
    assert net.nodes[b].incarnation == before + 1
    assert net.nodes[b].events["refuted_self"] >= 1
    assert all(net.states(o)[b] == "up" for o in (a, c))
    assert net.nodes[a].events["refuted"] >= 1 and net.nodes[a].events["declared_down"] == 0
    # c knew better: it never took the suspicion
    assert net.nodes[c].events["suspected"] == net.nodes[c].events["heard_suspect"] == 0


def test_silence_towards_everyone_is_suspect_then_down_then_up_on_return() -> None:
    net = Net(6, seed=4)
    gone = net.members[0]
    others = net.members[1:]
    net.run(10.0)
    net.drop = lambda src, dst: src == gone
    seen: dict[str, list[str]] = {o: ["up"] for o in others}

    def look() -> None:
        for o in others:
            state = net.states(o)[gone]
            if state != seen[o][-1]:
                seen[o].append(state)

    net.run(10.0 + SUSPECT_AFTER + m.suspicion_timeout(6, 0, INTERVAL) + 2 * INTERVAL, look, 0.05)
    assert all(seen[o] == ["up", "suspect", "down"] for o in others), seen
    net.drop = lambda src, dst: False
    net.run(net.now + 2 * INTERVAL)
    assert {net.states(o)[gone] for o in others} == {"up"}
    assert all(net.nodes[o].events["rejoined"] == 1 for o in others)


def test_a_leaving_node_is_left_at_once_and_stays_left() -> None:
    net = Net(5, seed=5)
    net.run(10.0)
    gone = net.members[2]
    datagrams = net.nodes[gone].leave(net.now, EPOCH_MS + 10_000)
    assert {decode(d).leaving for d, _ in datagrams} == {True}
    assert len(datagrams) == 2 * 4  # twice to every other member
    net._send(gone, datagrams)
    net.stop(gone)
    net.run(10.01)
    assert {net.states(o)[gone] for o in net.nodes} == {"left"}
    net.run(60.0)  # never suspected or declared down afterwards
    assert {net.states(o)[gone] for o in net.nodes} == {"left"}
    assert all(net.nodes[o].events["declared_down"] == 0 for o in net.nodes)
    assert all(net.nodes[o].events["heard_down"] == 0 for o in net.nodes)
    net.start(gone)  # it comes back: a higher incarnation
    net.run(60.0 + 2 * INTERVAL)
    assert {net.states(o)[gone] for o in net.nodes if o != gone} == {"up"}


def test_a_partition_that_heals() -> None:
    net = Net(6, seed=6)
    left, right = set(net.members[:3]), set(net.members[3:])
    net.run(10.0)
    net.drop = lambda src, dst: (src in left) != (dst in left)
    net.run(30.0)
    for o in left:
        assert {net.states(o)[x] for x in right} == {"down"}
        assert {net.states(o)[x] for x in left} == {"up"}
    net.drop = lambda src, dst: False
    net.run(30.0 + 3 * INTERVAL)
    for o in net.members:
        assert set(net.states(o).values()) == {"up"}, o


def test_thirty_percent_loss_in_a_full_mesh_of_eight_is_never_down() -> None:
    net = Net(8, seed=7)
    loss = random.Random(8)
    net.drop = lambda src, dst: loss.random() < 0.3
    net.run(10.0)
    look = edges(net)
    net.run(310.0, look)
    counts = look.counts  # type: ignore[attr-defined]
    print(f"8 nodes, 30 % loss, 5 min: {dict(counts)}")
    assert counts["down"] == 0
    assert counts["suspect"] <= 0.001 * counts["looks"]


def test_above_the_threshold_each_node_sends_to_a_constant_few() -> None:
    net = Net(100, seed=9)
    net.run(30.0)
    node = net.nodes[net.members[0]]
    assert not node.full_mesh()
    sent = node.tick(sample(), net.now, EPOCH_MS + 30_000)
    # its 2 monitors, 2 random members, and whoever it suspects or must answer
    assert m.MONITORS + m.FANOUT <= len(sent) <= m.MONITORS + m.FANOUT + 2
    assert all(len(d) <= 108 + 12 + 1 + 31 * m.NEWS_PER_DATAGRAM for d, _ in sent)
    # The full filler (members heard lately, within S) to the random members
    # only; the monitors, who hear this node every interval, get the first
    # LEAN_FILL of it.
    news = {dst: decode(d).news for d, dst in sent}
    monitors = node.table.walk(node.key, m.MONITORS, 1)
    spreaders = [dst for dst in news if dst not in monitors]
    assert len(monitors) == m.MONITORS and len(spreaders) == m.FANOUT  # nobody to answer
    assert all(news[dst] == news[spreaders[0]] for dst in spreaders)
    assert m.LEAN_FILL < len(news[spreaders[0]]) <= m.NEWS_PER_DATAGRAM
    assert all(news[dst] == news[spreaders[0]][: m.LEAN_FILL] for dst in monitors)


def test_above_the_threshold_the_monitors_get_the_usage_in_every_fourth_tick() -> None:
    net = Net(100, seed=9)
    net.run(30.0)
    node = net.nodes[net.members[0]]
    monitors = set(node.table.walk(node.key, m.MONITORS, 1))
    with_usage: Counter[str] = Counter()
    tick = node.tick

    def counted(s: Sample, now: float, wall_ms: int) -> list[tuple[bytes, str]]:
        out = tick(s, now, wall_ms)
        with_usage["ticks"] += 1
        for data, dst in out:
            state = decode(data)
            assert state.brief == (state.usage is None)
            to = "monitor" if dst in monitors else "random"
            with_usage[to] += state.usage is not None
            with_usage[to + "s"] += 1
            if to == "monitor":  # from its first tick on: the 1st, 5th, 9th...
                assert (state.usage is not None) == ((node._ticks - 1) % m.USAGE_EVERY == 0)
        return out

    node.tick = counted  # type: ignore[method-assign,assignment]
    ticks = 3 * m.USAGE_EVERY
    while with_usage["ticks"] < ticks:
        net.run(net.now + INTERVAL / 4)
    assert with_usage["monitors"] == ticks * m.MONITORS
    assert with_usage["monitor"] == ticks // m.USAGE_EVERY * m.MONITORS
    # the random members, through whom alone it goes further, get it every time
    assert with_usage["random"] == with_usage["randoms"] == ticks * m.FANOUT
    # and the monitors keep the usage of the last full report
    for monitor in monitors:
        held = net.nodes[monitor].table.get(node.name)
        assert held is not None and held.state is not None and held.state.usage == IDLE
    # With no filler to tell them apart (the same news for all), the random
    # members still get the usage in a tick the monitors get none.
    while node._ticks % m.USAGE_EVERY == 0:  # the next tick is one without
        net.run(net.now + INTERVAL / 4)
    node._recent.clear()
    now = net.now + 0.001
    sent = tick(sample(), now, EPOCH_MS + int(now * 1000))
    usage = {dst: decode(d).usage is not None for d, dst in sent}
    assert {usage[k] for k in monitors} == {False}
    assert {v for k, v in usage.items() if k not in monitors} == {True}


def test_above_the_threshold_a_crash_is_down_everywhere_and_nothing_else_is() -> None:
    net = Net(100, seed=10)
    net.run(40.0)  # long enough for everyone to have heard of everyone
    gone = net.members[17]
    net.stop(gone)
    look = edges(net)
    net.run(70.0, look)
    assert look.counts["down"] == 0  # type: ignore[attr-defined]
    assert {net.states(o)[gone] for o in net.nodes} == {"down"}
    per_node = net.sent / len(net.members) / 70.0
    assert per_node < 6 / INTERVAL  # monitors + fan-out + the news of one crash


def test_above_the_threshold_thirty_percent_loss_never_downs_a_live_member() -> None:
    # 100 members, sparse regime, 30 % of every datagram lost, one crash: the
    # crashed member is down everywhere, no live one anywhere (before the
    # suspectors alone judged, nodes that lost the refutation declared it).
    net = Net(100, seed=16)
    loss = random.Random(17)
    net.drop = lambda src, dst: loss.random() < 0.3
    net.run(30.0)
    gone = net.members[41]
    look = edges(net)
    net.run(60.0, look)
    net.stop(gone)
    net.run(150.0, look)
    counts = look.counts  # type: ignore[attr-defined]
    print(f"100 nodes, 30 % loss, 2 min: {dict(counts)}")
    assert counts["down"] == 0
    assert {net.states(o)[gone] for o in net.nodes} == {"down"}


def test_above_the_threshold_one_monitors_suspicion_stays_between_the_monitors() -> None:
    # One monitor stops hearing a member (the other still does): it suspects it,
    # but the cluster does not hear of it and the member is never down.
    net = Net(100, seed=18)
    net.run(30.0)
    member = net.members[7]
    node = net.nodes[member]
    first, second = node.table.walk(node.key, m.MONITORS, 1)
    net.drop = lambda src, dst: src == member and dst == first
    seen: set[str] = set()
    was_up: set[str] = set()  # one that never heard of it shows it down (NEW), and is no edge

    def look() -> None:
        for o in net.nodes:
            if o == member:
                continue
            if net.states(o)[member] == "up":
                was_up.add(o)
            elif o in was_up:
                seen.add(o)

    net.run(60.0, look, 0.1)
    assert len(was_up) > 90
    assert net.nodes[first].events["suspected"] >= 1  # it did suspect, alone
    assert seen <= {first, second}, seen  # and no one else ever turned it from up
    assert all(net.nodes[o].events["declared_down"] == 0 for o in (first, second))
    assert net.states(first)[member] in ("up", "suspect")


def test_a_monitors_suspicion_reaches_the_other_one_though_the_first_datagram_is_lost() -> None:
    # Both monitors of a crashed member suspect it; the first datagram that
    # carries each one's suspicion to the other is lost. Told once, each
    # stayed a lone suspector and waited 6 t_min; told at every poll until
    # confirmed, both declare it down on the confirmed timeout.
    net = Net(100, seed=19)
    net.run(30.0)
    member = net.members[23]
    monitors = net.nodes[member].table.walk(net.nodes[member].key, m.MONITORS, 1)
    target = member_id(member)
    lost: set[tuple[str, str]] = set()

    def lose(src: str, dst: str, data: bytes) -> bool:
        if src not in monitors or dst not in monitors or (src, dst) in lost:
            return False
        if any(n.member == target and n.kind == Kind.SUSPECT for n in decode(data).news):
            lost.add((src, dst))
            return True
        return False

    confirmers: list[int] = []
    for name in monitors:
        node = net.nodes[name]
        gone = node._gone

        def counted(peer: Peer, status: str, now: float, mine: bool = False,
                    gone: Callable[..., None] = gone) -> None:  # fmt: skip
            if mine and peer.suspicion is not None:
                confirmers.append(len(peer.suspicion.confirmers))
            gone(peer, status, now, mine)

        node._gone = counted  # type: ignore[method-assign]
    net.lose = lose
    net.stop(member)
    net.run(50.0)
    assert lost == {(monitors[0], monitors[1]), (monitors[1], monitors[0])}
    assert confirmers and all(c == m.MONITORS for c in confirmers), confirmers
    assert {net.states(o)[member] for o in net.nodes} == {"down"}


def test_a_member_whose_datagrams_to_its_monitors_are_lost_is_never_down() -> None:
    # Every datagram from the member to its two monitors is lost; it still
    # hears them, and reaches everyone else. The monitors suspect it and tell
    # it so; it refutes at a new incarnation, and the nodes that hear that pass
    # it to the monitors. Before, both monitors confirmed and declared it down.
    net = Net(100, seed=23)
    net.run(40.0)
    member = net.members[44]
    monitors = net.nodes[member].table.walk(net.nodes[member].key, m.MONITORS, 1)
    net.drop = lambda src, dst: src == member and dst in monitors
    look = edges(net)
    net.run(100.0, look)
    assert sum(net.nodes[o].events["suspected"] for o in monitors) >= 1
    assert net.nodes[member].events["refuted_self"] >= 1
    assert look.counts["down"] == 0  # type: ignore[attr-defined]
    assert all(net.nodes[o].events["declared_down"] == 0 for o in net.nodes)


@pytest.mark.parametrize("first", ["flush", "poll"])
def test_a_down_heard_from_others_goes_at_once_to_a_few_members_and_only_once(first: str) -> None:
    # The shells flush() after every batch of datagrams in; a poll flushes what
    # no flush did (a shell that does not flush loses a quarter interval only).
    net = Net(100, seed=20)
    net.run(30.0)
    gone = net.members[31]
    node = net.nodes[net.members[60]]  # far from it on the ring: no monitor of it
    assert gone not in node.table.walk(node.key, m.MONITORS, -1)
    peer, sender = node.table.get(gone), node.table.get(net.members[61])
    assert peer is not None and sender is not None
    now = net.now
    wall = EPOCH_MS + int(now * 1000)
    assert node.flush(now, wall) == []  # nothing hot before
    node._take_news(News(peer.id, peer.order[0], peer.order[1], Kind.DOWN, 0.0), sender, now)
    assert node.member_state(gone, now) == "down"
    sent = getattr(node, first)(now + 0.01, wall + 10)
    assert len(sent) == m.FORWARD
    for data, _ in sent:
        news = decode(data).news
        assert [n.kind for n in news if n.member == peer.id] == [Kind.DOWN]
        # these datagrams carry changes, not the load of members heard lately
        assert all(n.kind != Kind.ALIVE for n in news)
    assert node.flush(now + 0.015, wall + 15) == []
    assert len(node.poll(now + 0.02, wall + 20)) < m.FORWARD


def test_a_down_this_node_declares_goes_at_once_to_a_few_members_too() -> None:
    # Its own judgment (a suspicion timed out): not only FANOUT random members
    # at each urgent poll, but FORWARD at the next flush, as a heard down.
    net = Net(100, seed=20)
    net.run(30.0)
    gone = net.members[31]
    ring = net.nodes[gone].table
    node = net.nodes[ring.walk(ring.me.spec.key, m.MONITORS, 1)[0]]  # one of its monitors
    assert gone in node.table.walk(node.key, m.MONITORS, -1)
    peer = node.table.get(gone)
    assert peer is not None
    now = net.now
    wall = EPOCH_MS + int(now * 1000)
    assert node.flush(now, wall) == []
    node._gone(peer, DOWN, now, mine=True)
    assert node.events["declared_down"] == 1
    sent = node.flush(now + 0.01, wall + 10)
    assert len(sent) == m.FORWARD
    for data, _ in sent:
        news = decode(data).news
        assert [n.kind for n in news if n.member == peer.id] == [Kind.DOWN]
    assert node.flush(now + 0.015, wall + 15) == []  # once


def loaded(seed: int) -> tuple[Net, GossipNode, list[Peer]]:
    """100 members at random loads after 40 s: the first, and whom it may choose."""
    net = Net(100, seed=seed)
    rng = random.Random(seed + 1)
    for name in net.members:
        net.loads[name] = rng.uniform(0, 8)
    net.run(40.0)
    observer = net.nodes[net.members[0]]
    return net, observer, observer.candidates(net.now)


def test_power_of_choices_picks_a_lightly_loaded_fresh_node() -> None:
    net, observer, candidates = loaded(11)
    assert len(candidates) < 100  # only the fresh ones
    ranks = sorted(net.loads.values())
    picks = [observer.best(net.now) for _ in range(20)]
    assert all(p is not None for p in picks)
    rank = [ranks.index(net.loads[p]) / 100 for p in picks if p]
    assert sorted(rank)[10] <= 0.25  # the median pick is in the best quarter


def test_above_the_threshold_either_of_the_best_two_is_chosen() -> None:
    # Loads up to S old, and other daemons send jobs to the same best node: one
    # of the best two at random, never a third (the extra-load rule cleared
    # after each pick, so that it is not what spreads them).
    net, observer, candidates = loaded(21)
    best_two = {p.spec.name for p in sorted(candidates, key=observer._score)[:2]}
    picks = []
    for _ in range(40):
        picks.append(observer.best(net.now, choices=len(candidates)))
        for peer in candidates:
            peer.extras.clear()
    assert set(picks) == best_two, (picks, best_two)


def test_discovery_adds_a_member_from_an_unknown_address_only_when_on() -> None:
    def report(name: str, seq: int = 1) -> bytes:
        return encode_state(State(name, EPOCH_MS, seq, EPOCH_MS, 4, 0.0, 0.0, GIB, GIB,
                                  usage=IDLE))  # fmt: skip

    base: dict[str, object] = dict(interval=INTERVAL, suspect_after=SUSPECT_AFTER, extraload=1.0,
                                   extra_reports=2, extra_ttl=5.0, incarnation=1,
                                   rng=random.Random(0))  # fmt: skip
    closed = GossipNode(parse_cluster("a\n"), "a", score_load, **base)  # type: ignore[arg-type]
    assert closed.receive(report("newcomer"), "10.9.0.2", 1.0) == NOT_MEMBER
    open_ = GossipNode([], "a", score_load, discovery=True, **base)  # type: ignore[arg-type]
    assert open_.receive(report("newcomer"), "10.9.0.2", 1.0) == ACCEPTED
    assert open_.receive(report("newcomer", 2), "10.9.0.2", 2.0) == ACCEPTED
    assert open_.receive(report("newcomer", 3), "10.9.0.3", 2.0) == "name_mismatch"
    rows = {r.name: r for r in open_.status_rows(2.0)}
    assert rows["newcomer"].state == "up" and not rows["newcomer"].listed
    assert rows["newcomer"].loadscale == 1.0 and not rows["a"].listed
    assert open_.events["found"] == 1
    sealed = GossipNode([], "a", score_load, discovery=True, sealer=Sealer([bytes(32)]),
                        **base)  # type: ignore[arg-type]  # fmt: skip
    assert sealed.receive(report("intruder"), "10.9.0.4", 1.0) == BAD_AUTH
    assert "intruder" not in sealed.table.found


def test_a_found_member_gone_for_an_hour_is_forgotten_a_listed_one_is_not() -> None:
    base: dict[str, object] = dict(interval=INTERVAL, suspect_after=SUSPECT_AFTER, extraload=1.0,
                                   extra_reports=2, extra_ttl=5.0, incarnation=1,
                                   rng=random.Random(0), discovery=True)  # fmt: skip
    node = GossipNode(parse_cluster("a\nb\n"), "a", score_load, **base)  # type: ignore[arg-type]
    node.set_addresses("b", ("10.9.0.2",))
    for name, address in (("b", "10.9.0.2"), ("c", "10.9.0.3")):
        state = State(name, EPOCH_MS, 1, EPOCH_MS, 4, 0.0, 0.0, GIB, GIB, usage=IDLE)
        assert node.receive(encode_state(state), address, 0.0) == ACCEPTED
    t = 0.0
    while t < m.FORGET_AFTER + 900:
        t += INTERVAL * 40  # few ticks: the health rule would stretch the timeouts, so
        node.health = 0  # keep it out of this test of forgetting
        node.tick(sample(), t, EPOCH_MS)
        node.poll(t + 300, EPOCH_MS)
    assert "c" not in {r.name for r in node.status_rows(t)}
    assert node.events["forgotten"] == 1
    assert {r.name: r.state for r in node.status_rows(t)} == {"a": "up", "b": "down"}


def settled(seed: int) -> tuple[Net, GossipNode, Peer]:
    """Three members after 10 s: the first one, and its record of the second."""
    net = Net(3, seed=seed)
    net.run(10.0)
    node = net.nodes[net.members[0]]
    peer = node.table.get(net.members[1])
    assert peer is not None
    return net, node, peer


def test_news_of_unknown_members_and_stale_news_change_nothing() -> None:
    net, node, peer = settled(13)
    b = peer.spec.name
    order = peer.order
    stale = News(member_id(b), order[0], order[1] - 5, Kind.DOWN, 0.0)
    unknown = News(member_id("10.77.0.1"), 1, 1, Kind.DOWN, 0.0)
    sender = node.table.get(net.members[2])
    assert sender is not None
    node._take_news(stale, sender, net.now)
    node._take_news(unknown, sender, net.now)
    assert node.member_state(b, net.now) == "up"
    assert node._broadcasts.pending.get(b) is not None  # it will say b lives,
    assert sender.spec.key in node._answer  # first to the one that spread the old news


def test_only_a_suspector_declares_down_on_the_short_timer() -> None:
    # Above the threshold, most nodes only hear of a suspicion. They wait the
    # backstop (the refutation has time to reach them), and ask the member
    # itself halfway; a monitor that confirms late still waits t_min of its own.
    net = Net(3, seed=15)
    net.run(10.0)
    node = net.nodes[net.members[0]]
    peer = node.table.get(net.members[1])
    other = node.table.get(net.members[2])
    assert peer is not None and other is not None
    now, n = net.now, node.table.live_count()
    assert node.health == 0
    node._suspect(peer, peer.order, other.id, now)
    s = peer.suspicion
    assert s is not None and s.mine_since is None
    assert s.deadline == pytest.approx(now + m.backstop(n, INTERVAL, SUSPECT_AFTER))
    node._judge(now + 0.1)
    assert peer.spec.key not in node._probe
    node._judge((now + s.deadline) / 2 + 0.01)
    assert peer.spec.key in node._probe  # asks it before taking it as down
    later = now + 3.0
    node._suspect(peer, peer.order, node.table.me.id, later)  # our own silence, late
    assert s.mine_since == later
    assert s.deadline >= later + m.t_min(n, INTERVAL)
    assert s.deadline < now + m.backstop(n, INTERVAL, SUSPECT_AFTER)


def test_a_late_node_stretches_its_own_timeouts() -> None:
    node = GossipNode(parse_cluster("a\nb\n"), "a", score_load, interval=INTERVAL,
                      suspect_after=SUSPECT_AFTER, extraload=1.0, extra_reports=2,
                      extra_ttl=5.0, incarnation=1, rng=random.Random(0))  # fmt: skip
    node.tick(sample(), 0.0, EPOCH_MS)
    node.tick(sample(), 10.0, EPOCH_MS)  # starved for seconds
    assert node.health == 1
    for i in range(1, 4):
        node.tick(sample(), 10.0 + i * INTERVAL, EPOCH_MS)
    assert node.health == 0


@pytest.mark.parametrize(("members", "confirmations"), [(8, 0), (8, 2), (1000, 1), (10_000, 5)])
def test_suspicion_timeout_follows_lifeguard(members: int, confirmations: int) -> None:
    low = m.t_min(members, INTERVAL)
    timeout = m.suspicion_timeout(members, confirmations, INTERVAL)
    assert low <= timeout <= m.MAX_TIMEOUT_FACTOR * low
    if confirmations == 0:
        assert timeout == pytest.approx(m.MAX_TIMEOUT_FACTOR * low)
    if confirmations >= m.EXPECTED_CONFIRMATIONS:
        assert timeout == pytest.approx(low)
    assert m.t_min(10 * members, INTERVAL) > low  # grows with log N


def test_relayed_news_never_makes_a_member_fresher_than_its_last_report() -> None:
    # Two members relaying a dead member's last report to each other must not keep
    # it alive: the age rounds up on the wire, and the same order again is no news.
    net, node, peer = settled(14)
    c = peer.spec.name
    assert peer.fresh_at is not None
    before = peer.fresh_at
    again = News(member_id(c), peer.order[0], peer.order[1], Kind.ALIVE, 0.0, 4, 0.0, GIB)
    node._take_news(again, node.table.me, net.now + 1.0)
    assert peer.fresh_at == before
    news = (News(bytes(8), 1, 1, Kind.ALIVE, 0.01, 1),)
    wire = decode(encode_state(State("x", 1, 1, 1, 1, 0.0, 0.0, 1, 1, usage=IDLE, news=news)))
    assert wire.news[0].age == 0.1  # 10 ms goes out as 0.1 s, not 0


def test_a_found_member_that_was_down_may_come_back_at_another_address() -> None:
    node = GossipNode([], "a", score_load, interval=INTERVAL, suspect_after=SUSPECT_AFTER,
                      extraload=1.0, extra_reports=2, extra_ttl=5.0, incarnation=1,
                      rng=random.Random(0), discovery=True)  # fmt: skip
    first = State("b", EPOCH_MS, 1, EPOCH_MS, 4, 0.0, 0.0, GIB, GIB, usage=IDLE)
    assert node.receive(encode_state(first), "10.9.0.2", 0.0) == ACCEPTED
    again = State("b", EPOCH_MS + 9, 1, EPOCH_MS, 4, 0.0, 0.0, GIB, GIB, usage=IDLE)
    assert node.receive(encode_state(again), "10.9.0.9", 1.0) == "name_mismatch"  # it is up
    peer = node.table.get("b")
    assert peer is not None
    node.table.set_status(peer, "down", 2.0)
    assert node.receive(encode_state(again), "10.9.0.9", 3.0) == ACCEPTED
    assert node.addresses("b") == ("10.9.0.9",) and node.member_state("b", 3.0) == "up"
