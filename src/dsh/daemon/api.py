"""The JSON API on the HTTP port: ``/api/cluster`` (now) and ``/api/history`` (the ring).

What ``dsh top``, ``dsh plot`` and the live page read. The shapes, documented
in README.md ("The JSON API"):

    GET /api/cluster
    {"self": NAME, "time": WALL_S, "interval": S, "version": V,
     "nodes": [{"name", "state", "listed", "age", "load", "load1", "cpus", "mem_avail",
                "mem_total", "score", "extra", "loadscale", "memscale",
                "cpu_user", "cpu_system", "cpu_idle", "cpu_iowait", "disk_read",
                "disk_write", "net_receive", "net_transmit", "swap_used",
                "swap_total", "jobs", "jobs_recent"}, ...]}

    GET /api/history?since=S[&step=S][&fields=a,b][&nodes=a,b]
    {"self", "time", "interval", "fields": [...], "times": [WALL_S, ...],
     "nodes": {NAME: {FIELD: [value or null per time]}}}

``since`` is wall-clock seconds, or negative: that many seconds back
(``since=-600``: the last ten minutes); ``step`` averages over steps of that
many seconds. Unknown values are null. Shares are 0..1, rates bytes/s,
memory bytes; ``jobs`` counts this daemon's best-node answers naming the node
since it started, ``jobs_recent`` those of the last ``RECENT`` seconds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from urllib.parse import parse_qs

from .. import __version__
from ..core.gossip import GossipNode, StatusRow
from ..core.history import FIELDS, History
from ..core.status import LIVE
from .http import BadRequest, Body, Later, Page, Request

JSON = "application/json"
RECENT = 60.0  # seconds of "jobs_recent"
# A step at or below a tick's interval groups nothing: the points as they are.
MIN_STEP = 0.001  # seconds; less is a 400
# At most this many values in one history answer (about 4 MB of JSON, made in
# 0.2 s): larger ones are refused with the step that would fit, since making
# 28 MB of JSON (100 nodes x 1 h, every field, every tick) holds the GIL, and
# so dshd's loop, for whole tenths of a second, and 170 MB for a moment.
MAX_VALUES = 600_000


def node_json(row: StatusRow, jobs: int, jobs_recent: int) -> dict[str, object]:
    """One member; of a down or left one only its name, state, age and weights
    (its last report is not its state now), of a suspect one all (it is)."""
    known = row.state in LIVE
    u = row.usage if known else None
    out: dict[str, object] = {
        "name": row.name,
        "state": row.state,
        "listed": row.listed,
        "age": None if row.age is None else round(row.age, 3),
        "load": row.load if known else None,
        "load1": None if row.load1 is None or not known else round(row.load1, 3),
        "cpus": row.ncpu if known else None,
        "mem_avail": row.mem_avail if known else None,
        "mem_total": row.mem_total if known else None,
        "score": None if row.score is None else round(row.score, 4),
        "extra": row.extra,
        "loadscale": row.loadscale,
        "memscale": row.memscale,
    }
    names = ("cpu_user", "cpu_system", "cpu_idle", "cpu_iowait", "disk_read", "disk_write",
             "net_receive", "net_transmit", "swap_used", "swap_total")  # fmt: skip
    for name in names:
        value = getattr(u, name) if u is not None else None
        out[name] = round(value, 4) if isinstance(value, float) and name.startswith("cpu_") else (
            None if value is None else round(value))  # fmt: skip
    out["jobs"] = jobs
    out["jobs_recent"] = jobs_recent
    return out


def _number(query: Mapping[str, list[str]], key: str, default: float | None) -> float | None:
    values = query.get(key)
    if not values:
        return default
    try:
        value = float(values[-1])
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise BadRequest(400, f"{key}={values[-1]!r} is not a number")
    return value


def _names(query: Mapping[str, list[str]], key: str) -> list[str] | None:
    values = query.get(key)
    if not values:
        return None
    return [n for v in values for n in v.split(",") if n]


def _points(times: list[float], step: float | None) -> int:
    """How many points ``times`` make at ``step`` (an upper bound)."""
    if not times or step is None:
        return len(times)
    return min(len(times), math.floor(times[-1] / step) - math.floor(times[0] / step) + 1)


class Api:
    """The two pages, given the daemon's parts."""

    def __init__(self, node: GossipNode, history: History, jobs: Mapping[str, int],
                 interval: float, clock: Callable[[], float],
                 monotonic: Callable[[], float]) -> None:  # fmt: skip
        self.node = node
        self.history = history
        self.jobs = jobs  # TcpPorts.best_answers
        self.interval = interval
        self.clock = clock
        self.monotonic = monotonic

    def pages(self) -> dict[str, Page]:
        return {"/api/cluster": self.cluster, "/api/history": self.history_page}

    def _head(self, now: float) -> dict[str, object]:
        return {"self": self.node.name, "time": round(now, 3), "interval": self.interval,
                "version": __version__}  # fmt: skip

    def cluster_json(self) -> dict[str, object]:
        now = self.clock()
        recent = self.history.window(now - RECENT, fields=["jobs"])
        nodes = []
        for row in self.node.status_rows(self.monotonic()):
            jobs = self.jobs.get(row.name, 0)
            past = [v for v in recent.nodes.get(row.name, {}).get("jobs", ()) if v == v]
            nodes.append(node_json(row, jobs, jobs - int(past[0]) if past else 0))
        return {**self._head(now), "nodes": nodes}

    def cluster(self, request: Request) -> Body:
        return json.dumps(self.cluster_json(), separators=(",", ":")).encode(), JSON

    def history_page(self, request: Request) -> Later:
        query = parse_qs(request.query, keep_blank_values=False)
        now = self.clock()
        since = _number(query, "since", -600.0)
        assert since is not None
        if since < 0:
            since = now + since
        step = _number(query, "step", None)
        if step is not None and step < MIN_STEP:
            raise BadRequest(400, f"step={step:g} is below {MIN_STEP:g} s")
        fields = _names(query, "fields")
        unknown = [f for f in fields or () if f not in FIELDS]
        if unknown:
            raise BadRequest(400, f"no field {unknown[0]!r} (fields: {', '.join(FIELDS)})")
        # Copied out of the rings here, on the loop (a memcpy per column);
        # made into JSON in a worker thread (http.py).
        window = self.history.window(since, fields=fields, names=_names(query, "nodes"))
        if step is not None and step <= self.interval:
            step = None
        columns = len(window.nodes) * len(fields or FIELDS)
        points = _points(window.times, step)
        if points * columns > MAX_VALUES:
            span = (window.times[-1] - window.times[0]) if window.times else 0.0
            fit = math.ceil(span * columns / MAX_VALUES) + 1
            raise BadRequest(400, f"{points * columns} values is more than {MAX_VALUES} in one"
                                  f" answer: ask with step={fit} or more, or fewer fields or"
                                  " nodes")  # fmt: skip
        head = {**self._head(now), "fields": fields or list(FIELDS)}

        def make() -> Body:
            series = window.series(step)
            body = {**head, **series.as_json()}
            return json.dumps(body, separators=(",", ":")).encode(), JSON

        return make
