"""Every node's recent states, as the daemon saw them at each of its ticks: a bounded ring.

What ``dsh top``, ``dsh plot`` and the live page draw. No I/O, no clock:
the daemon calls ``record`` at each tick with the wall time and its status
rows; ``since`` answers ``GET /api/history``.

Memory is fixed, not by how long dshd runs, nor (above FULL_NODES members)
by the cluster's size. Two tiers:

* fine: every tick for ``span`` seconds (an hour by default: 2,400 points at
  the 1.5 s interval);
* coarse: means over ``step`` seconds (5 minutes) for ``coarse_span`` (a
  day), made from the fine points as they come (a step is added when it
  ends); an answer takes them only for times before the fine tier's oldest.

Each point of a node is ``len(FIELDS)`` 32-bit floats in one ``array``
per node and tier (NaN where unknown: a node down, or of a release without
usage), so 100 nodes cost 100 x (2,400 + 288) x 16 x 4 bytes = 17.2 MB,
under the 20 MB the issue allows; ``nbytes`` tells the real figure. A float32
keeps 7 digits: enough for every quantity shown (bytes to 0.00001 %).

Above FULL_NODES members only every k-th tick is recorded, k = ceil(N / 32),
and both tiers hold k times fewer points (the coarse one at least 12): the
memory, and the status rows made for ``record``, stay those of 32 members.
A 10,000-node cluster's history is then a point per member every 7.8
minutes: what the coarse tier holds anyway. ``due`` says which ticks.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import accumulate

from .gossip import StatusRow
from .status import LIVE

# What is kept of a node per point. "state" is 0 down, 1 up, 2 drained,
# 3 suspect, 4 left (append-only: stored rings and the dashboards' value
# mappings, dashboards/panels.py UP_STATES, read these numbers);
# "jobs" is this daemon's count of best-node answers naming it, since start.
FIELDS = (
    "state", "load", "load1", "cpus", "mem_avail", "mem_total",
    "cpu_user", "cpu_system", "cpu_idle", "cpu_iowait",
    "disk_read", "disk_write", "net_receive", "net_transmit", "swap_used", "jobs",
)  # fmt: skip
_F = len(FIELDS)
# Decimals worth showing per field: what the datagram carries (loads in
# thousandths, CPU shares in 0.01 %), whole bytes and counts. Rounding to
# them also undoes float32's noise in the JSON (0.3 not 0.30000001192092896).
DIGITS = {"load": 3, "load1": 3, "cpu_user": 4, "cpu_system": 4, "cpu_idle": 4,
          "cpu_iowait": 4}  # fmt: skip
_STATES = {"down": 0.0, "up": 1.0, "drained": 2.0, "suspect": 3.0, "left": 4.0}
NAN = math.nan
FULL_NODES = 32  # members recorded at every tick; above, every k-th tick
MIN_COARSE = 12  # coarse points kept whatever the size: an hour at 5 minutes


def point(row: StatusRow, jobs: int) -> tuple[float, ...]:
    """One node's point from its status row (NaN for what is unknown)."""

    def num(value: float | None) -> float:
        return NAN if value is None else float(value)

    # A down or left node's last report is not its state now; a suspect one's
    # still is (it is a few seconds old, as anyone's may be under loss).
    known = row.state in LIVE
    u = row.usage if known else None
    return (
        _STATES.get(row.state, NAN),
        num(row.load) if known else NAN,
        num(row.load1) if known else NAN,
        num(row.ncpu) if known else NAN,
        num(row.mem_avail) if known else NAN,
        num(row.mem_total) if known else NAN,
        *((u.cpu_user, u.cpu_system, u.cpu_idle, u.cpu_iowait, u.disk_read, u.disk_write,
           u.net_receive, u.net_transmit, float(u.swap_used)) if u else (NAN,) * 9),
        float(jobs),
    )  # fmt: skip


class _Ring:
    """``capacity`` points: a time each (float64), and per node and field a float32."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.times = array("d", [NAN]) * capacity
        # Field-major (one array per node and field), so that a time range of
        # one field is a slice, copied at C speed.
        self.nodes: dict[str, list[array[float]]] = {}
        self.next = 0  # where the next point goes
        self.count = 0

    def add(self, t: float, points: Mapping[str, tuple[float, ...]]) -> None:
        i = self.next
        self.times[i] = t
        for name in points.keys() - self.nodes.keys():
            self.nodes[name] = [array("f", [NAN]) * self.capacity for _ in range(_F)]
        for name, columns in self.nodes.items():
            values = points.get(name, _UNKNOWN)
            for column, v in zip(columns, values, strict=True):
                column[i] = v
        self.next = (i + 1) % self.capacity
        self.count = min(self.count + 1, self.capacity)

    def spans(self) -> list[tuple[int, int]]:
        """The filled part as one or two [start, end) index ranges, oldest first."""
        start = (self.next - self.count) % self.capacity
        end = start + self.count
        if end <= self.capacity:
            return [(start, end)]
        return [(start, self.capacity), (0, end - self.capacity)]

    def forget(self, keep: set[str]) -> None:
        for name in [n for n in self.nodes if n not in keep]:
            del self.nodes[name]

    def resized(self, capacity: int) -> _Ring:
        """A ring of ``capacity`` points holding this one's newest."""
        new = _Ring(capacity)
        indices = [i for a, b in self.spans() for i in range(a, b)][-capacity:]
        pad = capacity - len(indices)
        for j, i in enumerate(indices):
            new.times[j] = self.times[i]
        for name, columns in self.nodes.items():
            new.nodes[name] = [array("f", (c[i] for i in indices)) + array("f", [NAN]) * pad
                               for c in columns]  # fmt: skip
        new.next, new.count = len(indices) % capacity, len(indices)
        return new

    @property
    def nbytes(self) -> int:
        per_node = _F * self.capacity * array("f").itemsize
        return self.times.itemsize * self.capacity + per_node * len(self.nodes)


_UNKNOWN = (NAN,) * _F


@dataclass(frozen=True)
class Series:
    """What ``since`` returns: times, oldest first, and per node and field a value per time."""

    times: list[float]
    nodes: dict[str, dict[str, list[float | int | None]]]  # name -> field -> values; None: unknown

    def as_json(self) -> dict[str, object]:
        return {"times": self.times, "nodes": self.nodes}


@dataclass(frozen=True)
class Window:
    """Raw values out of the rings (NaN unknown), private to whoever asked."""

    times: list[float]
    nodes: dict[str, dict[str, array[float]]]

    def series(self, step: float | None = None) -> Series:
        """Grouped by ``step`` seconds (means; ``jobs``: the last), rounded, None for unknown.

        The groups are runs of consecutive points, so each is a slice: one
        pass over a column, no indexing per value (this runs for every
        history request: 270,000 values for the page of a 100-node cluster)."""
        bounds = _bounds(self.times, step)
        out: dict[str, dict[str, list[float | int | None]]] = {}
        for name, fields in self.nodes.items():
            out[name] = {}
            for field_name, column in fields.items():
                values = column.tolist()
                if bounds is not None:
                    values = (_lasts if field_name == "jobs" else _means)(values, bounds)
                digits = DIGITS.get(field_name)
                out[name][field_name] = (
                    [None if v != v else round(v) for v in values]  # whole: an int
                    if digits is None
                    else [None if v != v else round(v, digits) for v in values]
                )
        times = self.times
        if bounds is not None:
            times = [sum(times[a:b]) / (b - a) for a, b in bounds]
        return Series([round(x, 3) for x in times], out)


class History:
    def __init__(self, interval: float, span: float = 3600.0, step: float = 300.0,
                 coarse_span: float = 86400.0) -> None:  # fmt: skip
        self.interval = interval
        self.span = span
        self.step = step
        self.coarse_span = coarse_span
        self.every = 1  # record every this many ticks (FULL_NODES)
        self._ticks = 0
        self.fine = _Ring(self._capacities(1)[0])
        self.coarse = _Ring(self._capacities(1)[1])
        self._bucket: float | None = None  # start of the coarse step being filled
        self._sums: dict[str, list[float]] = {}
        self._counts: dict[str, list[int]] = {}
        self._last: dict[str, tuple[float, ...]] = {}

    def _capacities(self, every: int) -> tuple[int, int]:
        coarse = math.ceil(self.coarse_span / self.step)
        return (max(2, math.ceil(self.span / (self.interval * every))),
                max(2, min(coarse, max(MIN_COARSE, math.ceil(coarse / every)))))  # fmt: skip

    def due(self, members: int) -> bool:
        """Whether this tick is to be recorded, in a cluster of ``members``: every
        tick up to FULL_NODES, every k-th above (k = ceil(members / FULL_NODES))."""
        every = max(1, math.ceil(members / FULL_NODES))
        if every != self.every:  # the cluster grew or shrank past a multiple of 32
            self.every = every
            fine, coarse = self._capacities(every)
            self.fine = self.fine.resized(fine)
            self.coarse = self.coarse.resized(coarse)
            self._ticks = 0
        self._ticks += 1
        return (self._ticks - 1) % every == 0

    def record(self, t: float, rows: Iterable[StatusRow], jobs: Mapping[str, int]) -> None:
        """The points of one tick at wall time ``t``."""
        points = {r.name: point(r, jobs.get(r.name, 0)) for r in rows}
        self.fine.add(t, points)
        self._fold(t, points)

    def forget(self, names: Iterable[str]) -> None:
        """Keep only these nodes (after a cluster-file reload)."""
        keep = set(names)
        self.fine.forget(keep)
        self.coarse.forget(keep)
        # and from the coarse step being filled, or closing it would bring them back
        for table in (self._sums, self._counts, self._last):
            for name in [n for n in table if n not in keep]:
                del table[name]

    def _fold(self, t: float, points: Mapping[str, tuple[float, ...]]) -> None:
        """Add a fine point to its coarse step's means; close the step when it is over."""
        bucket = t - t % self.step
        if self._bucket is not None and bucket != self._bucket:
            means = {}
            for name, sums in self._sums.items():
                counts = self._counts[name]
                means[name] = tuple(s / c if c else NAN for s, c in zip(sums, counts, strict=True))
                # jobs is a count since start: the step's last value, not a mean
                means[name] = (*means[name][:-1], self._last[name][-1])
            self.coarse.add(self._bucket + self.step / 2, means)
            self._sums, self._counts = {}, {}
        self._bucket = bucket
        for name, values in points.items():
            sums = self._sums.setdefault(name, [0.0] * _F)
            counts = self._counts.setdefault(name, [0] * _F)
            for k, v in enumerate(values):
                if v == v:  # not NaN
                    sums[k] += v
                    counts[k] += 1
            self._last[name] = values

    def since(self, t: float, *, step: float | None = None,
              fields: Iterable[str] | None = None,
              names: Iterable[str] | None = None) -> Series:  # fmt: skip
        """Every point after wall time ``t``: the coarse ones older than the fine
        window, then the fine ones; with ``step``, means over steps of that many
        seconds (what a chart a few hundred pixels wide needs, not 2,400 points).
        An unknown field is a ValueError."""
        return self.window(t, fields=fields, names=names).series(step)

    def window(self, t: float, *, fields: Iterable[str] | None = None,
               names: Iterable[str] | None = None) -> Window:  # fmt: skip
        """The raw values of ``since``: copied out of the rings at C speed, so that
        the daemon can make the Series of it in another thread."""
        columns = [FIELDS.index(f) for f in (fields or FIELDS)]
        wanted = None if names is None else set(names)
        fine = _after(self.fine, t, math.inf)
        oldest_fine = self.fine.times[fine[0][0]] if fine else math.inf
        coarse = _after(self.coarse, t, oldest_fine)
        parts = [(self.coarse, a, b) for a, b in coarse] + [(self.fine, a, b) for a, b in fine]
        times = [x for ring, a, b in parts for x in ring.times[a:b]]
        nodes: dict[str, dict[str, array[float]]] = {}
        for name in sorted(self.fine.nodes.keys() | self.coarse.nodes.keys()):
            if wanted is not None and name not in wanted:
                continue
            nodes[name] = {}
            for c in columns:
                values = array("f")
                for ring, a, b in parts:  # array slices: memcpy, not a float object each
                    node = ring.nodes.get(name)
                    values += node[c][a:b] if node is not None else array("f", [NAN]) * (b - a)
                nodes[name][FIELDS[c]] = values
        return Window(times, nodes)

    @property
    def nbytes(self) -> int:
        """What the points take, in bytes (the rings' arrays)."""
        return self.fine.nbytes + self.coarse.nbytes


def _after(ring: _Ring, t: float, before: float) -> list[tuple[int, int]]:
    """The ring's index ranges with times in (t, before), oldest first (times only grow)."""
    out = []
    for a, b in ring.spans():
        while a < b and not ring.times[a] > t:
            a += 1
        while b > a and not ring.times[b - 1] < before:
            b -= 1
        if a < b:
            out.append((a, b))
    return out


def _bounds(times: list[float], step: float | None) -> list[tuple[int, int]] | None:
    """[start, end) index ranges of ``times`` by ``step`` seconds; None: no grouping."""
    if not step:
        return None
    bounds: list[tuple[int, int]] = []
    start, current = 0, None
    for k, t in enumerate(times):
        bucket = t // step
        if bucket != current:
            if k:
                bounds.append((start, k))
            start, current = k, bucket
    if times:
        bounds.append((start, len(times)))
    return bounds


def _means(values: list[float], bounds: list[tuple[int, int]]) -> list[float]:
    """The mean of the known values (NaN: unknown) in each range; NaN for none.

    By prefix sums: two passes over the values, one over the ranges, and no
    call per range (a call per range doubled the time of a page's request)."""
    sums = [0.0, *accumulate(v if v == v else 0.0 for v in values)]
    counts = [0, *accumulate(v == v for v in values)]
    return [(sums[b] - sums[a]) / (counts[b] - counts[a]) if counts[b] > counts[a] else NAN
            for a, b in bounds]  # fmt: skip


def _lasts(values: list[float], bounds: list[tuple[int, int]]) -> list[float]:
    """The last known value in each range: for a count since start (jobs)."""
    out = []
    for a, b in bounds:
        last = NAN
        for v in reversed(values[a:b]):
            if v == v:
                last = v
                break
        out.append(last)
    return out
