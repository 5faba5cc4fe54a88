"""The strip charts that ``dsh plot`` and the live page draw, and the ``[view]`` section.

cstat's eight charts by default, in its order: User, Sys, Idle and Wait CPU
(one line per node and the cluster's average), Disk Read and Write, Net In
and Out (one line per node and the cluster's sum). A chart is a title, the
history fields it shows (core/history.py ``FIELDS``; several are added up per
node), its aggregate, its unit and its y scale (a fixed maximum or auto).

A node's colour comes from its position in the cluster file, so that it is
the same in every chart and for everyone who looks, on any node. The
``[view]`` section of dshd's config file (parsed here; conf.py hands over its
lines) chooses the charts, their order, their scales and the colours, with
cstat's two keys:

    [view]
    charts = usr sys idle wait read:200M writ:200M in out
    charts = "Net In" in 8 {0.0 100.0 50.0} 1048576 sum     cstat's own chart line
    colours = red green blue                                 by cluster-file position
    colours = node7=orange node8=#00aa88                     or by name

``charts`` names charts (cstat's short names, or dsh's field names) with an
optional ``:MAX`` (``auto``, or a number in the chart's unit: percent, or
bytes/s with k/M/G, 1024-based as dstat's); a line in cstat's form (title,
name, dstat's column, ``{min max tick}``, divisor, ``average|sum``) sets that
chart's title, maximum (max x divisor) and aggregate. Both keys may be
repeated: each line adds to the list, as cstat's multi-line lists do. No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from ..errors import ConfigFileError

PERCENT = "percent"  # a share 0..1 in the history, drawn as 0..100
RATE = "bytes/s"
BYTES = "bytes"
NUMBER = ""  # a plain number (load)
UNITS = (PERCENT, RATE, BYTES, NUMBER)
AGGREGATES = ("avg", "sum")
_CSTAT_AGGREGATES = {"average": "avg", "avg": "avg", "sum": "sum"}
# Multipliers of 1024, as dstat and dool show rates (B, k, M, G).
SUFFIXES = {"": 1.0, "b": 1.0, "k": 1024.0, "m": 1024.0**2, "g": 1024.0**3, "t": 1024.0**4}


@dataclass(frozen=True)
class Chart:
    name: str  # cstat's short name: what [view] calls it
    title: str
    fields: tuple[str, ...]  # history FIELDS, added up per node
    aggregate: str  # "avg" or "sum": the cluster's line
    unit: str  # one of UNITS
    max: float | None = None  # the y axis's top in the chart's unit (percent: 100); None: auto

    @property
    def factor(self) -> float:
        """From the history's value to the chart's unit (a share to percent)."""
        return 100.0 if self.unit == PERCENT else 1.0

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "title": self.title, "fields": list(self.fields),
                "aggregate": self.aggregate, "unit": self.unit, "factor": self.factor,
                "max": self.max}  # fmt: skip


# Every chart [view] can name; the first eight are cstat's, the defaults.
CHARTS: dict[str, Chart] = {
    c.name: c
    for c in (
        Chart("usr", "User CPU", ("cpu_user",), "avg", PERCENT, 100.0),
        Chart("sys", "Sys CPU", ("cpu_system",), "avg", PERCENT, 100.0),
        Chart("idle", "Idle CPU", ("cpu_idle",), "avg", PERCENT, 100.0),
        Chart("wait", "Wait CPU", ("cpu_iowait",), "avg", PERCENT, 100.0),
        Chart("read", "Disk Read", ("disk_read",), "sum", RATE),
        Chart("writ", "Disk Write", ("disk_write",), "sum", RATE),
        Chart("in", "Net In", ("net_receive",), "sum", RATE),
        Chart("out", "Net Out", ("net_transmit",), "sum", RATE),
        Chart("load", "Load", ("load",), "avg", NUMBER),
        Chart("swap", "Swap Used", ("swap_used",), "sum", BYTES),
        Chart("busy", "Busy CPU", ("cpu_user", "cpu_system", "cpu_iowait"), "avg", PERCENT, 100),
    )
}
DEFAULT_CHARTS = ("usr", "sys", "idle", "wait", "read", "writ", "in", "out")
# The same charts by dsh's field names (and dool's words), for who does not know cstat.
ALIASES = {"cpu_user": "usr", "user": "usr", "cpu_system": "sys", "system": "sys",
           "cpu_idle": "idle", "cpu_iowait": "wait", "iowait": "wait", "disk_read": "read",
           "disk_write": "writ", "write": "writ", "net_receive": "in", "recv": "in",
           "net_transmit": "out", "send": "out", "swap_used": "swap"}  # fmt: skip

# Matplotlib's "tab10" then its light partners: told apart on white, also in
# print; a cluster larger than the palette reuses it in order.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896",
           "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5")  # fmt: skip
AGGREGATE_COLOUR = "#000000"  # the cluster's line: black, drawn wider

_CSS_NAMES = """
aliceblue antiquewhite aqua aquamarine azure beige bisque black blanchedalmond blue blueviolet
brown burlywood cadetblue chartreuse chocolate coral cornflowerblue cornsilk crimson cyan darkblue
darkcyan darkgoldenrod darkgray darkgreen darkgrey darkkhaki darkmagenta darkolivegreen darkorange
darkorchid darkred darksalmon darkseagreen darkslateblue darkslategray darkslategrey darkturquoise
darkviolet deeppink deepskyblue dimgray dimgrey dodgerblue firebrick floralwhite forestgreen
fuchsia gainsboro ghostwhite gold goldenrod gray green greenyellow grey honeydew hotpink indianred
indigo ivory khaki lavender lavenderblush lawngreen lemonchiffon lightblue lightcoral lightcyan
lightgoldenrodyellow lightgray lightgreen lightgrey lightpink lightsalmon lightseagreen
lightskyblue lightslategray lightslategrey lightsteelblue lightyellow lime limegreen linen magenta
maroon mediumaquamarine mediumblue mediumorchid mediumpurple mediumseagreen mediumslateblue
mediumspringgreen mediumturquoise mediumvioletred midnightblue mintcream mistyrose moccasin
navajowhite navy oldlace olive olivedrab orange orangered orchid palegoldenrod palegreen
paleturquoise palevioletred papayawhip peachpuff peru pink plum powderblue purple rebeccapurple
red rosybrown royalblue saddlebrown salmon sandybrown seagreen seashell sienna silver skyblue
slateblue slategray slategrey snow springgreen steelblue tan teal thistle tomato turquoise violet
wheat white whitesmoke yellow yellowgreen
"""
# CSS's named colours (the same 148 that matplotlib knows as CSS4): a colour
# must mean the same on the page and in the PNG.
CSS_COLOURS = frozenset(_CSS_NAMES.split())
_HEX = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
# cstat's chart line: "Title" name column {min max tick} divisor average|sum
_WORD = re.compile(r'"([^"]*)"|\{([^}]*)\}|(\S+)')


@dataclass(frozen=True)
class ViewConf:
    charts: tuple[Chart, ...] = tuple(CHARTS[n] for n in DEFAULT_CHARTS)
    palette: tuple[str, ...] = ()  # colours by cluster-file position; () the default PALETTE
    node_colours: dict[str, str] = field(default_factory=dict)  # by name, over the palette

    def colours(self, nodes: Sequence[str]) -> dict[str, str]:
        """Each node's colour, given the nodes in cluster-file order."""
        palette = self.palette or PALETTE
        named = {k.lower(): v for k, v in self.node_colours.items()}
        return {n: named.get(n.lower(), palette[i % len(palette)]) for i, n in enumerate(nodes)}

    def as_json(self, nodes: Sequence[str]) -> dict[str, object]:
        """What ``GET /api/view`` answers (with the daemon's own head)."""
        return {"charts": [c.as_json() for c in self.charts], "nodes": list(nodes),
                "colours": self.colours(nodes), "aggregate_colour": AGGREGATE_COLOUR}  # fmt: skip


def colour(text: str, filename: str, lineno: int) -> str:
    """A CSS colour name (lower-cased) or #rgb / #rrggbb; else a ConfigFileError."""
    if _HEX.fullmatch(text):
        return text.lower()
    if text.lower() in CSS_COLOURS:
        return text.lower()
    raise ConfigFileError(filename, lineno, f"{text!r} is not a colour (a CSS name or #rrggbb)")


def _chart(name: str, filename: str, lineno: int) -> Chart:
    key = ALIASES.get(name.lower(), name.lower())
    chart = CHARTS.get(key)
    if chart is None:
        raise ConfigFileError(filename, lineno,
                              f"no chart {name!r} (charts: {', '.join(CHARTS)})")  # fmt: skip
    return chart


def _maximum(text: str, chart: Chart, filename: str, lineno: int) -> float | None:
    if text.lower() == "auto":
        return None
    match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]?)", text)
    suffix = match.group(2).lower() if match else ""
    if match is None or suffix not in SUFFIXES or (suffix and chart.unit in (PERCENT, NUMBER)):
        unit = "a number" if chart.unit in (PERCENT, NUMBER) else "a number with k, M or G"
        raise ConfigFileError(filename, lineno,
                              f"{chart.name}'s maximum {text!r} is not auto or {unit}")  # fmt: skip
    value = float(match.group(1)) * SUFFIXES[suffix]
    if value <= 0:
        raise ConfigFileError(filename, lineno, f"{chart.name}'s maximum must be above 0")
    return value


def _number(text: str, what: str, filename: str, lineno: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigFileError(filename, lineno, f"{what} {text!r} is not a number") from None


def _cstat_chart(words: list[tuple[str, bool]], filename: str, lineno: int) -> Chart:
    """cstat's line: "Title" name column {min max tick} divisor average|sum."""
    if len(words) != 6 or not words[3][1]:
        raise ConfigFileError(filename, lineno,
                              'a cstat chart is: "Title" name column {min max tick} divisor'
                              " average|sum")  # fmt: skip
    (title, _), (name, _), _column, (limits, _), (divisor, _), (aggregate, _) = words
    chart = _chart(name, filename, lineno)
    parts = limits.split()
    if len(parts) != 3:
        raise ConfigFileError(filename, lineno, f"{{{limits}}} is not {{min max tick}}")
    top = _number(parts[1], "max", filename, lineno) * _number(divisor, "divisor", filename,
                                                                  lineno)  # fmt: skip
    if aggregate.lower() not in _CSTAT_AGGREGATES:
        raise ConfigFileError(filename, lineno, f"{aggregate!r} is not average or sum")
    if top <= 0:
        raise ConfigFileError(filename, lineno, f"{chart.name}'s maximum must be above 0")
    return replace(chart, title=" ".join(title.split()) or chart.title, max=top,
                   aggregate=_CSTAT_AGGREGATES[aggregate.lower()])  # fmt: skip


def _chart_line(value: str, filename: str, lineno: int) -> list[Chart]:
    # (the word, whether it was in braces)
    words = [(m.group(m.lastindex or 0), m.lastindex == 2) for m in _WORD.finditer(value)]
    if any(braced for _, braced in words) or value.lstrip().startswith('"'):
        return [_cstat_chart(words, filename, lineno)]
    charts = []
    for word in value.replace(",", " ").split():
        name, colon, top = word.partition(":")
        chart = _chart(name, filename, lineno)
        if colon:
            chart = replace(chart, max=_maximum(top, chart, filename, lineno))
        charts.append(chart)
    return charts


def _colour_line(value: str, filename: str, lineno: int, palette: list[str],
                 named: dict[str, str]) -> None:  # fmt: skip
    for word in value.replace(",", " ").split():
        node, eq, text = word.rpartition("=")
        if eq:
            if not node:
                raise ConfigFileError(filename, lineno, f"{word!r}: which node?")
            named[node] = colour(text, filename, lineno)
        else:
            palette.append(colour(text, filename, lineno))


def parse_view(items: Iterable[tuple[str, str, int]], filename: str) -> ViewConf:
    """The ``[view]`` section's (key, value, line) items, as conf.py's reader gives them."""
    charts: list[Chart] = []
    palette: list[str] = []
    named: dict[str, str] = {}
    first: dict[str, int] = {}  # chart name -> the line that named it
    for key, value, lineno in items:
        if not value.strip():
            raise ConfigFileError(filename, lineno, f"{key} has no value")
        if key == "charts":
            for chart in _chart_line(value, filename, lineno):
                if chart.name in first:
                    raise ConfigFileError(filename, lineno, f"chart {chart.name!r} given twice"
                                          f" (first on line {first[chart.name]})")  # fmt: skip
                first[chart.name] = lineno
                charts.append(chart)
        elif key in ("colours", "colors"):
            _colour_line(value, filename, lineno, palette, named)
        else:
            takes = "it takes: charts, colours"
            raise ConfigFileError(filename, lineno, f"[view] has no setting {key!r} ({takes})")
    return ViewConf(tuple(charts) or ViewConf().charts, tuple(palette), named)
