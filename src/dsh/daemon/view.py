"""The live page at ``GET /`` and its charts' definitions at ``GET /api/view``.

The page is three static files in the package (``page/index.html``,
``page.js``, ``page.css``: plain SVG drawn by its own script, nothing from
the network), read once when dshd starts and served as they are. The script
reads ``/api/view`` (the charts of the ``[view]`` section, core/charts.py, and
each node's colour), then ``/api/history`` and ``/api/cluster`` every
interval.

    GET /api/view
    {"self", "time", "interval", "version", "since": S, "charts": [{"name",
     "title", "fields", "aggregate": "avg"|"sum", "unit", "factor", "max"}],
     "nodes": [NAME, ...] (cluster-file order), "colours": {NAME: COLOUR},
     "aggregate_colour": COLOUR}
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources

from .. import __version__
from ..core.charts import ViewConf
from ..core.gossip import GossipNode
from .http import Body, Page, Request

JSON = "application/json"
FILES = {"/": ("index.html", "text/html; charset=utf-8"),
         "/page.js": ("page.js", "text/javascript; charset=utf-8"),
         "/page.css": ("page.css", "text/css; charset=utf-8")}  # fmt: skip
SINCE = 600.0  # seconds of history the page shows (dsh plot: --since)


def read_files() -> dict[str, Body]:
    """The page's files out of the package (installed or not), by path."""
    folder = resources.files(__package__ or "dsh.daemon") / "page"
    return {path: (folder.joinpath(name).read_bytes(), kind)
            for path, (name, kind) in FILES.items()}  # fmt: skip


class View:
    def __init__(self, node: GossipNode, conf: Callable[[], ViewConf], interval: float,
                 clock: Callable[[], float]) -> None:  # fmt: skip
        self.node = node
        self.conf = conf  # the [view] of the moment (a SIGHUP may change it)
        self.interval = interval
        self.clock = clock
        self.files = read_files()

    def nodes(self) -> list[str]:
        """The cluster file's order: what each node's colour comes from."""
        table = self.node.table
        return [spec.name for spec in map(table.spec, table.members()) if spec is not None]

    def view_json(self) -> dict[str, object]:
        head = {"self": self.node.name, "time": round(self.clock(), 3),
                "interval": self.interval, "version": __version__, "since": SINCE}  # fmt: skip
        return {**head, **self.conf().as_json(self.nodes())}

    def pages(self) -> dict[str, Page]:
        def static(body: Body) -> Page:
            return lambda _request: body

        pages: dict[str, Page] = {path: static(body) for path, body in self.files.items()}
        pages["/api/view"] = self.view_page
        return pages

    def view_page(self, request: Request) -> Body:
        return json.dumps(self.view_json(), separators=(",", ":")).encode(), JSON
