"""The status table of the status port, formatted for people, awk and dsh (which
reads it with picker.parse_status, without importing this module).

Format (documented in README.md, "The status port")::

    # name  state  load  cpus  freemem  loadscale  memscale  score  age  load1  extra
    <one line per cluster member, whitespace-separated, '-' for unknown>
    # self NAME
    # <more '#' lines: version, settings, counters>

Columns after ``age`` may be added in later versions; existing ones never move.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .gossip import StatusRow

COLUMNS = (
    "name", "state", "load", "cpus", "freemem", "loadscale", "memscale",
    "score", "age", "load1", "extra",
)  # fmt: skip
MIB = 1024 * 1024


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _cells(row: StatusRow) -> list[str]:
    return [
        row.name,
        row.state,
        _num(row.load),
        "-" if row.ncpu is None else str(row.ncpu),
        "-" if row.mem_avail is None else str(row.mem_avail // MIB),
        _num(row.loadscale),
        _num(row.memscale),
        _num(row.score, 3),
        _num(row.age, 1),
        _num(row.load1),
        _num(row.extra),
    ]


def format_status(
    rows: Iterable[StatusRow], comments: Iterable[str], counters: Mapping[str, Mapping[str, int]]
) -> str:
    """The whole answer of the status port, aligned for telnet, split for awk."""
    table = [["# " + COLUMNS[0], *COLUMNS[1:]]] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in table
    ]
    lines += [f"# {c}" for c in comments]
    for group, values in counters.items():
        lines.append(f"# {group} " + " ".join(f"{k}={v}" for k, v in values.items()))
    return "\n".join(lines) + "\n"
