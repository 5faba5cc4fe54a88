"""GET /api/view and the page's files: the [view] of the moment, cluster-file order."""

from __future__ import annotations

import json

from support.gossip_node import make_node

from dsh.core.charts import PALETTE, ViewConf, parse_view
from dsh.daemon.http import Request
from dsh.daemon.view import View

GET = Request("GET", "/", "HTTP/1.1", {})


def test_view_json_follows_the_conf_of_the_moment() -> None:
    node = make_node("zeta\nalpha\nmid\n", name="alpha", addresses={})
    conf = [ViewConf()]
    view = View(node, lambda: conf[0], 1.5, lambda: 1000.0)
    got = json.loads(view.view_page(GET)[0])
    assert got["self"] == "alpha" and got["interval"] == 1.5 and got["time"] == 1000.0
    assert got["nodes"] == ["zeta", "alpha", "mid"]  # the cluster file's order, not sorted
    assert got["colours"] == {"zeta": PALETTE[0], "alpha": PALETTE[1], "mid": PALETTE[2]}
    assert len(got["charts"]) == 8
    conf[0] = parse_view([("charts", "in", 2), ("colours", "mid=red", 3)], "f")  # a SIGHUP
    got = json.loads(view.view_page(GET)[0])
    assert [c["name"] for c in got["charts"]] == ["in"] and got["colours"]["mid"] == "red"


def test_the_page_is_served_from_the_package() -> None:
    view = View(make_node(), ViewConf, 1.5, lambda: 0.0)
    pages = view.pages()
    assert set(pages) == {"/", "/page.js", "/page.css", "/api/view"}
    html, kind = pages["/"](GET)  # type: ignore[misc]
    assert kind.startswith("text/html") and b'src="/page.js"' in html
    assert b'href="/metrics"' in html  # the old index's one link stays
    assert b"http://" not in html.replace(b"http://www.w3.org", b"")  # nothing external
    js, kind = pages["/page.js"](GET)  # type: ignore[misc]
    assert kind.startswith("text/javascript") and b"/api/history" in js
    assert b"http" not in js.replace(b"http://www.w3.org/2000/svg", b"")
