"""Best-node questions (core/bids.py): ASK, BID and CLAIM between real GossipNodes.

Four members with the full-mesh threshold at 2, so every node is above it
(as at 1,000 members) and answers by asking; datagrams are handed from node
to node by hand, so each test says which arrive."""

from __future__ import annotations

import random

import pytest

from dsh.core.auth import Sealer
from dsh.core.bids import CLAIM_COPIES, Question
from dsh.core.cluster import NodeSpec, parse_cluster
from dsh.core.gossip import ACCEPTED, NAME_MISMATCH, REPLAYED, STALE, GossipNode, Sample
from dsh.core.score import GIB, NodeView, score_load
from dsh.core.wire import (
    Ask,
    Bid,
    Claim,
    State,
    Usage,
    decode_message,
    encode_message,
    encode_state,
)

NAMES = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")
A, B, C, D = NAMES
IDLE = Usage(0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0)
EPOCH_MS = 1_700_000_000_000
KEY = bytes(range(32))


def sample(load: float) -> Sample:
    return Sample(ncpu=4, load=load, load1=load, mem_avail=8 * GIB, mem_total=16 * GIB, usage=IDLE)


def wall(now: float) -> int:
    return EPOCH_MS + int(now * 1000)


class Nodes:
    """Four nodes; ``deliver`` hands datagrams to whoever they are addressed to."""

    def __init__(self, sealed: bool = False) -> None:
        specs = parse_cluster("".join(f"{n}\n" for n in NAMES))
        sealer = Sealer([KEY]) if sealed else None
        self.nodes = {name: self._node(specs, name, i, sealer) for i, name in enumerate(NAMES)}
        for node in self.nodes.values():
            for name in NAMES:
                node.set_addresses(name, (name,))

    @classmethod
    def started(cls) -> Nodes:
        """Four nodes that have each heard every other's report of LOADS."""
        net = cls()
        net.tick_all(LOADS, 1.0)
        return net

    def ask(self, asker: str, now: float) -> Question:
        question = self.nodes[asker].ask(now, wall(now))
        assert question is not None, f"{asker} asks no one"
        return question

    @staticmethod
    def _node(specs: list[NodeSpec], name: str, seed: int, sealer: Sealer | None) -> GossipNode:
        return GossipNode(specs, name, score_load, interval=1.5, suspect_after=3.3,
                          extraload=1.0, extra_reports=2, extra_ttl=5.0, incarnation=EPOCH_MS,
                          rng=random.Random(seed), fanout_above=2, sealer=sealer)  # fmt: skip

    def deliver(self, src: str, out: list[tuple[bytes, str]], now: float) -> list[str]:
        outcomes = []
        for data, address in out:
            node = self.nodes[address]
            outcomes.append(node.receive(data, src, now, wall(now)))
        return outcomes

    def tick_all(self, loads: dict[str, float], now: float) -> None:
        """Every node samples ``loads`` and every report reaches every node."""
        for name, node in self.nodes.items():
            self.deliver(name, node.tick(sample(loads[name]), now, wall(now)), now)
            for other in NAMES:
                if other != name:  # above the threshold a tick reaches only some
                    state = node.table.me.state
                    assert state is not None
                    self.nodes[other].receive(node._encoded(state), name, now, wall(now))

    def bids_for(self, asker: str, datagrams: list[tuple[bytes, str]], now: float) -> None:
        """The ASKs reach their nodes, which bid; the bids reach the asker."""
        for data, address in datagrams:
            assert self.nodes[address].receive(data, asker, now, wall(now)) == ACCEPTED
            for bid, to in self.nodes[address].flush(now, wall(now)):
                assert to == asker
                self.nodes[asker].receive(bid, address, now, wall(now))


LOADS = {A: 3.0, B: 0.0, C: 1.0, D: 2.0}


def plain(data: bytes) -> object:
    return decode_message(Sealer([KEY]).open(data))


def test_the_least_loaded_bidder_is_chosen_and_told() -> None:
    net = Nodes.started()
    a = net.nodes[A]
    question = net.ask(A, 1.1)
    assert {addr for _, addr in question.datagrams} == {B, C, D}  # A is itself: no datagram
    asks = {decode_message(d) for d, _ in question.datagrams}
    assert asks == {Ask(A, question.nonce, wall(1.1))}
    assert not question.complete
    net.bids_for(A, question.datagrams, 1.1)
    assert question.complete and set(question.bids) == {B, C, D}
    assert question.own is not None and question.own[0] == A  # its own, without a datagram
    name, out = a.answer(question, 1.1, wall(1.1))
    assert name == B
    [(claim, to), copy] = out  # twice: a lost claim lets others pile onto B
    assert copy == (claim, to)
    assert to == B and decode_message(claim) == Claim(A, question.nonce, wall(1.1), 1.0)
    assert net.nodes[B].receive(claim, A, 1.1, wall(1.1)) == ACCEPTED
    assert net.nodes[B].table.me.extra == 1.0
    assert net.nodes[B].receive(claim, A, 1.1, wall(1.1)) == STALE  # counts once


def bid_score(load: float, promised: float) -> float:
    view = NodeView(
        load=load,
        load1=load,
        ncpu=4,
        mem_avail=8 * GIB,
        loadscale=1.0,
        memscale=1.0,
        extra=promised,
    )
    return score_load(view)


def test_a_job_claimed_by_another_asker_counts_at_once() -> None:
    net = Nodes()
    net.tick_all({A: 3.0, B: 0.0, C: 1.5, D: 2.0}, 1.0)
    d = net.nodes[D]
    for t in (1.1, 1.2):  # D sends two jobs to B, the least loaded by 1.5 and then 0.5
        question = net.ask(D, t)
        net.bids_for(D, question.datagrams, t)
        name, out = d.answer(question, t, wall(t))
        assert name == B
        net.deliver(D, out, t)
    assert net.nodes[B].table.me.extra == 2.0
    a = net.nodes[A]
    held = a.view(a.table.peers[B])
    assert held is not None and (held.load, held.extra) == (0.0, 0.0)  # A's reports: idle
    question = net.ask(A, 1.3)
    net.bids_for(A, question.datagrams, 1.3)
    assert question.bids[B] == pytest.approx(bid_score(0.0, 2.0))
    assert question.bids[C] == pytest.approx(bid_score(1.5, 0.0))
    name, _ = a.answer(question, 1.3, wall(1.3))
    assert name == C  # 1.5 now against B's 0 + 2 promised


def test_without_bids_the_answer_is_the_report_based_one() -> None:
    net = Nodes.started()
    a = net.nodes[A]
    question = net.ask(A, 1.1)
    # Every ASK lost. A's own score is in the question, but alone it would
    # always win (its own load against nothing): the held loads decide.
    assert question.own is not None and not question.bids
    name, out = a.answer(question, 1.2, wall(1.2))
    assert name in (B, C), name  # either of the best two by reports, as best() does
    assert len(out) == CLAIM_COPIES  # B and C speak version 4: told all the same
    # a bid that comes after the answer is stale
    b = net.nodes[B]
    b.receive(question.datagrams[0][0], A, 1.2, wall(1.2))
    [(late, _)] = b.flush(1.2, wall(1.2))
    assert a.receive(late, B, 1.25, wall(1.25)) == STALE


def test_bids_from_the_unasked_and_twice_are_stale() -> None:
    net = Nodes.started()
    question = net.ask(A, 1.1)
    forged = Bid(A, question.nonce, wall(1.1), 4, 0.0, 0.0, 0.0, GIB)
    c = net.nodes[C]
    assert c.receive(forged_from(forged, B), B, 1.1) == STALE  # C asked nobody
    a = net.nodes[A]
    first = forged_from(forged, B)
    assert a.receive(first, C, 1.1) == NAME_MISMATCH  # names B, comes from C
    assert a.receive(first, B, 1.1) == ACCEPTED
    assert a.receive(first, B, 1.1) == STALE


def forged_from(bid: Bid, name: str) -> bytes:
    return encode_message(Bid(name, *[getattr(bid, f) for f in
                                      ("nonce", "sent_ms", "ncpu", "load", "load1",
                                       "promised", "mem_avail")]))  # fmt: skip


def test_members_of_an_older_release_are_not_asked_nor_claimed() -> None:
    net = Nodes.started()
    a = net.nodes[A]

    def restart_old(member: str, load: float, now: float) -> None:
        """``member`` restarts on the previous release (version 3) with ``load``."""
        state = State(member, EPOCH_MS + 5, 1, wall(now), 4, load, load, 8 * GIB, 16 * GIB,
                      usage=IDLE)  # fmt: skip
        assert a.receive(encode_state(state, 3), member, now, wall(now)) == ACCEPTED

    restart_old(B, 0.0, 1.5)
    restart_old(C, 1.0, 1.5)
    question = net.ask(A, 1.6)
    assert {addr for _, addr in question.datagrams} == {D}
    # D's bid lost: the fallback answers; say it is B, the least loaded by its report
    question.fallback = B
    chosen, out = a.answer(question, 1.6, wall(1.6))
    assert chosen == B and out == []  # no CLAIM to a node that would drop it
    restart_old(D, 1.0, 1.7)
    assert a.ask(1.8, wall(1.8)) is None  # nobody left who answers: best() answers


def test_a_full_mesh_answers_without_asking() -> None:
    net = Nodes()
    for node in net.nodes.values():
        node.fanout_above = 32
    net.tick_all(LOADS, 1.0)
    assert net.nodes[A].ask(1.1, wall(1.1)) is None


def test_sealed_questions_work_and_old_ones_are_replays() -> None:
    net = Nodes(sealed=True)
    net.tick_all(LOADS, 1.0)
    question = net.ask(A, 1.1)
    assert isinstance(plain(question.datagrams[0][0]), Ask)
    net.bids_for(A, question.datagrams, 1.1)
    assert question.complete
    name, out = net.nodes[A].answer(question, 1.1, wall(1.1))
    assert name == B
    b = net.nodes[B]
    # replayed after the replay window (10 s): refused, counted nowhere
    assert b.receive(out[0][0], A, 30.0, wall(30.0)) == REPLAYED
    assert b.table.me.extra == 0.0
    assert b.receive(out[0][0], A, 1.2, wall(1.2)) == ACCEPTED


def test_a_fresher_load_between_ticks_is_what_a_node_bids() -> None:
    net = Nodes.started()
    b = net.nodes[B]
    b.refresh(3.5, 1.4)  # a build started on B since its tick
    question = net.ask(A, 1.5)
    net.bids_for(A, question.datagrams, 1.5)
    assert question.bids[B] == pytest.approx(bid_score(3.5, 0.0))
    name, _ = net.nodes[A].answer(question, 1.5, wall(1.5))
    assert name == C


def test_promised_jobs_last_two_samples_of_the_node_and_half_a_second() -> None:
    net = Nodes.started()
    b = net.nodes[B]
    for nonce, at in ((7, 1.1), (8, 1.3)):
        assert b.receive(encode_message(Claim(A, nonce, wall(at), 1.0)), A, at) == ACCEPTED
    assert b.table.me.extra == 2.0
    b.refresh(0.0, 1.35)
    b.refresh(0.0, 1.5)  # two samples since the first claim, but not 0.5 s: it may not run yet
    assert b.table.me.extra == 2.0
    b.refresh(1.0, 1.65)  # the first is over; the second has had two samples, not 0.5 s
    assert b.table.me.extra == 1.0
    b.tick(sample(2.0), 2.0, wall(2.0))
    assert b.table.me.extra == 0.0


def test_those_that_have_not_bid_are_asked_again() -> None:
    net = Nodes.started()
    a = net.nodes[A]
    question = net.ask(A, 1.1)
    assert sorted(question.again()) == sorted(question.datagrams)  # every ASK lost
    b = net.nodes[B]
    [(ask_b, _)] = [d for d in question.datagrams if d[1] == B]
    b.receive(ask_b, A, 1.11, wall(1.11))
    [(bid, _)] = b.flush(1.11, wall(1.11))
    assert a.receive(bid, B, 1.11, wall(1.11)) == ACCEPTED
    assert {to for _, to in question.again()} == {C, D}
    net.bids_for(A, question.again(), 1.12)
    assert question.complete


def test_a_member_known_only_from_news_is_asked_until_it_leaves_three_unanswered() -> None:
    net = Nodes.started()
    a = net.nodes[A]
    a.table.peers[D].state = None  # as if A knew D only from others' news
    a.table.peers[D].relayed = (4, 2.0, 8 * GIB)
    t = 1.1
    for _ in range(3):  # D, of an older release maybe, never bids
        question = a.ask(t, wall(t))
        assert question is not None and D in question.waiting
        a.answer(question, t, wall(t))
        t += 0.1
    question = a.ask(t, wall(t))
    assert question is not None and D not in question.waiting
    a.answer(question, t, wall(t))
    t += 61.0  # a minute later it is given another chance
    net.tick_all(LOADS, t)  # (everyone fresh again)
    a.table.peers[D].state = None
    a.table.peers[D].relayed = (4, 2.0, 8 * GIB)
    question = a.ask(t + 0.1, wall(t + 0.1))
    assert question is not None and D in question.waiting


def test_a_drained_node_does_not_bid_and_a_member_without_address_is_not_waited_for() -> None:
    net = Nodes.started()
    b = net.nodes[B]
    b.drained = True  # dshd --drain: its reports say so, but news of it does not
    question = net.ask(A, 1.1)
    [(ask_b, _)] = [d for d in question.datagrams if d[1] == B]
    assert b.receive(ask_b, A, 1.1, wall(1.1)) == STALE
    assert b.flush(1.1, wall(1.1)) == []
    a = net.nodes[A]
    a.set_addresses(D, ())  # D's name stopped resolving
    question = net.ask(A, 1.2)
    assert D not in question.waiting
    assert {to for _, to in question.datagrams} == {B, C}


def test_a_replayed_question_is_answered_at_most_twice() -> None:
    net = Nodes.started()
    question = net.ask(A, 1.1)
    [(ask_b, _)] = [d for d in question.datagrams if d[1] == B]
    b = net.nodes[B]
    outcomes = [b.receive(ask_b, A, 1.1, wall(1.1)) for _ in range(4)]
    assert outcomes == [ACCEPTED, ACCEPTED, STALE, STALE]  # the ASK and its second try
    assert len(b.flush(1.1, wall(1.1))) == 2
