"""A seeded virtual network: datagrams in flight in virtual seconds.

Rules of this file:

* Nodes are small integers (cluster.py maps them to names and addresses);
  time is virtual seconds passed in by the caller; every random draw comes
  from the network's own ``random.Random``, in the order datagrams are sent,
  so a run is reproduced exactly by its seed.
* Loss is decided per datagram copy, as an inbound nftables ``numgen random``
  rule drops each arriving packet on its own; a duplicated datagram is two
  copies, each of which may be lost, and each gets its own delay (so copies
  and neighbours reorder, as on a real network).
* A datagram crossing a partition is dropped when it is sent; a partition
  healed later does not bring back what it ate.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from ..core.wire import is_small_message

# Event kinds in the shared queue (cluster.py adds its own timers).
DELIVER = 0


@dataclass
class LinkProfile:
    """How the network treats every datagram; defaults: a quiet LAN."""

    loss: float = 0.0  # probability that one copy is dropped
    duplicate: float = 0.0  # probability that a datagram arrives twice
    delay_min: float = 0.0002  # seconds; uniform between min and max ...
    delay_max: float = 0.002
    tail: float = 0.0  # ... plus, with this probability, an exponential extra
    tail_mean: float = 0.05  # of this mean (a queue filling up somewhere)


@dataclass
class Counters:
    """Datagrams and bytes (UDP payload) per node, since the last reset."""

    sent: list[int]
    sent_bytes: list[int]
    received: list[int]  # delivered to the node's socket (before the core looks)
    received_bytes: list[int]
    # Of ``sent``: the best-node questions' ASKs, BIDs and CLAIMs (all nodes),
    # a cost per job rather than per member, so that the traffic tables can
    # show the gossip's share on its own.
    question_sent: int = 0
    question_bytes: int = 0
    lost: int = 0  # copies dropped by loss
    cut: int = 0  # datagrams dropped by a partition
    duplicated: int = 0

    @classmethod
    def zero(cls, size: int) -> Counters:
        return cls([0] * size, [0] * size, [0] * size, [0] * size)


class EventQueue:
    """One heap of (time, order, kind, node, data, src) for datagrams and timers.

    The ``order`` number breaks ties in the order things were scheduled, so
    the heap never compares payloads and equal times replay identically."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, int, int, bytes, int]] = []
        self._order = 0

    def push(self, at: float, kind: int, node: int, data: bytes = b"", src: int = -1) -> None:
        self._order += 1
        heapq.heappush(self.heap, (at, self._order, kind, node, data, src))

    def next_time(self) -> float:
        return self.heap[0][0] if self.heap else float("inf")

    def pop(self) -> tuple[float, int, int, int, bytes, int]:
        return heapq.heappop(self.heap)

    def __len__(self) -> int:
        return len(self.heap)


@dataclass
class Network:
    """Carries datagrams between nodes 0..size-1 through an ``EventQueue``."""

    size: int
    queue: EventQueue
    rng: random.Random
    profile: LinkProfile = field(default_factory=LinkProfile)
    counters: Counters = field(init=False)
    # group[node] while a partition stands: datagrams cross only within a group
    _group: list[int] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.counters = Counters.zero(self.size)

    def grow(self, size: int) -> None:
        """Room for nodes up to ``size`` (a node that joins later)."""
        extra = size - self.size
        if extra > 0:
            c = self.counters
            for series in (c.sent, c.sent_bytes, c.received, c.received_bytes):
                series.extend([0] * extra)
            if self._group is not None:
                self._group.extend([0] * extra)
            self.size = size

    def reset_counters(self) -> None:
        self.counters = Counters.zero(self.size)

    # -- partitions ------------------------------------------------------------

    def partition(self, *sides: list[int]) -> None:
        """Cut the network: each side reaches only itself; unnamed nodes form one more side."""
        group = [0] * self.size
        for number, side in enumerate(sides, start=1):
            for node in side:
                group[node] = number
        self._group = group

    def heal(self) -> None:
        self._group = None

    def reachable(self, src: int, dst: int) -> bool:
        return self._group is None or self._group[src] == self._group[dst]

    # -- datagrams ---------------------------------------------------------------

    def send(self, src: int, dst: int, data: bytes, now: float) -> None:
        """``src`` sends ``data`` to ``dst`` at ``now``; schedule what arrives."""
        c = self.counters
        c.sent[src] += 1
        c.sent_bytes[src] += len(data)
        if is_small_message(data):  # the simulated nodes send unsealed
            c.question_sent += 1
            c.question_bytes += len(data)
        if self._group is not None and self._group[src] != self._group[dst]:
            c.cut += 1
            return
        p = self.profile
        rng = self.rng
        copies = 1
        if p.duplicate and rng.random() < p.duplicate:
            c.duplicated += 1
            copies = 2
        for _ in range(copies):
            if p.loss and rng.random() < p.loss:
                c.lost += 1
                continue
            delay = p.delay_min + (p.delay_max - p.delay_min) * rng.random()
            if p.tail and rng.random() < p.tail:
                delay += rng.expovariate(1.0 / p.tail_mean)
            self.queue.push(now + delay, DELIVER, dst, data, src)

    def delivered(self, dst: int, data: bytes) -> None:
        """Count a datagram that reached ``dst``'s socket (the cluster calls this)."""
        self.counters.received[dst] += 1
        self.counters.received_bytes[dst] += len(data)
