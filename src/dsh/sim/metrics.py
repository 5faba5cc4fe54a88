"""What the nodes believe, against what is true: detection, false alarms, load age, placement.

Rules of this file:

* Watchers look only through ``SimCluster.member_state`` (O(1) per question)
  and ask a bounded number of questions per check: all pairs of a small
  cluster, a fixed random sample of pairs of a big one. Rates from a sample
  are scaled to the whole cluster and say so (``pairs`` below).
* "True" is the simulator's: which nodes run, since when, their true load.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from dataclasses import dataclass, field

from .cluster import SimCluster

UP_STATES = ("up", "drained")
GONE_STATES = ("down", "left")


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank value below which ``share`` of ``values`` lie (NaN if none)."""
    if not values:
        return math.nan
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(len(s) * share) - 1))]


# -- detection of a crash ----------------------------------------------------------


@dataclass
class Crash:
    """One crash, and when each observer that was running then said ``down``."""

    member: int
    at: float
    waiting: list[int]  # observers that do not say down yet
    delays: list[float] = field(default_factory=list)  # seconds from the crash, per observer
    observers: int = 0  # observers still running (one that crashes meanwhile does not count)
    knew: float = 1.0  # share of the running nodes that showed it up or suspect at the crash

    def __post_init__(self) -> None:
        self.observers = len(self.waiting)

    def check(self, cluster: SimCluster) -> bool:
        """Look again; True when every observer says down."""
        still: list[int] = []
        for observer in self.waiting:
            if not cluster.is_live(observer):
                self.observers -= 1
            elif cluster.member_state(observer, self.member) == "down":
                self.delays.append(cluster.now - self.at)
            else:
                still.append(observer)
        self.waiting = still
        return not still

    def first(self) -> float | None:
        return min(self.delays) if self.delays else None

    def share(self, fraction: float) -> float | None:
        """Seconds until ``fraction`` of the observers said down; None if they never did."""
        need = max(1, math.ceil(fraction * self.observers))
        return sorted(self.delays)[need - 1] if len(self.delays) >= need else None


class DetectionWatch:
    def __init__(self, cluster: SimCluster, rng: random.Random, max_observers: int) -> None:
        self.cluster = cluster
        self.rng = rng
        self.max_observers = max_observers
        self.open: list[Crash] = []
        self.done: list[Crash] = []

    def crashed(self, member: int, knowing: list[int]) -> None:
        """Call right after ``cluster.crash(member)`` with the running nodes that
        showed it up or suspect just before: one that never heard of it shows it
        down already (table.py's NEW), and would count as a detection in no time."""
        observers = knowing
        if len(observers) > self.max_observers:
            observers = self.rng.sample(observers, self.max_observers)
        knew = len(knowing) / max(1, len(self.cluster.live()))
        self.open.append(Crash(member, self.cluster.now, observers, knew=knew))

    def knowing(self, member: int) -> list[int]:
        """The running nodes that show ``member`` up, drained or suspect."""
        return [
            o
            for o in self.cluster.live()
            if o != member and self.cluster.member_state(o, member) not in GONE_STATES
        ]

    def check(self) -> None:
        for crash in list(self.open):
            if crash.check(self.cluster):
                self.open.remove(crash)
                self.done.append(crash)

    def close(self, member: int) -> None:
        """The member restarts: stop waiting for observers that never said down."""
        for crash in list(self.open):
            if crash.member == member:
                self.open.remove(crash)
                self.done.append(crash)

    def crashes(self) -> list[Crash]:
        return self.done + self.open


# -- false alarms -------------------------------------------------------------------


@dataclass
class FalseAlarms:
    """Edges of a live member's state at an observer: up to suspect, anything to down/left.

    Counted over ``pairs`` (observer, member) watched; ``pair_seconds`` is how
    long both were running and settled, so the rate scales to any pair count."""

    pairs: list[tuple[int, int]]
    settle: float  # seconds a node must have run before its pairs count
    last: list[str | None] = field(init=False)
    suspect_edges: int = 0
    down_edges: int = 0
    pair_seconds: float = 0.0
    examples: list[tuple[float, int, int, str, str]] = field(default_factory=list)
    _last_check: float | None = None

    def __post_init__(self) -> None:
        self.last = [None] * len(self.pairs)

    @classmethod
    def sample(
        cls, cluster: SimCluster, budget: int, settle: float, rng: random.Random
    ) -> FalseAlarms:
        n = cluster.size
        if n * (n - 1) <= budget:
            pairs = [(o, m) for o in range(n) for m in range(n) if o != m]
        else:
            per_observer = max(1, budget // n)
            pairs = []
            for o in range(n):
                for m in rng.sample(range(n - 1), min(per_observer, n - 1)):
                    pairs.append((o, m if m < o else m + 1))
        return cls(pairs, settle)

    def check(self, cluster: SimCluster) -> None:
        now = cluster.now
        dt = 0.0 if self._last_check is None else now - self._last_check
        self._last_check = now
        counted = 0
        settle = self.settle
        settled = [cluster.is_live(i) and cluster.settled(i, settle) for i in range(cluster.size)]
        last = self.last
        for k, (observer, member) in enumerate(self.pairs):
            if not (settled[observer] and settled[member]):
                last[k] = None
                continue
            counted += 1
            state = cluster.member_state(observer, member)
            before = last[k]
            last[k] = state
            if before is None or state == before:
                continue
            if state == "suspect" and before in UP_STATES:
                self.suspect_edges += 1
            elif state in GONE_STATES and before not in GONE_STATES:
                self.down_edges += 1
            else:
                continue
            if len(self.examples) < 20:
                self.examples.append((now, observer, member, before, state))
        self.pair_seconds += counted * dt

    def per_node_hour(self, edges: int, size: int) -> float:
        """Edges at all observers of one member per hour of its life (scaled from the sample)."""
        if self.pair_seconds == 0:
            return math.nan
        return edges / self.pair_seconds * 3600 * (size - 1)


# -- age of load information, and placement ---------------------------------------------


@dataclass
class LoadAges:
    """Ages of the freshest load observers hold of random live members."""

    all: list[float] = field(default_factory=list)  # every sampled pair that holds a load
    placeable: list[float] = field(default_factory=list)  # pairs where the member is up
    chosen: list[float] = field(default_factory=list)  # best-node answers: the chosen's age
    none: int = 0  # sampled pairs that hold no load of this life at all
    sampled: int = 0

    def sample(self, cluster: SimCluster, count: int, settle: float, rng: random.Random) -> None:
        live = [i for i in cluster.live() if cluster.settled(i, settle)]
        if len(live) < 2:
            return
        for _ in range(count):
            observer, member = rng.sample(live, 2)
            self.sampled += 1
            age = cluster.report_age(observer, member)
            if age is None:
                self.none += 1
                continue
            self.all.append(age)
            if cluster.member_state(observer, member) == "up":
                self.placeable.append(age)


@dataclass
class Placement:
    """Where best-node answers send jobs, against the true loads of all running nodes."""

    percentiles: list[float] = field(default_factory=list)  # 0: the least loaded node
    # the chosen node's true load above the 10th-percentile node's, in jobs
    # (negative: below it); where most nodes carry nearly the same load, the
    # percentile says little and this says how much worse the pick was
    excess: list[float] = field(default_factory=list)
    asked: int = 0
    no_answer: int = 0
    dead_answer: int = 0  # a node that is not running
    rank_sample: int = 1000  # above this many nodes, rank against a random sample

    def ask(
        self,
        cluster: SimCluster,
        asker: int,
        live: list[int],
        ages: LoadAges,
        rng: random.Random,
    ) -> None:
        """Ask ``asker``; rank its answer, when it comes, among ``live`` (the
        running nodes when it was asked)."""
        self.asked += 1
        cluster.ask(asker, lambda chosen: self._answered(cluster, asker, chosen, live, ages, rng))

    def _answered(
        self,
        cluster: SimCluster,
        asker: int,
        chosen: int | None,
        live: list[int],
        ages: LoadAges,
        rng: random.Random,
    ) -> None:
        now = cluster.now
        if chosen is None:
            self.no_answer += 1
            return
        if not cluster.is_live(chosen):
            self.dead_answer += 1
            return
        age = cluster.report_age(asker, chosen)
        if age is not None:
            ages.chosen.append(age)
        # the job loads its node a moment later (JOB_START_DELAY): rank the load now
        load = cluster.loads.value(chosen, now)
        if len(live) > self.rank_sample:
            others = [i for i in rng.sample(live, self.rank_sample + 1) if i != chosen]
        else:
            others = [i for i in live if i != chosen]
        value = cluster.loads.value
        loads = sorted(value(i, now) for i in others)
        lower = bisect_left(loads, load - 1e-12)
        self.percentiles.append(100.0 * lower / max(1, len(others)))
        if loads:
            self.excess.append((load - percentile(loads, 0.1)) / cluster.loads.model.job)
