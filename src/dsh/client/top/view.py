"""The table ``dsh top`` draws, as lines of styled text: pure, no terminal.

A line is a list of segments ``(text, style)``; a style is a space-separated
set of names: colours (red yellow green blue cyan magenta white) and
attributes (bold dim reverse underline). The curses screen (screen.py) and
the ANSI text of ``--once`` (``ansi``) map them; without colour the screen
keeps the attributes, the ANSI text keeps nothing.

dool's conventions (dool's ``cprint``): a percentage is 3 wide, its colour
the band it falls in, red below 34, yellow below 68, green below 100, white
at 100, plain at 0; a rate or an amount is 4 digits and a unit (B, K, M, G,
T: powers of 1024, as dstat and ``dool --bytes``), its colour the unit's
(B red, K yellow, M green, G blue), plain at 0.

At a narrow width, columns go in rank order (lowest first: the extras a wide
terminal shows, then swap, CPUs, memory used, jobs, ...) until the line
fits; what is left over widens the node names.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .rows import CLUSTER, Row, cluster_row, filter_rows, node_rows, sort_rows

COUNTED = ("up", "suspect", "drained", "down", "left")  # the title's counts, in this order

Segment = tuple[str, str]
Line = list[Segment]

BANDS = ("red", "yellow", "green")  # percentages: 1-33, 34-67, 68-99
UNIT_COLOURS = ("red", "yellow", "green", "blue", "cyan", "magenta")
UNITS = "BkMGTPE"  # dool's (and the page's, dsh plot's): k for 1024, as the issue spells it
SHORT = {"memory": "mem", "cpu %": "cpu"}  # group titles when the group is narrow
MIN_NAME = 6
START_NAME = 12  # the node column's width before columns are dropped for room


# -- one value -------------------------------------------------------------------------


def percent(value: float | None) -> Segment:
    if value is None:
        return "-", ""
    shown = round(value)
    if shown <= 0:
        return "0", ""
    if shown >= 100:
        return "100", "white bold"
    return str(shown), BANDS[min(len(BANDS) - 1, shown // 34)]  # the band of the number shown


def amount(value: float | None, width: int = 5) -> Segment:
    """``width - 1`` digits and a unit, as dool's dchg at base 1024."""
    if value is None:
        return "-", ""
    digits, unit = width - 1, 0
    text = str(round(value))
    while len(text) > digits and unit < len(UNITS) - 1:
        value /= 1024
        unit += 1
        text = str(round(value))
    if text == "0":
        return "0 ", ""
    return text + UNITS[unit], UNIT_COLOURS[min(unit, len(UNIT_COLOURS) - 1)]


def load(value: float | None) -> Segment:
    if value is None:
        return "-", ""
    if value < 9.995:
        return f"{value:.2f}", ""
    if value < 99.95:
        return f"{value:.1f}", ""
    return f"{value:.0f}", ""


def count(value: int | float | None) -> Segment:
    if value is None:
        return "-", ""
    return str(round(value)), ""


def jobs(value: int | None) -> Segment:
    if value is None:
        return "-", ""
    return str(value), "bold" if value else ""


def age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


GONE = ("down", "left")  # rows dimmed: their values are not the node's now


def state(row: Row) -> Segment:
    """Down red and left plain, both with the age of the last report (the row
    is dimmed); suspect yellow (live, its values its last report's)."""
    if row.name == CLUSTER and row.count != 1:
        return row.state, ""
    if row.state in GONE:
        text = row.state if row.age is None else f"{row.state} {age(row.age)}"
        return text, "red" if row.state == "down" else ""
    if row.state == "suspect":
        return "suspect", "yellow"
    if row.state == "drained":
        return "drain", "magenta"
    return row.state, ""


# -- the columns -----------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    key: str
    group: str
    title: str
    width: int  # the node column's is set by the layout
    rank: int  # who goes first when the line is too long (lowest); 0: never
    cell: Callable[[Row], Segment]
    left: bool = False


COLUMNS = (
    Column("name", "node", "node", 0, 0, lambda r: (r.name, ""), left=True),
    Column("state", "node", "state", 8, 0, state, left=True),
    Column("load", "load", "load", 5, 90, lambda r: load(r.load)),
    Column("load1", "load", "1m", 5, 4, lambda r: load(r.load1)),
    Column("cpus", "load", "cpus", 4, 40, lambda r: count(r.cpus)),
    Column("score", "load", "score", 5, 2, lambda r: load(r.score)),
    Column("usr", "cpu %", "usr", 3, 85, lambda r: percent(r.usr)),
    Column("sys", "cpu %", "sys", 3, 80, lambda r: percent(r.sys)),
    Column("idl", "cpu %", "idl", 3, 75, lambda r: percent(r.idl)),
    Column("wai", "cpu %", "wai", 3, 70, lambda r: percent(r.wai)),
    Column("used", "memory", "used", 5, 45, lambda r: amount(r.mem_used)),
    Column("avail", "memory", "avail", 5, 60, lambda r: amount(r.mem_avail)),
    Column("total", "memory", "total", 5, 5, lambda r: amount(r.mem_total)),
    Column("swap", "memory", "swap", 5, 30, lambda r: amount(r.swap_used)),
    Column("read", "disk", "read", 5, 66, lambda r: amount(r.disk_read)),
    Column("writ", "disk", "writ", 5, 65, lambda r: amount(r.disk_write)),
    Column("recv", "net", "recv", 5, 64, lambda r: amount(r.net_receive)),
    Column("send", "net", "send", 5, 63, lambda r: amount(r.net_transmit)),
    Column("jobs", "jobs", "jobs", 4, 50, lambda r: jobs(r.jobs_recent)),
    Column("all", "jobs", "all", 5, 3, lambda r: jobs(r.jobs)),
)


def line_width(columns: Sequence[Column], name_width: int) -> int:
    widths = [name_width if c.key == "name" else c.width for c in columns]
    return sum(widths) + len(widths) - 1


def layout(names: Sequence[str], width: int) -> tuple[list[Column], int]:
    """The columns that fit in ``width`` and the node column's width."""
    longest = max([len(CLUSTER), *(len(n) for n in names)])
    name_width = min(longest, START_NAME)
    columns = list(COLUMNS)
    while line_width(columns, name_width) > width:
        droppable = [c for c in columns if c.rank]
        if not droppable:
            break
        columns.remove(min(droppable, key=lambda c: c.rank))
    excess = line_width(columns, name_width) - width
    if excess > 0:
        name_width = max(MIN_NAME, name_width - excess)
    else:
        name_width = min(longest, name_width - excess)
    return columns, name_width


def fit(text: str, width: int, left: bool) -> str:
    if len(text) > width:
        return text[: max(0, width - 1)] + "~" if width > 1 else text[:width]
    return text.ljust(width) if left else text.rjust(width)


def _sep(previous: Column | None, column: Column) -> Segment | None:
    if previous is None:
        return None
    return (" ", "") if previous.group == column.group else ("|", "blue")


def row_line(row: Row, columns: Sequence[Column], name_width: int, extra: str = "") -> Line:
    """One node's line; ``extra`` is added to every segment's style (dim, bold)."""
    line: Line = []
    previous = None
    for column in columns:
        sep = _sep(previous, column)
        if sep:
            line.append((sep[0], _join(sep[1], extra)))
        text, style = column.cell(row)
        width = name_width if column.key == "name" else column.width
        line.append((fit(text, width, column.left), _join(style, extra)))
        previous = column
    return line


def header_lines(columns: Sequence[Column], name_width: int) -> list[Line]:
    groups: list[tuple[str, int]] = []
    for column in columns:
        width = name_width if column.key == "name" else column.width
        if groups and groups[-1][0] == column.group:
            groups[-1] = (column.group, groups[-1][1] + 1 + width)
        else:
            groups.append((column.group, width))
    top: Line = []
    for i, (group, width) in enumerate(groups):
        if i:
            top.append((" ", ""))
        name = group if len(group) <= width else SHORT.get(group, group)[:width]
        top.append((name.center(width, "-"), "blue"))
    nicks: Line = []
    previous = None
    for column in columns:
        sep = _sep(previous, column)
        if sep:
            nicks.append(sep)
        width = name_width if column.key == "name" else column.width
        nicks.append((fit(column.title, width, column.left), "blue underline"))
        previous = column
    return [top, nicks]


def _join(*styles: str) -> str:
    return " ".join(s for s in styles if s)


# -- a frame ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    lines: list[Line]
    offset: int  # the first node row shown (clamped to what can scroll)
    body: int  # node rows on the screen
    shown: int  # nodes that pass the filter
    total: int


def render(
    data: Mapping[str, object] | None,
    width: int,
    height: int | None = None,
    *,
    sort: str = "name",
    filter: str = "",
    offset: int = 0,
    banner: str | None = None,
    prompt: str | None = None,
) -> Frame:
    """The whole screen (``height``: the live view) or every row (``--once``).

    The live view pins the title, the headers, the cluster row and the key
    line, and scrolls the node rows between them from ``offset``."""
    width = max(1, width)
    everyone = node_rows(data) if data is not None else []
    rows = sort_rows(filter_rows(everyone, filter), sort)
    columns, name_width = layout([r.name for r in everyone], width)
    title = (
        [(banner, "reverse red")]
        if banner
        else title_line(data, everyone, rows, sort, filter, width)
    )
    lines: list[Line] = [title, *header_lines(columns, name_width)]
    body = len(rows) if height is None else max(0, height - 5)
    offset = max(0, min(offset, len(rows) - body))
    for row in rows[offset : offset + body]:
        lines.append(row_line(row, columns, name_width, "dim" if row.state in GONE else ""))
    if height is not None:
        lines.extend([[]] * (body - min(body, len(rows) - offset)))
    lines.append(row_line(cluster_row(everyone), columns, name_width, "bold"))
    if height is not None:
        lines.append(key_line(prompt, offset, body, len(rows), sort))
        lines = lines[:height]
    return Frame([clip(line, width) for line in lines], offset, body, len(rows), len(everyone))


def title_line(data: Mapping[str, object] | None, everyone: Sequence[Row],
               rows: Sequence[Row], sort: str, filter: str, width: int) -> Line:  # fmt: skip
    """Who answered, the counts, the sort and filter; then, if there is room, the
    interval and the daemon's time."""
    if data is None:
        return [("dsh top: waiting for dshd", "bold")]
    states = [r.state for r in everyone]
    counts = ", ".join(f"{states.count(s)} {s}" for s in COUNTED if s in states)
    text = f"dsh top {data.get('self', '?')}: {len(everyone)} nodes" + (
        f", {counts}" if counts else ""
    )
    text += f"  sort {sort}"
    if filter:
        text += f"  filter {filter!r} ({len(rows)} of {len(everyone)})"
    extras = []
    interval = data.get("interval")
    if isinstance(interval, int | float) and not isinstance(interval, bool):
        extras.append(f"every {interval:g}s")
    when = data.get("time")
    if isinstance(when, int | float) and not isinstance(when, bool):
        try:
            extras.append(time.strftime("%H:%M:%S", time.localtime(when)))
        except (OverflowError, OSError, ValueError):
            pass
    for extra in extras:
        if len(text) + 2 + len(extra) <= width:
            text += "  " + extra
    return [(text, "bold")]


def key_line(prompt: str | None, offset: int, body: int, shown: int, sort: str) -> Line:
    if prompt is not None:
        return [(f"filter: {prompt}_", "reverse"), ("  Enter keeps it, Esc clears it", "")]
    text = f"q quit  s sort ({sort})  / filter"
    if shown > body:
        last = min(shown, offset + body)
        text += f"  arrows, PgUp/PgDn: rows {offset + 1 if body else 0}-{last} of {shown}"
    return [(text, "reverse")]


def clip(line: Line, width: int) -> Line:
    out: Line = []
    room = width
    for text, style in line:
        if room <= 0:
            break
        out.append((text[:room], style))
        room -= len(text[:room])
    return out


# -- as text ---------------------------------------------------------------------------

SGR = {"bold": "1", "dim": "2", "underline": "4", "reverse": "7", "red": "31", "green": "32",
       "yellow": "33", "blue": "34", "magenta": "35", "cyan": "36", "white": "37"}  # fmt: skip


def ansi(line: Line, color: bool) -> str:
    """A line as text, with SGR escapes when ``color``; trailing blanks dropped."""
    if not color:
        return "".join(text for text, _ in line).rstrip()
    out = []
    for text, style in line:
        codes = [SGR[s] for s in style.split() if s in SGR]
        out.append(f"\033[{';'.join(codes)}m{text}\033[0m" if codes and text else text)
    return "".join(out).rstrip()


def text(frame: Frame, color: bool = False) -> str:
    return "".join(ansi(line, color) + "\n" for line in frame.lines)
