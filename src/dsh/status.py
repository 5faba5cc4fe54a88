"""The status table of the status port: formatting for people and awk, parsing for dsh.

Format (documented in README.md, "The status port")::

    # name  state  load  cpus  freemem  loadscale  memscale  score  age  load1  extra
    <one line per cluster member, whitespace-separated, '-' for unknown>
    # self NAME
    # <more '#' lines: version, settings, counters>

Columns after ``age`` may be added in later versions; existing ones never move.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

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


@dataclass(frozen=True)
class NodeLine:
    """One member as dsh reads it from the status port."""

    name: str
    state: str
    cpus: int | None
    score: float | None


@dataclass(frozen=True)
class ClusterStatus:
    self_name: str | None
    nodes: tuple[NodeLine, ...]

    def candidates(self) -> list[NodeLine]:
        """Nodes that can take a job, best first."""
        up = [n for n in self.nodes if n.state == "up" and n.score is not None]
        return sorted(up, key=lambda n: n.score or 0.0)

    def slots(self) -> int:
        return sum(n.cpus or 0 for n in self.nodes if n.state == "up")


def _opt(text: str, kind: type[int] | type[float]) -> int | float | None:
    try:
        return None if text == "-" else kind(text)
    except ValueError:
        return None


def parse_status(text: str) -> ClusterStatus:
    self_name = None
    nodes = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "#":
            if len(fields) == 3 and fields[1] == "self":
                self_name = fields[2]
            continue
        if fields[0].startswith("#") or len(fields) < 8:
            continue
        cpus = _opt(fields[3], int)
        score = _opt(fields[7], float)
        nodes.append(NodeLine(fields[0], fields[1], int(cpus) if cpus is not None else None, score))
    return ClusterStatus(self_name, tuple(nodes))
