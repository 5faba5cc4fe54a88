"""The few places where the simulator touches the core: building a node, asking it.

Everything else in the simulator goes through GossipNode's public methods
(tick, poll, receive, leave, best, member_state). Which report of a member a
node holds is not public API; it is read here, in one place, so that a
change of the table shows up as one broken function.
"""

from __future__ import annotations

import random
from array import array
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..core.addresses import AddressBook
from ..core.cluster import NodeSpec
from ..core.gossip import GossipNode
from ..core.roster import Roster
from ..core.score import score_load
from .reference import ExactLoadNode, Truth

if TYPE_CHECKING:
    from .cluster import NodeConfig


@dataclass
class Shared:
    """What all nodes of one simulation share (the daemon builds its own of each)."""

    roster: Roster
    addresses: AddressBook

    @classmethod
    def of(cls, specs: list[NodeSpec]) -> Shared:
        book = AddressBook()
        for spec in specs:
            book.put(spec.key, (spec.name,))
        return cls(Roster(specs), book)


def new_node(
    specs: list[NodeSpec],
    name: str,
    shared: Shared,
    config: NodeConfig,
    incarnation: int,
    rng: random.Random,
    truth: Truth | None = None,
) -> GossipNode:
    """dshd's core as the daemon builds it; with ``truth``, the yardstick of reference.py."""
    node = (GossipNode if truth is None else ExactLoadNode)(
        specs,
        name,
        score_load,
        interval=config.interval,
        suspect_after=config.suspect_after,
        extraload=config.extraload,
        extra_reports=config.extra_reports,
        extra_ttl=config.extra_ttl,
        incarnation=incarnation,
        rng=rng,
        fanout_above=config.fanout_above,
        fanout=config.fanout,
        roster=shared.roster,
        addresses=shared.addresses,
        # the yardstick is the d-choices rule alone: it reads true loads, asks no one
        ask_best=config.ask_best if truth is None else 0,
    )
    if isinstance(node, ExactLoadNode):
        assert truth is not None
        node.truth = truth
    return node


def held_order(node: GossipNode, name: str) -> tuple[int, int] | None:
    """The (incarnation, seq) of the freshest load of ``name`` that ``node`` holds."""
    peer = node.table.get(name)
    if peer is None:
        return None
    if peer.relayed is not None:  # another member's news, newer than its own report
        return peer.order
    return None if peer.state is None else peer.state.order


@dataclass
class _Life:
    incarnation: int  # the first of this life (a refutation raises it, seq goes on)
    seqs: array[int] = field(default_factory=lambda: array("L"))
    times: array[float] = field(default_factory=lambda: array("d"))


@dataclass
class ReportTimes:
    """When a node sampled its load, by the (incarnation, seq) of the reports that carry it.

    Every datagram has a new seq (a poll's reuses the last tick's sample), so
    the sample of a report is the one of the last tick at or before its seq.
    Compact arrays: 10,000 nodes tick 6,667 times a virtual second."""

    lives: list[_Life] = field(default_factory=list)

    def new_life(self, incarnation: int) -> None:
        self.lives.append(_Life(incarnation))

    def note(self, node: GossipNode, now: float) -> None:
        """Call after each tick."""
        life = self.lives[-1]
        life.seqs.append(node.seq)
        life.times.append(now)

    def time_of(self, order: tuple[int, int]) -> float | None:
        incarnation, seq = order
        for life in reversed(self.lives):
            if life.incarnation <= incarnation:
                k = bisect_right(life.seqs, seq) - 1
                return life.times[k] if k >= 0 else None
        return None
