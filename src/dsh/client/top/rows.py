"""What ``dsh top`` shows, out of ``GET /api/cluster``: one Row per node and the cluster's.

Pure: a dict in (the API's JSON, already parsed), rows out. Whatever the
daemon sends that is not a number where one belongs (null, a string, a
negative or infinite value) is None here, and the table shows ``-``: a node
of an older release, or a down one, has no usage, and a daemon that answers
nonsense must not stop the view.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields

from ...core.status import LIVE, STATES

SORTS = ("name", "load", "cpu", "memory")  # what `s` cycles through, in order
CLUSTER = "cluster"  # the cluster row's name


@dataclass(frozen=True)
class Row:
    """One node, in the units shown: percentages 0..100, bytes, bytes/s."""

    name: str
    state: str  # core/status.py STATES (up, drained, suspect, down, left), or "?" for others
    age: float | None = None  # seconds since its last report reached this daemon
    load: float | None = None
    load1: float | None = None
    cpus: int | None = None
    usr: float | None = None
    sys: float | None = None
    idl: float | None = None
    wai: float | None = None
    mem_used: int | None = None
    mem_avail: int | None = None
    mem_total: int | None = None
    swap_used: int | None = None
    swap_total: int | None = None
    disk_read: float | None = None
    disk_write: float | None = None
    net_receive: float | None = None
    net_transmit: float | None = None
    jobs_recent: int | None = None  # dsh's jobs placed there in the last minute
    jobs: int | None = None  # since the local daemon started
    score: float | None = None
    live: int = 0  # the cluster row: nodes live (up, drained, suspect); a node row: 1 if so
    count: int = 1  # the cluster row: nodes summed up


LOG_FORMATS = ("csv", "jsonl")  # of --log (log.py); here, so that cli need not import log

COLUMNS = tuple(f.name for f in fields(Row) if f.name not in ("live", "count"))


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return float(value)


def _whole(value: object) -> int | None:
    number = _number(value)
    return None if number is None else round(number)


def _share(value: object) -> float | None:
    """A CPU share 0..1 as a percentage."""
    number = _number(value)
    return None if number is None or number > 1.0001 else number * 100.0


def node_row(node: Mapping[str, object]) -> Row | None:
    """A node of /api/cluster as a Row; None for an entry without a name."""
    name = node.get("name")
    if not isinstance(name, str) or not name:
        return None
    state = node.get("state")
    state = state if state in STATES else "?"
    avail, total = _whole(node.get("mem_avail")), _whole(node.get("mem_total"))
    used = total - avail if total is not None and avail is not None and total >= avail else None
    return Row(
        name=name,
        state=str(state),
        age=_number(node.get("age")),
        load=_number(node.get("load")),
        load1=_number(node.get("load1")),
        cpus=_whole(node.get("cpus")),
        usr=_share(node.get("cpu_user")),
        sys=_share(node.get("cpu_system")),
        idl=_share(node.get("cpu_idle")),
        wai=_share(node.get("cpu_iowait")),
        mem_used=used,
        mem_avail=avail,
        mem_total=total,
        swap_used=_whole(node.get("swap_used")),
        swap_total=_whole(node.get("swap_total")),
        disk_read=_number(node.get("disk_read")),
        disk_write=_number(node.get("disk_write")),
        net_receive=_number(node.get("net_receive")),
        net_transmit=_number(node.get("net_transmit")),
        jobs_recent=_whole(node.get("jobs_recent")),
        jobs=_whole(node.get("jobs")),
        score=_number(node.get("score")),
        live=1 if state in LIVE else 0,
    )


def node_rows(data: Mapping[str, object]) -> list[Row]:
    """Every named node of the answer, in the daemon's order."""
    nodes = data.get("nodes")
    if not isinstance(nodes, list):
        return []
    rows = (node_row(n) for n in nodes if isinstance(n, dict))
    return [r for r in rows if r is not None]


# The cluster row, as cstat's charts: percentages the mean over the nodes
# that report them (each node counts once, whatever its CPUs), everything
# else the sum. What no node reports stays None.
_MEAN = ("usr", "sys", "idl", "wai")
_SUM = ("load", "load1", "cpus", "mem_used", "mem_avail", "mem_total", "swap_used",
        "swap_total", "disk_read", "disk_write", "net_receive", "net_transmit",
        "jobs_recent", "jobs")  # fmt: skip
_INT = {"cpus", "mem_used", "mem_avail", "mem_total", "swap_used", "swap_total",
        "jobs_recent", "jobs"}  # fmt: skip


def cluster_row(rows: Sequence[Row]) -> Row:
    values: dict[str, float | int | None] = {}
    for name in _MEAN + _SUM:
        known = [v for v in (getattr(r, name) for r in rows) if v is not None]
        if not known:
            values[name] = None
        elif name in _MEAN:
            values[name] = sum(known) / len(known)
        else:
            total = sum(known)
            values[name] = int(total) if name in _INT else total
    live = sum(r.live for r in rows)
    return Row(name=CLUSTER, state=f"{live}/{len(rows)}", live=live, count=len(rows),
               **values)  # type: ignore[arg-type]  # fmt: skip


# -- sorting and the filter ------------------------------------------------------------


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """node2 before node10; 10.0.0.9 before 10.0.0.10."""
    return tuple((0, int(p)) if p.isdigit() else (1, p.lower())
                 for p in re.split(r"(\d+)", name) if p)  # fmt: skip


def _busy(r: Row) -> float | None:
    return None if r.idl is None else 100.0 - r.idl


def _memory(r: Row) -> float | None:
    if r.mem_used is None:
        return None
    return r.mem_used / r.mem_total if r.mem_total else float(r.mem_used)


_KEYS: dict[str, Callable[[Row], float | None]] = {
    "load": lambda r: r.load,
    "cpu": _busy,
    "memory": _memory,
}


def sort_rows(rows: Iterable[Row], key: str) -> list[Row]:
    """By name, or the busiest first (load, CPU busy = 100 - idle, memory used
    share); nodes without the value last, by name."""
    by_name = sorted(rows, key=lambda r: natural_key(r.name))
    get = _KEYS.get(key)
    if get is None:
        return by_name
    known = [r for r in by_name if get(r) is not None]
    unknown = [r for r in by_name if get(r) is None]
    return sorted(known, key=lambda r: -(get(r) or 0.0)) + unknown


def filter_rows(rows: Iterable[Row], text: str) -> list[Row]:
    """The nodes whose name contains ``text`` (case ignored)."""
    needle = text.lower()
    return [r for r in rows if needle in r.name.lower()]


def next_sort(key: str) -> str:
    return SORTS[(SORTS.index(key) + 1) % len(SORTS)] if key in SORTS else SORTS[0]


def as_record(row: Row) -> dict[str, object]:
    """A row as the log and --json write it: the columns, rounded as shown."""
    out: dict[str, object] = {}
    for name in COLUMNS:
        value = getattr(row, name)
        if isinstance(value, float):
            value = round(value, 2 if name in _MEAN or name.startswith("load") else 3)
            if name in ("disk_read", "disk_write", "net_receive", "net_transmit"):
                value = round(value)
        out[name] = value
    return out
