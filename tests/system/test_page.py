"""The live page in a real browser: headless Chromium loads GET / from a real dshd of
a 3-node loopback cluster; every chart has a path per node and the cluster's, with
the values /api/history gives for those times; the table lists every node; the
page updates (a node stopped meanwhile turns dim with its age). The screenshot is
kept under the test's tmp dir (its path is printed)."""

from __future__ import annotations

import json
import math
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

from support import chromium
from support.dshd import ClusterFactory
from support.waiting import wait_for

from dsh.core.charts import DEFAULT_CHARTS

NODES = ["127.0.0.61", "127.0.0.62", "127.0.0.63"]


class Dom(HTMLParser):
    """What the test reads of the dumped DOM: the charts' svgs and paths, the table rows."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.body: dict[str, str] = {}
        self.charts: list[dict[str, str]] = []
        self.paths: list[list[dict[str, str]]] = []  # per chart
        self.rows: list[dict[str, str]] = []
        self.cells: list[list[str]] = []
        self.cluster_cells: list[str] = []  # the cluster's row
        self._in_td = self._in_row = self._in_cluster = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = a
        elif tag == "svg" and "data-chart" in a:
            self.charts.append(a)
            self.paths.append([])
        elif tag == "path" and self.charts and ("data-node" in a or "data-aggregate" in a):
            self.paths[-1].append(a)
        elif tag == "tr":
            self._in_row = "data-node" in a  # (not the cluster's row)
            self._in_cluster = a.get("class") == "cluster"
            if self._in_row:
                self.rows.append(a)
                self.cells.append([])
        elif tag == "td" and self._in_row:
            self._in_td = True
            self.cells[-1].append("")
        elif tag == "td" and self._in_cluster:
            self._in_td = True
            self.cluster_cells.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._in_td = False
        elif tag == "tr":
            self._in_row = self._in_cluster = False

    def handle_data(self, data: str) -> None:
        if self._in_td and self._in_row:
            self.cells[-1][-1] += data
        elif self._in_td and self._in_cluster:
            self.cluster_cells[-1] += data


def get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        result: dict[str, object] = json.load(answer)
        return result


def values(text: str) -> list[float | None]:
    return [None if v == "" else float(v) for v in text.split(",")] if text else []


def check_against_history(dom: Dom, base: str, nodes: list[str]) -> float:
    """Every chart's paths against /api/history at the same step; the newest time."""
    view = get(base + "/api/view")
    charts = view["charts"]
    assert isinstance(charts, list)
    assert [c["data-chart"] for c in dom.charts] == [c["name"] for c in charts]
    assert [c["name"] for c in charts] == list(DEFAULT_CHARTS)
    step = dom.charts[0]["data-step"]
    fields = sorted({f for c in charts for f in c["fields"]})
    history = get(f"{base}/api/history?since=-600&step={step}&fields={','.join(fields)}")
    times = history["times"]
    assert isinstance(times, list)
    index = {t: i for i, t in enumerate(times)}
    by_node = history["nodes"]
    assert isinstance(by_node, dict)
    newest = 0.0
    for chart, svg, paths in zip(charts, dom.charts, dom.paths, strict=True):
        drawn = [float(t) for t in svg["data-times"].split(",")]
        assert len(drawn) >= 5, f"{chart['name']}: only {len(drawn)} points"
        newest = max(newest, drawn[-1])
        assert sorted(p["data-node"] for p in paths if "data-node" in p) == sorted(nodes)
        aggregates = [p for p in paths if "data-aggregate" in p]
        assert len(aggregates) == 1 and aggregates[0]["data-aggregate"] == chart["aggregate"]
        # Every time the page drew but its newest (a step that may have been
        # partial then) is one /api/history has, with the same values.
        common = [k for k, t in enumerate(drawn) if t in index]
        assert len(common) >= len(drawn) - 1, (chart["name"], drawn, times)
        series = {}
        for p in paths:
            got = values(p["data-values"])
            assert len(got) == len(drawn)
            if "data-node" in p:
                column = by_node[p["data-node"]][chart["fields"][0]]
                want = [column[index[drawn[k]]] for k in common]
                assert [got[k] for k in common] == want, (chart["name"], p["data-node"])
                series[p["data-node"]] = want
        for j, k in enumerate(common):  # the cluster's line: avg or sum of the known values
            known = [s[j] for s in series.values() if s[j] is not None]
            want_total = (sum(known) / len(known) if chart["aggregate"] == "avg" else sum(known)
                          ) if known else None  # fmt: skip
            got_total = values(aggregates[0]["data-values"])[k]
            if want_total is None:
                assert got_total is None
            else:
                assert got_total is not None
                assert math.isclose(got_total, want_total, rel_tol=1e-9, abs_tol=1e-9)
    return newest


def test_the_page_in_chromium(make_cluster: ClusterFactory, tmp_path: Path) -> None:
    cluster = make_cluster(NODES, interval=0.2)
    cluster.start()
    wait_for(cluster.all_up, 10, "every node up")
    base = f"http://{NODES[0]}:{cluster.http_port}"

    def points() -> bool:
        history = get(f"{base}/api/history?since=-60&fields=cpu_user")
        times = history["times"]
        assert isinstance(times, list)
        return len(times) >= 10

    wait_for(points, 15, "ten points of history")
    url = base + "/?since=60"  # a minute: the step is the interval, every point drawn

    first = Dom(chromium.dump_dom(url, tmp_path / "profile"))
    print(f"first paint {first.body.get('data-first-paint-ms')} ms after navigation "
          f"(Chromium's virtual clock), {first.body.get('data-updates')} updates")  # fmt: skip
    newest = check_against_history(first, base, NODES)
    assert [r["data-node"] for r in first.rows] == NODES  # the cluster file's order
    assert all(r["data-state"] == "up" for r in first.rows)
    assert all(len(c) == 15 for c in first.cells)  # name, state, ... jobs
    assert first.cluster_cells[:2] == ["cluster", "3/3 live"]

    # A node stops cleanly (SIGTERM): the next load shows it left, dimmed, with its age.
    cluster.nodes[NODES[2]].stop()
    wait_for(lambda: cluster.nodes[NODES[0]].state_of(NODES[2]) == "left", 10, "node 3 left")
    time.sleep(1.0)  # its age grows past a second

    second = Dom(chromium.dump_dom(url, tmp_path / "profile"))
    assert check_against_history(second, base, NODES) > newest  # it updated
    newest_values = [p["data-values"].rsplit(",", 1)[-1] for p in second.paths[0]]
    assert newest_values != [p["data-values"].rsplit(",", 1)[-1] for p in first.paths[0]]
    left = {r["data-node"]: (r, c) for r, c in zip(second.rows, second.cells, strict=True)}
    row, cells = left[NODES[2]]
    assert row["class"] == "left" and cells[1].startswith("left ") and cells[1].endswith("s")
    assert int(cells[1].split()[1][:-1]) >= 1
    assert all(left[n][0]["class"] == "up" for n in NODES[:2])
    assert second.cluster_cells[1] == "2/3 live"  # the cluster row counts the live nodes
    # its newest point is unknown in every chart: no line drawn there
    for paths in second.paths:
        (path,) = [p for p in paths if p.get("data-node") == NODES[2]]
        assert path["data-values"].endswith(",")

    shot = tmp_path / "page.png"
    chromium.screenshot(url, tmp_path / "profile", shot)
    print(f"screenshot: {shot}")
