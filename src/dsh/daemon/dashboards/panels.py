"""What a panel of dshd's Grafana dashboards is, and what the two sets share:
prometheus.py and graphite.py each give the rows of
panels of the cluster and the node dashboard, top to bottom (a row's widths
add up to at most 24, Grafana's grid); model.py lays them out and writes
Grafana's JSON. Both sets show the same things where both sources have them,
each in its own terms.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Query:
    text: str  # PromQL expr or Graphite target
    legend: str = ""  # Prometheus legendFormat ("" = Grafana's auto); Graphite names by aliasByNode


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str  # "timeseries", "stat", "state-timeline", "bargauge"
    queries: tuple[Query, ...]
    unit: str  # a Grafana unit id (its valueFormats/categories.ts)
    width: int  # grid columns of 24
    height: int = 8
    description: str = ""
    stack: bool = False
    minimum: float | None = None
    maximum: float | None = None
    below: str = ""  # regex of series names drawn below the axis (writes, transmits)
    states: tuple[tuple[str, str, str], ...] = ()  # (value, text, colour) of a state series
    thresholds: tuple[tuple[float, str], ...] = ()  # (from value, colour) above green


Rows = list[list[Panel]]

# The membership states by core/history.py's numbers (append-only; the
# cluster dashboard's state query makes the same ones from dsh_node_state).
UP_STATES = (("0", "down", "red"), ("1", "up", "green"), ("2", "drained", "orange"),
             ("3", "suspect", "yellow"), ("4", "left", "#8e8e8e"))  # fmt: skip
SENSOR_STATES = (("0", "failing", "red"), ("1", "ok", "green"))
REPORT_STATES = (("0", "silent", "red"), ("1", "reporting", "green"))
FULL = ((0.8, "orange"), (0.9, "red"))  # of a share 0..1
FULL_PERCENT = ((80.0, "orange"), (90.0, "red"))
BUSY_MODES = "user,nice,system,iowait,irq,softirq,steal"  # CPUTimes modes but idle (and guest:
# Linux counts guest time in user already)
STAT_HEIGHT = 4


def qs(*texts: str | tuple[str, str]) -> tuple[Query, ...]:
    """Queries: a text, or (PromQL, legend)."""
    return tuple(Query(*t) if isinstance(t, tuple) else Query(t) for t in texts)


def stat(
    title: str,
    unit: str,
    query: str,
    width: int = 4,
    description: str = "",
    thresholds: tuple[tuple[float, str], ...] = (),
) -> Panel:
    return Panel(
        title,
        "stat",
        qs(query),
        unit,
        width,
        STAT_HEIGHT,
        description=description,
        thresholds=thresholds,
    )


# The node dashboard's panels that both data sources draw alike: the frame (title,
# kind, unit, width, axis) is here once; each source gives the queries.


def cpu_busy_per_core(queries: tuple[Query, ...]) -> Panel:
    return Panel("CPU busy per core", "timeseries", queries, "percentunit", 12, minimum=0,
                 maximum=1)  # fmt: skip


def cpu_by_mode(queries: tuple[Query, ...]) -> Panel:
    return Panel("CPU by mode", "timeseries", queries, "percentunit", 12, stack=True, minimum=0,
                 maximum=1, description="share of all CPUs")  # fmt: skip


def load(queries: tuple[Query, ...]) -> Panel:
    return Panel("Load", "timeseries", queries, "short", 12, minimum=0)


def both_ways(title: str, queries: tuple[Query, ...], unit: str, width: int, lower: str) -> Panel:
    """Two directions, ``lower`` (the series whose names end so) below the axis."""
    return Panel(title, "timeseries", queries, unit, width, below=f".* {lower}$",
                 description=f"{lower}s below the axis")  # fmt: skip
