"""From /api/view and /api/history to what a chart draws: pure, no matplotlib.

Each chart gets its times, a line per node (its fields added up, in the
chart's unit: percent for CPU shares) in the cluster file's order with the
node's colour, and the cluster's line: the average or the sum of the nodes'
known values at each time (unknown where no node is known). Anything that
is not the shape the API documents is a ValueError naming what is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MAX_POINTS = 300  # per chart: a PNG a few hundred pixels wide needs no more
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True)
class Line:
    label: str
    colour: str
    values: list[float | None]  # in the chart's unit, one per time


@dataclass(frozen=True)
class ChartData:
    name: str
    title: str
    unit: str  # core/charts.py UNITS
    aggregate: str  # "avg" or "sum"
    top: float | None  # the y axis's top (chart unit); None: auto
    times: list[float]
    nodes: list[Line]
    total: Line


def seconds(text: str) -> float:
    """``--since``: 90, 90s, 10m, 2h, 1d; ValueError otherwise."""
    number, unit = (text[:-1], text[-1]) if text[-1:].isalpha() else (text, "s")
    if unit.lower() not in _UNITS:
        raise ValueError(f"{text!r} is not a time like 90s, 10m or 2h")
    try:
        value = float(number) * _UNITS[unit.lower()]
    except ValueError:
        raise ValueError(f"{text!r} is not a time like 90s, 10m or 2h") from None
    if not 0 < value < math.inf:
        raise ValueError(f"{text!r} is not a time above 0")
    return value


def size(text: str) -> tuple[int, int]:
    """``--size WxH`` in pixels; ValueError otherwise."""
    w, x, h = text.lower().partition("x")
    if not (x and w.isdigit() and h.isdigit() and 100 <= int(w) <= 20000
            and 100 <= int(h) <= 20000):  # fmt: skip
        raise ValueError(f"{text!r} is not WIDTHxHEIGHT in pixels (100-20000 each)")
    return int(w), int(h)


def step(since: float, interval: float) -> float:
    """The step that keeps a chart at most MAX_POINTS points (never below the interval)."""
    return round(max(interval, since / MAX_POINTS), 3)


def as_list(value: object, what: str) -> list[object]:
    if not isinstance(value, list):
        raise ValueError(f"{what} is not a list")
    return value


def as_dict(value: object, what: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not an object")
    return value


def number(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} is not a number")
    return float(value)


def fields(view: Mapping[str, object]) -> list[str]:
    """Every history field the view's charts need, in order, once."""
    out: list[str] = []
    for k, chart in enumerate(as_list(view.get("charts"), "charts")):
        for f in as_list(as_dict(chart, f"chart {k}").get("fields"), f"chart {k}'s fields"):
            if not isinstance(f, str):
                raise ValueError(f"chart {k}'s fields are not names")
            if f not in out:
                out.append(f)
    return out


def node_order(view: Mapping[str, object], history_nodes: Sequence[str]) -> list[str]:
    """The cluster file's order (what the colours follow), then any other node by name."""
    known = [n for n in as_list(view.get("nodes", []), "nodes") if isinstance(n, str)]
    return [n for n in known if n in history_nodes] + sorted(
        n for n in history_nodes if n not in known
    )


def _aggregate(kind: str, lines: list[Line], count: int) -> list[float | None]:
    out: list[float | None] = []
    for i in range(count):
        known = [v for line in lines if (v := line.values[i]) is not None]
        out.append(None if not known else sum(known) / len(known) if kind == "avg" else sum(known))
    return out


def prepare(view: Mapping[str, object], history: Mapping[str, object]) -> list[ChartData]:
    """The charts of ``view`` (GET /api/view) filled from ``history`` (GET /api/history)."""
    times = [number(t, "a time") for t in as_list(history.get("times"), "times")]
    if any(t is None for t in times):
        raise ValueError("a time is null")
    ts = [t for t in times if t is not None]
    by_node = as_dict(history.get("nodes"), "nodes")
    colours = as_dict(view.get("colours", {}), "colours")
    aggregate_colour = view.get("aggregate_colour", "#000000")
    names = node_order(view, list(by_node))
    charts = []
    for k, raw in enumerate(as_list(view.get("charts"), "charts")):
        chart = as_dict(raw, f"chart {k}")
        factor = number(chart.get("factor", 1.0), "a factor") or 1.0
        kind = str(chart.get("aggregate"))
        if kind not in ("avg", "sum"):
            raise ValueError(f"chart {k}'s aggregate {kind!r} is not avg or sum")
        chart_fields = [str(f) for f in as_list(chart.get("fields"), f"chart {k}'s fields")]
        lines = []
        for name in names:
            columns = []
            node = as_dict(by_node[name], f"node {name}")
            for f in chart_fields:
                column = as_list(node.get(f, [None] * len(ts)), f"{name}'s {f}")
                if len(column) != len(ts):
                    raise ValueError(f"{name}'s {f} has {len(column)} values for {len(ts)} times")
                columns.append([number(v, f"{name}'s {f}") for v in column])
            values: list[float | None] = []
            for i in range(len(ts)):
                parts = [c[i] for c in columns]
                values.append(None if any(p is None for p in parts)
                              else sum(p for p in parts if p is not None) * factor)  # fmt: skip
            lines.append(Line(name, str(colours.get(name, "#808080")), values))
        total = Line("average" if kind == "avg" else "sum", str(aggregate_colour),
                     _aggregate(kind, lines, len(ts)))  # fmt: skip
        charts.append(ChartData(str(chart.get("name", "")), str(chart.get("title", "")),
                                str(chart.get("unit", "")), kind,
                                number(chart.get("max"), "a max"), ts, lines, total))  # fmt: skip
    return charts


def units(value: float) -> str:
    """dstat's units for rates and sizes: B, k, M, G, T (1024-based)."""
    for unit in ("B", "k", "M", "G"):
        if abs(value) < 1000:
            return f"{value:.1f}{unit}" if unit != "B" and abs(value) < 10 else f"{value:.0f}{unit}"
        value /= 1024
    return f"{value:.0f}T"
