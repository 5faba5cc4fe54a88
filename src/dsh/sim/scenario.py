"""One measured run: N nodes, a loss rate, crashes and restarts, jobs placed; numbers out.

The run starts every node at a random phase, lets the cluster settle for
``warmup`` virtual seconds, resets the traffic counters and then, for
``duration`` seconds, crashes a random node every ``crash_every`` seconds
(restarting it ``restart_after`` later, so N stays about constant), asks
random nodes for the best node at ``best_rate`` per second (placing a job on
each answer), and every ``step`` seconds looks at what the nodes believe.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from .cluster import NodeConfig, SimCluster
from .metrics import DetectionWatch, FalseAlarms, LoadAges, Placement, percentile
from .network import LinkProfile


@dataclass(frozen=True)
class Scenario:
    size: int
    loss: float = 0.0
    duration: float = 300.0  # measured virtual seconds, after the warm-up
    warmup: float = 60.0
    seed: int = 1
    crash_every: float = 10.0
    restart_after: float = 30.0
    best_rate: float = 10.0  # best-node questions per virtual second, whole cluster
    step: float = 0.1  # seconds between two looks at crashes being detected
    watch_every: int = 3  # steps between two looks at the watched pairs
    pair_budget: int = 10_000  # (observer, member) pairs watched for false alarms
    detection_observers: int = 1000  # observers of one crash, at most
    age_samples: int = 20  # pairs sampled for load age per look
    settle: float = 20.0  # a node's first seconds do not count for false alarms and ages
    config: NodeConfig = field(default_factory=NodeConfig)
    duplicate: float = 0.0
    tail: float = 0.0
    # None: best-node answers from dshd's reports; seconds: from the true loads
    # that old instead (reference.py's yardstick, not something dshd can do)
    reference: float | None = None


@dataclass
class Result:
    scenario: Scenario
    first_down: list[float]  # per crash: seconds until the first observer said down
    knew: list[float]  # per crash: share of running nodes that showed it up just before
    most_down: list[float | None]  # ... until 99 % did (None: not before the restart)
    all_down: list[float | None]
    false: FalseAlarms
    ages: LoadAges
    placement: Placement
    sent_per_node_s: float  # datagrams
    bytes_per_node_s: float  # UDP payload
    received_per_node_s: float
    # of sent_per_node_s and bytes_per_node_s: the best-node questions (ASK, BID, CLAIM)
    question_sent_per_node_s: float
    question_bytes_per_node_s: float
    events: int  # datagrams and timers the simulator handled
    core_counters: dict[str, int]

    @property
    def false_suspects(self) -> float:
        return self.false.per_node_hour(self.false.suspect_edges, self.scenario.size)

    @property
    def false_downs(self) -> float:
        return self.false.per_node_hour(self.false.down_edges, self.scenario.size)


Progress = Callable[[float, SimCluster], None]


def run(sc: Scenario, progress: Progress | None = None) -> Result:
    """Run ``sc``; ``progress(now, cluster)`` is called every 10 virtual seconds."""
    link = LinkProfile(loss=sc.loss, duplicate=sc.duplicate, tail=sc.tail)
    cluster = SimCluster(sc.size, seed=sc.seed, config=sc.config, link=link, reference=sc.reference)
    rng = cluster.random("scenario")
    detection = DetectionWatch(cluster, cluster.random("detection"), sc.detection_observers)
    false = FalseAlarms.sample(cluster, sc.pair_budget, sc.settle, cluster.random("pairs"))
    ages, placement = LoadAges(), Placement()
    cluster.start()
    cluster.run_until(sc.warmup)
    cluster.net.reset_counters()
    for node in cluster.nodes:
        if node is not None:
            node.counters.clear()
            node.events.clear()
    node_seconds = 0.0
    restarts: dict[int, float] = {}  # crashed node -> when it comes back
    next_crash = sc.warmup + sc.crash_every / 2
    next_question = sc.warmup
    steps = round(sc.duration / sc.step)
    for k in range(1, steps + 1):
        now = sc.warmup + k * sc.step
        cluster.run_until(now)
        live = cluster.live()
        node_seconds += len(live) * sc.step
        for member, at in list(restarts.items()):
            if at <= now:
                del restarts[member]
                detection.close(member)
                cluster.start(member)
        if now >= next_crash and now + sc.restart_after < sc.warmup + sc.duration:
            next_crash += sc.crash_every
            victim = rng.choice(live)
            knowing = detection.knowing(victim)
            cluster.crash(victim)
            detection.crashed(victim, knowing)
            restarts[victim] = now + sc.restart_after
        detection.check()
        askers: list[int] | None = None
        while next_question <= now:
            next_question += 1.0 / sc.best_rate
            if askers is None:  # once per step: a list of 10,000 is not free
                live = cluster.live()
                askers = [i for i in live if cluster.settled(i, sc.settle)]
            if askers:
                placement.ask(cluster, rng.choice(askers), live, ages, rng)
        if k % sc.watch_every == 0:
            false.check(cluster)
            ages.sample(cluster, sc.age_samples, sc.settle, rng)
        if progress is not None and k % round(10 / sc.step) == 0:
            progress(now, cluster)
    c = cluster.net.counters
    counters: dict[str, int] = {}
    for node in cluster.nodes:
        if node is not None:
            for key, value in (node.counters | node.events).items():
                counters[key] = counters.get(key, 0) + value
    crashes = detection.crashes()
    return Result(
        scenario=sc,
        first_down=[f for f in (c_.first() for c_ in crashes) if f is not None],
        knew=[c_.knew for c_ in crashes],
        most_down=[c_.share(0.99) for c_ in crashes],
        all_down=[c_.share(1.0) for c_ in crashes],
        false=false,
        ages=ages,
        placement=placement,
        sent_per_node_s=sum(c.sent) / node_seconds,
        bytes_per_node_s=sum(c.sent_bytes) / node_seconds,
        received_per_node_s=sum(c.received) / node_seconds,
        question_sent_per_node_s=c.question_sent / node_seconds,
        question_bytes_per_node_s=c.question_bytes / node_seconds,
        events=cluster.events,
        core_counters=counters,
    )


def summary(values: list[float | None]) -> tuple[float, float, int]:
    """(median, p99, count of None) of detection delays; None counts as never."""
    known = [v for v in values if v is not None]
    missing = len(values) - len(known)
    if missing:
        # a crash some observers never saw: it ranks above every finite delay
        known += [math.inf] * missing
    return percentile(known, 0.5), percentile(known, 0.99), missing
