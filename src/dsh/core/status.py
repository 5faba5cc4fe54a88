"""The status table of the status port: its one owner. dshd writes it
(``format_status``), dsh reads it (``parse_status``), the tests read what
dshd wrote; all of them through ``COLUMNS``.

Format (documented in README.md, "The status port")::

    # name  state  load  cpus  freemem  loadscale  memscale  score  age  load1  extra
      user  sys  idle  iowait  diskr  diskw  netrx  nettx  swap  via
    <one line per cluster member, whitespace-separated, '-' for unknown>
    # self NAME
    # <more '#' lines: version, settings, counters>

Columns after ``age`` may be added in later versions; existing ones never move.

The states (``STATES``, README "The status port"): ``up``; ``drained`` (alive,
never chosen); ``suspect`` (alive as far as anyone knows, but some monitor has
no fresh news of it: never chosen until refuted); ``down``; ``left`` (stopped
cleanly). ``LIVE`` are those whose last report is taken as the node's state
now (displays count them, ``dsh -a`` and ``dsh ps`` ask them); only ``up``
nodes are placement candidates.

Rules of this file: dsh imports it on its fast path (once per compile), so
it imports nothing at run time (``StatusRow`` is the daemon's, named for
mypy only) and does without ``from __future__``.
"""

TYPE_CHECKING = False  # mypy knows this name; typing is not imported at run time
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from .gossip import StatusRow

COLUMNS = (
    "name", "state", "load", "cpus", "freemem", "loadscale", "memscale",
    "score", "age", "load1", "extra",
    # From datagram version 2 on ('-' for a node that sends version 1): CPU
    # time in percent; disk and network KiB/s; swap used, MiB.
    "user", "sys", "idle", "iowait", "diskr", "diskw", "netrx", "nettx", "swap",
    # From issue 15 on: "file" for a member listed in the cluster file, "found"
    # for one learned by discovery (default scales). A table without it is of
    # a release that only knew listed members.
    "via",
)  # fmt: skip
STATES = ("up", "drained", "suspect", "down", "left")
LIVE = frozenset(("up", "drained", "suspect"))
LISTED, FOUND = "file", "found"
MIB = 1024 * 1024
KIB = 1024
_NO_USAGE = ["-"] * 9


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _cells(row: "StatusRow") -> list[str]:
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
        *_usage_cells(row),
        LISTED if row.listed else FOUND,
    ]


def _usage_cells(row: "StatusRow") -> list[str]:
    u = row.usage
    if u is None:
        return _NO_USAGE
    return [
        *(f"{share * 100:.1f}" for share in (u.cpu_user, u.cpu_system, u.cpu_idle, u.cpu_iowait)),
        *(str(round(rate / KIB)) for rate in (u.disk_read, u.disk_write, u.net_receive,
                                              u.net_transmit)),
        str(u.swap_used // MIB),
    ]  # fmt: skip


def format_status(
    rows: "Iterable[StatusRow]",
    comments: "Iterable[str]",
    counters: "Mapping[str, Mapping[str, int]]",
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


# -- reading it ------------------------------------------------------------------

_NAME, _STATE, _CPUS, _SCORE, _VIA = (
    COLUMNS.index(c) for c in ("name", "state", "cpus", "score", "via")
)
_NEEDED = max(_NAME, _STATE, _CPUS, _SCORE) + 1  # a shorter line is no member's


class Member:
    """One cluster member as dsh needs it."""

    __slots__ = ("cpus", "name", "score", "state", "via")

    def __init__(
        self, name: str, state: str, cpus: int | None, score: float | None, via: str = LISTED
    ) -> None:
        self.name = name
        self.state = state
        self.cpus = cpus
        self.score = score
        self.via = via

    @property
    def live(self) -> bool:
        return self.state in LIVE

    def _key(self) -> tuple[str, str, int | None, float | None, str]:
        return (self.name, self.state, self.cpus, self.score, self.via)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Member) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return "Member" + repr(self._key())


class ClusterView:
    """The status table: which node the daemon is, and the members."""

    def __init__(self, self_name: str | None, nodes: list[Member]) -> None:
        self.self_name = self_name
        self.nodes = nodes

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ClusterView) and self.self_name == other.self_name
                and self.nodes == other.nodes)  # fmt: skip

    __hash__ = None  # type: ignore[assignment]  # (mutable)

    def __repr__(self) -> str:
        return f"ClusterView({self.self_name!r}, {self.nodes!r})"

    def candidates(self) -> list[Member]:
        """Nodes that can take a job, best first: up ones (not drained, not
        suspect: the daemon would not name those best either)."""
        up = [n for n in self.nodes if n.state == "up" and n.score is not None]
        return sorted(up, key=lambda n: n.score or 0.0)

    def slots(self) -> int:
        """The CPUs of the candidates (with or without a score): ``make -j``."""
        return sum(n.cpus or 0 for n in self.nodes if n.state == "up")


def _number(text: str, kind: type[int] | type[float]) -> int | float | None:
    try:
        return None if text == "-" else kind(text)
    except ValueError:
        return None


def parse_status(text: str) -> ClusterView:
    """The members and ``# self NAME``; lines of other kinds are skipped."""
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
        if fields[0].startswith("#") or len(fields) < _NEEDED:
            continue
        cpus = _number(fields[_CPUS], int)
        score = _number(fields[_SCORE], float)
        via = fields[_VIA] if len(fields) > _VIA else LISTED
        nodes.append(
            Member(fields[_NAME], fields[_STATE], None if cpus is None else int(cpus), score, via)
        )
    return ClusterView(self_name, nodes)
