"""A yardstick for best-node answers: the real rule fed exact loads instead of reports.

``ExactLoadNode`` is the real GossipNode in every respect (the members it
knows, which it takes for alive and fresh, the d-choices rule, the extra
load it adds for its own jobs) but one: it scores a member by the member's
true load, as it is now or as it was ``delay`` seconds ago, instead of by
the report it holds. With delay 0 it shows what power-of-d choices can reach
at a given job rate with perfect information; with the delay the protocol's
reports have, whether the reports lose anything beyond their age.

Not dshd: no daemon can read another node's load without a datagram.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from ..core.gossip import GossipNode
from ..core.score import NodeView
from ..core.table import Peer

# Seconds between two snapshots of all true loads, when the yardstick looks back.
SNAPSHOT_EVERY = 0.1

Truth = Callable[[str], float]  # member name -> the load the yardstick scores it by


class ExactLoadNode(GossipNode):
    truth: Truth  # set by core_api.new_node

    def view(self, peer: Peer) -> NodeView | None:
        view = super().view(peer)
        if view is None:
            return None
        load = self.truth(peer.spec.name)
        return replace(view, load=load, load1=load)


class LoadHistory:
    """Every node's true load every SNAPSHOT_EVERY s, for as far back as ``delay``."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.times: deque[float] = deque()
        self.loads: deque[array[float]] = deque()

    def record(self, now: float, loads: array[float]) -> None:
        self.times.append(now)
        self.loads.append(loads)
        # keep the newest snapshot at or before now - delay, drop the older ones
        while len(self.times) > 1 and self.times[1] <= now - self.delay:
            self.times.popleft()
            self.loads.popleft()

    def at(self, node: int, now: float) -> float | None:
        """Node's load in the last snapshot at or before ``now - delay``; None before the first."""
        k = bisect_right(self.times, now - self.delay + 1e-9) - 1
        if k < 0 or node >= len(self.loads[k]):
            return None  # the run is younger than the delay, or the node newer
        return self.loads[k][node]
