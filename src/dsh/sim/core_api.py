"""The few places where the simulator touches the core: building a node, asking it.

Everything else in the simulator goes through GossipNode's public methods
(tick, poll, receive, leave, best, member_state). Reading which report of a
member a node holds is not public API; it is here, in one place, so that a
change of the table shows up as one broken function.
"""

from __future__ import annotations

import inspect
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..core.cluster import NodeSpec
from ..core.gossip import GossipNode
from ..core.score import score_load

_NEW_CORE = "roster" in inspect.signature(GossipNode).parameters  # TEMPORARY

if TYPE_CHECKING:
    from .cluster import NodeConfig


@dataclass
class Shared:
    """What all nodes of one simulation share (the daemon builds its own of each)."""

    roster: object
    addresses: object

    @classmethod
    def of(cls, specs: list[NodeSpec]) -> Shared:
        if not _NEW_CORE:  # TEMPORARY until the lead's core lands
            return cls(None, None)
        from ..core.addresses import AddressBook  # type: ignore[import-not-found]
        from ..core.roster import Roster  # type: ignore[import-not-found]

        book = AddressBook()
        for spec in specs:
            book.set(spec.key, (spec.name,))
        return cls(Roster(specs), book)


def new_node(
    specs: list[NodeSpec],
    name: str,
    shared: Shared,
    config: NodeConfig,
    incarnation: int,
    rng: random.Random,
) -> GossipNode:
    if not _NEW_CORE:  # TEMPORARY until the lead's core lands
        node = GossipNode(specs, name, score_load, dead_after=config.dead_after,
                          extraload=config.extraload, extra_reports=config.extra_reports,
                          extra_ttl=config.extra_ttl, incarnation=incarnation, rng=rng)  # fmt: skip
        for spec in specs:
            node.set_addresses(spec.name, (spec.name,))
        setattr(node, "poll", lambda now, wall_ms: [])  # noqa: B010
        setattr(node, "leave", lambda now, wall_ms: [])  # noqa: B010
        return node
    return GossipNode(
        specs,
        name,
        score_load,
        dead_after=config.dead_after,
        extraload=config.extraload,
        extra_reports=config.extra_reports,
        extra_ttl=config.extra_ttl,
        incarnation=incarnation,
        rng=rng,
        fanout_above=config.fanout_above,
        fanout=config.fanout,
        roster=shared.roster,
        addresses=shared.addresses,
    )


def member_state(node: GossipNode, name: str, now: float) -> str:
    if not _NEW_CORE:  # TEMPORARY until the lead's core lands
        peer = node.table.get(name)
        assert peer is not None
        return "up" if node.table.is_live(peer, now) and peer.state is not None else "down"
    return node.member_state(name, now)  # type: ignore[attr-defined,no-any-return]


def held_order(node: GossipNode, name: str) -> tuple[int, int] | None:
    """The (incarnation, seq) of the freshest load of ``name`` that ``node`` holds."""
    peer = node.table.get(name)
    if peer is None:
        return None
    if _NEW_CORE and peer.relayed is not None:  # type: ignore[attr-defined]
        return peer.order  # type: ignore[attr-defined,no-any-return]
    return None if peer.state is None else peer.state.order


@dataclass
class ReportTimes:
    """When a node sampled each of its reports, by (incarnation, seq), for one life."""

    # incarnation -> (first seq, sample time of first seq + k at index k)
    by_incarnation: dict[int, tuple[int, list[float]]] = field(default_factory=dict)

    def note(self, node: GossipNode, now: float) -> None:
        entry = self.by_incarnation.get(node.incarnation)
        if entry is None:
            self.by_incarnation[node.incarnation] = (node.seq, [now])
        else:
            entry[1].append(now)

    def time_of(self, order: tuple[int, int]) -> float | None:
        incarnation, seq = order
        entry = self.by_incarnation.get(incarnation)
        if entry is None:
            # A refutation raises the incarnation between ticks; the load
            # it carries is the last tick's, sampled under the old number.
            older = [i for i in self.by_incarnation if i < incarnation]
            if not older:
                return None
            entry = self.by_incarnation[max(older)]
            first, times = entry
            return times[-1] if seq >= first + len(times) - 1 else None
        first, times = entry
        k = seq - first
        return times[k] if 0 <= k < len(times) else None
