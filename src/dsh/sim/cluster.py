"""N real GossipNodes on the virtual network, on jittered timers, with faults on demand.

Rules of this file:

* Node ``i`` is named and addressed ``node_name(i)`` (an IPv4 literal, so the
  core needs no resolver); every core object sees only names, addresses,
  datagrams and ``now``.
* One ``EventQueue`` holds datagrams and timers. A timer carries the
  generation of the node it was set for: a node stopped or restarted since
  leaves its old timers to fire into nothing.
* Every random draw comes from a ``random.Random`` seeded from the run's seed
  and a fixed label; nothing iterates a set or reads a clock, so a seed
  gives the same run in any process.
"""

from __future__ import annotations

import hashlib
import random
import struct
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

from ..core.bids import ASK_AGAIN_AFTER, ASK_BEST, ASK_TIMEOUT, Question
from ..core.cluster import NodeSpec
from ..core.gossip import GossipNode, Sample
from ..core.score import GIB
from ..core.wire import Usage
from . import core_api
from .load import LoadModel, TrueLoads
from .network import DELIVER, EventQueue, LinkProfile, Network
from .reference import SNAPSHOT_EVERY, LoadHistory

# Timer kinds in the queue, beside network.DELIVER.
TICK = 1  # the node's interval timer fires
RUN_TICK = 2  # a slow node's tick, once its stall is over
POLL = 3  # the node's I/4 timer
LOAD_STEP = 4  # every node's background load moves (node -1)
LATE = 5  # a datagram a stalled node reads once its stall is over
SNAPSHOT = 6  # every node's true load is recorded for the yardstick (node -1)
ANSWER = 7  # a best-node question's wait is over (ASK_TIMEOUT): answer it
ASK_AGAIN = 8  # ASK_AGAIN_AFTER: the ASKs again, to those that have not bid
JOB_START = 9  # a placed job starts and loads its node

# Seconds from a best-node answer to the job loading its node: dsh's mux and
# the executor's fork (tens of ms), a new SSH channel (hundreds).
JOB_START_DELAY = 0.1
# Seconds of CPU accounting a load measure between ticks needs (daemon/sampler.py).
MIN_WINDOW = 0.2

NEVER = float("inf")
EPOCH_MS = 1_800_000_000_000  # virtual time 0 on every node's wall clock
USAGE = Usage(0.4, 0.1, 0.5, 0.0, 1e5, 2e5, 1e4, 1e4, 0, 4 * GIB)  # realistic datagram size


@dataclass(frozen=True)
class NodeConfig:
    """What dshd would be started with (the daemon's defaults, config.py)."""

    interval: float = 1.5
    jitter: float = 0.1
    maxloops: int = 3
    fanout_above: int = 32
    fanout: int = 2
    extraload: float = 1.0
    extra_reports: int = 2
    ask_best: int = ASK_BEST  # candidates a best-node question asks (0: none, as before)
    ncpu: int = 8
    mem_total: int = 16 * GIB
    mem_avail: int = 8 * GIB

    @property
    def suspect_after(self) -> float:
        """The design's S: maxloops - 1 intervals, allowing for the jitter."""
        return (self.maxloops - 1) * self.interval * (1 + self.jitter)

    @property
    def extra_ttl(self) -> float:
        return (self.extra_reports + 1) * self.interval * (1 + self.jitter)


def _mean(trace: list[tuple[float, float]]) -> float:
    """The time-weighted mean of a load measured at the points of ``trace``
    (linear between them); the last point's value for a single point."""
    span = trace[-1][0] - trace[0][0]
    if span <= 0:
        return trace[-1][1]
    area = sum((t1 - t0) * (v0 + v1) / 2 for (t0, v0), (t1, v1) in pairwise(trace))
    return area / span


def node_name(i: int) -> str:
    """10.0.0.1, 10.0.0.2, ...: 16 million names, each its own address."""
    n = i + 1
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


class SimCluster:
    """``size`` members of one cluster file; ``start`` brings them to life."""

    def __init__(
        self,
        size: int,
        *,
        seed: int,
        config: NodeConfig | None = None,
        link: LinkProfile | None = None,
        load_model: LoadModel | None = None,
        trace: bool = False,
        reference: float | None = None,
    ) -> None:
        """``reference``: None for dshd; a number of seconds for the yardstick of
        reference.py, whose nodes score members by their true loads that old."""
        self.seed = seed
        self.config = config or NodeConfig()
        self.rng = self.random("cluster")
        self.queue = EventQueue()
        self.net = Network(size, self.queue, self.random("network"), link or LinkProfile())
        self.loads = TrueLoads(size, load_model or LoadModel(), self.random("load"))
        self.names = [node_name(i) for i in range(size)]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.specs = [NodeSpec(name, line=i + 1) for i, name in enumerate(self.names)]
        self.shared = core_api.Shared.of(self.specs)
        self.nodes: list[GossipNode | None] = [None] * size
        self.generation = [0] * size
        self.lives = [0] * size  # restarts, for per-life seeds
        self.lag = [0.0] * size  # a slow node stalls this long at each tick
        self.stalled_until = [0.0] * size
        self.started_at = [NEVER] * size  # virtual time of the current life's start
        self.reports: list[core_api.ReportTimes] = [core_api.ReportTimes() for _ in range(size)]
        # Each node's true load at its last tick and the measures since: what
        # its sampler averages over (the CPU time of the interval), not the load
        # of the instant.
        self.measured: list[list[tuple[float, float]]] = [[] for _ in range(size)]
        self.now = 0.0
        self.events = 0
        self.trace = hashlib.blake2b(digest_size=16) if trace else None
        self.queue.push(self.loads.model.step, LOAD_STEP, -1)
        self.reference = reference
        # Best-node questions in flight: id -> (asker, its generation, question,
        # what to call with the answer); and the ids each asker waits on.
        self._questions: dict[int, tuple[int, int, Question, Callable[[int | None], None]]] = {}
        self._waiting: dict[int, list[int]] = {}
        self._question_ids = 0
        # reference 0 reads the loads of the moment: no snapshots to keep
        self.history = LoadHistory(reference) if reference else None
        if self.history is not None:
            self.queue.push(0.0, SNAPSHOT, -1)

    def random(self, label: str) -> random.Random:
        """A generator of its own for each purpose: adding draws to one leaves the others."""
        return random.Random(f"dsh-sim:{self.seed}:{label}")

    @property
    def size(self) -> int:
        return len(self.names)

    def live(self) -> list[int]:
        return [i for i, node in enumerate(self.nodes) if node is not None]

    def is_live(self, i: int) -> bool:
        return self.nodes[i] is not None

    def settled(self, i: int, since: float) -> bool:
        """Node ``i`` has been running for at least ``since`` seconds."""
        return self.now - self.started_at[i] >= since

    # -- life and death ----------------------------------------------------------

    def start(self, i: int | None = None) -> None:
        """Start node ``i`` (all nodes without one), each at a random phase."""
        for j in range(self.size) if i is None else (i,):
            if self.nodes[j] is None:
                self._start(j)

    def _start(self, i: int) -> None:
        c = self.config
        self.lives[i] += 1
        self.generation[i] += 1
        # A restart's incarnation is its start time in ms, as dshd's is; +lives keeps
        # two lives in one virtual millisecond apart.
        incarnation = EPOCH_MS + int(self.now * 1000) + self.lives[i]
        rng = self.random(f"node:{i}:{self.lives[i]}")
        self.started_at[i] = self.now
        truth = None if self.reference is None else self._reference_load
        self.nodes[i] = core_api.new_node(
            self.specs, self.names[i], self.shared, c, incarnation, rng, truth
        )
        self.reports[i].new_life(incarnation)
        self.measured[i] = []
        g = self.generation[i]
        self.queue.push(self.now + self.rng.uniform(0, c.interval), TICK, i, b"", g)
        self.queue.push(self.now + self.rng.uniform(0, c.interval / 4), POLL, i, b"", g)

    def crash(self, i: int) -> None:
        """Stop node ``i`` without a word (SIGKILL, a power cut)."""
        self.nodes[i] = None
        self.started_at[i] = NEVER
        self.generation[i] += 1
        self.lag[i] = 0.0
        self.stalled_until[i] = 0.0

    def leave(self, i: int) -> None:
        """Stop node ``i`` as SIGTERM does: its leave datagrams go out, then it is gone."""
        node = self.nodes[i]
        if node is not None:
            self._send(i, node.leave(self.now, self._wall_ms()))
        self.crash(i)

    def restart(self, i: int) -> None:
        self.crash(i)
        self._start(i)

    def slow(self, i: int, lag: float) -> None:
        """From now on node ``i`` stalls ``lag`` seconds at every tick (0: no longer)."""
        self.lag[i] = lag

    # -- asking the nodes ----------------------------------------------------------

    def member_state(self, observer: int, member: int) -> str:
        node = self.nodes[observer]
        assert node is not None, f"{self.names[observer]} is not running"
        return node.member_state(self.names[member], self.now)

    def best(self, asker: int) -> int | None:
        """Ask ``asker`` for the best node; place a job there as dsh would."""
        node = self.nodes[asker]
        assert node is not None
        name = node.best(self.now)
        if name is None:
            return None
        return self._place_job(name)

    def ask(self, asker: int, done: Callable[[int | None], None]) -> None:
        """Ask ``asker`` for the best node as dshd's best-node port does: its
        question goes out on the network, and ``done`` gets the node (a job
        placed there) when every bid is in or ASK_TIMEOUT has passed; at once
        where the node asks nobody."""
        node = self.nodes[asker]
        assert node is not None
        question = node.ask(self.now, self._wall_ms())
        if question is None:
            done(self.best(asker))
            return
        self._question_ids += 1
        qid = self._question_ids
        self._questions[qid] = (asker, self.generation[asker], question, done)
        self._waiting.setdefault(asker, []).append(qid)
        self._send(asker, question.datagrams)
        self.queue.push(self.now + ASK_AGAIN_AFTER, ASK_AGAIN, asker, b"", qid)
        self.queue.push(self.now + ASK_TIMEOUT, ANSWER, asker, b"", qid)

    def _ask_again(self, asker: int, qid: int) -> None:
        entry = self._questions.get(qid)
        if entry is None or self.nodes[asker] is None or entry[1] != self.generation[asker]:
            return  # answered already, or the asker crashed
        self._send(asker, entry[2].again())

    def _answer(self, qid: int) -> None:
        entry = self._questions.pop(qid, None)
        if entry is None:
            return  # answered when its last bid came
        asker, generation, question, done = entry
        waiting = self._waiting[asker]
        waiting.remove(qid)
        if not waiting:
            del self._waiting[asker]
        node = self.nodes[asker]
        if node is None or generation != self.generation[asker]:
            done(None)  # the asker crashed while it waited: dsh got no answer
            return
        name, out = node.answer(question, self.now, self._wall_ms())
        self._send(asker, out)
        if name is None:
            done(None)
            return
        done(self._place_job(name))

    def _place_job(self, name: str) -> int:
        """A job goes to ``name``; it loads the node JOB_START_DELAY later."""
        chosen = self.index[name]
        self.queue.push(self.now + JOB_START_DELAY, JOB_START, chosen)
        return chosen

    def _reference_load(self, name: str) -> float:
        """The yardstick's view of ``name``: its true load, ``reference`` s ago
        (its load now while the run, or the node, is younger than that)."""
        i = self.index[name]
        if self.history is not None:
            load = self.history.at(i, self.now)
            if load is not None:
                return load
        return self.loads.value(i, self.now)

    def report_age(self, observer: int, member: int) -> float | None:
        """How old the freshest load of ``member`` that ``observer`` holds is, in
        virtual seconds since ``member`` sampled it; None if it holds none of this life."""
        node = self.nodes[observer]
        assert node is not None
        order = core_api.held_order(node, self.names[member])
        if order is None:
            return None
        sampled_at = self.reports[member].time_of(order)
        return None if sampled_at is None else self.now - sampled_at

    # -- running -------------------------------------------------------------------

    def run_until(self, end: float) -> None:
        queue, heap = self.queue, self.queue.heap
        while heap and heap[0][0] <= end:
            at, _, kind, i, data, src = queue.pop()
            self.now = at
            self.events += 1
            if kind in (DELIVER, LATE):
                self._deliver(i, data, src, kind == LATE)
            elif kind == POLL:
                self._poll(i, src)
            elif kind in (TICK, RUN_TICK):
                self._tick(i, src, kind == RUN_TICK)
            elif kind in (ASK_AGAIN, ANSWER):
                if self.now < self.stalled_until[i]:  # its event loop is stuck
                    queue.push(self.stalled_until[i], kind, i, b"", src)
                elif kind == ASK_AGAIN:
                    self._ask_again(i, src)
                else:
                    self._answer(src)
            elif kind == JOB_START:
                self.loads.place_job(i, at)
            elif kind == SNAPSHOT:
                assert self.history is not None
                value = self.loads.value
                self.history.record(at, array("d", (value(j, at) for j in range(self.size))))
                queue.push(at + SNAPSHOT_EVERY, SNAPSHOT, -1)
            else:
                self.loads.advance(at)
                queue.push(at + self.loads.model.step, LOAD_STEP, -1)
        self.now = max(self.now, end)

    def _wall_ms(self) -> int:
        return EPOCH_MS + int(self.now * 1000)

    def _send(self, i: int, out: list[tuple[bytes, str]]) -> None:
        index, send, now = self.index, self.net.send, self.now
        for data, address in out:
            send(i, index[address], data, now)

    def _deliver(self, i: int, data: bytes, src: int, late: bool) -> None:
        node = self.nodes[i]
        if node is None:
            return  # nobody listening: lost, as on a real network
        if self.now < self.stalled_until[i]:
            self.queue.push(self.stalled_until[i], LATE, i, data, src)
            return
        if not late:
            self.net.delivered(i, data)
        if self.trace is not None:
            self.trace.update(struct.pack("!dii", self.now, src, i) + data)
        wall_ms = self._wall_ms()
        node.receive(data, self.names[src], self.now, wall_ms)
        self._send(i, node.flush(self.now, wall_ms))
        if i in self._waiting:  # a bid for one of its questions, maybe the last
            for qid in list(self._waiting[i]):
                if self._questions[qid][2].complete:
                    self._answer(qid)

    def _poll(self, i: int, generation: int) -> None:
        node = self.nodes[i]
        if node is None or generation != self.generation[i]:
            return
        interval = self.config.interval / 4
        if self.now < self.stalled_until[i]:
            # a stalled event loop runs its overdue timer once, when the stall ends
            self.queue.push(self.stalled_until[i] + interval, POLL, i, b"", generation)
            return
        trace = self.measured[i]
        if trace and self.now - trace[-1][0] >= MIN_WINDOW:
            v0, v = trace[-1][1], self.loads.value(i, self.now)
            trace.append((self.now, v))
            node.refresh((v0 + v) / 2, self.now)  # the mean since, as the sampler measures
        self._send(i, node.poll(self.now, self._wall_ms()))
        self.queue.push(self.now + interval, POLL, i, b"", generation)

    def _tick(self, i: int, generation: int, stalled: bool) -> None:
        node = self.nodes[i]
        if node is None or generation != self.generation[i]:
            return
        lag = self.lag[i]
        if lag > 0 and not stalled:
            # The tick starts, then the node hangs (a slow /proc read, swapping):
            # it sends after the stall, and reads nothing meanwhile.
            self.stalled_until[i] = self.now + lag
            self.queue.push(self.now + lag, RUN_TICK, i, b"", generation)
            return
        c = self.config
        now_load = self.loads.value(i, self.now)
        trace = self.measured[i]
        trace.append((self.now, now_load))
        load = _mean(trace)
        self.measured[i] = [(self.now, now_load)]
        sample = Sample(c.ncpu, load, load, c.mem_avail, c.mem_total, USAGE)
        self._send(i, node.tick(sample, self.now, self._wall_ms()))
        self.reports[i].note(node, self.now)
        self.queue.push(self.now + c.interval * self.rng.uniform(1 - c.jitter, 1 + c.jitter),
                        TICK, i, b"", generation)  # fmt: skip

    def digest(self) -> str:
        """What the run delivered, when, to whom (``trace=True``): equal runs, equal digests."""
        assert self.trace is not None, "SimCluster(trace=True) records the trace"
        return self.trace.hexdigest()
