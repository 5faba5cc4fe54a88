"""Grafana dashboards for dshd's metrics (``dshd --grafana-dashboard``), as dicts.

Two dashboards in two flavours, one per data source:

- the cluster dashboard: every node as the gossip sees it (Prometheus: the
  ``dsh_node_*`` series that ONE scrape of any dshd gives; Graphite: each
  host's own sensors under ``PREFIX.*``), jobs placed per node, sensor health;
- the node dashboard: one node's sensors, FrUCToSA's panels (Prometheus: the
  node_exporter names, so it also works over node_exporter itself).

Rules of this file: pure (no I/O, no Grafana); the output is Grafana's classic
dashboard JSON model at ``SCHEMA_VERSION`` (Grafana migrates it forward);
every query's data source is the dashboard's ``$datasource`` variable, so one
file imports into any Grafana; ``uid``s are fixed, so provisioning the file
again replaces the dashboard rather than adding one. The metric names are
those dshd exports (the README's "The HTTP port (8383): /metrics for
Prometheus" lists the families; ``metrics.EXPORTS`` maps each sensor field),
the Graphite paths those of the README's "Graphite (carbon push)" scheme
(``core.graphite``); the unit tests check every query against them, and
``queries`` lists them for the system tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ...core.graphite import host_part
from .graphite import graphite_cluster, graphite_node
from .panels import Panel
from .prometheus import prometheus_cluster, prometheus_node

SCHEMA_VERSION = 39  # Grafana 11.0's; 11.x and 12.x migrate it on load
PROMETHEUS = "prometheus"
GRAPHITE = "graphite"
DATASOURCES = (PROMETHEUS, GRAPHITE)
GRID_COLUMNS = 24  # Grafana's grid
UIDS = {
    ("cluster", PROMETHEUS): "dsh-cluster-prometheus",
    ("cluster", GRAPHITE): "dsh-cluster-graphite",
    ("node", PROMETHEUS): "dsh-node-prometheus",
    ("node", GRAPHITE): "dsh-node-graphite",
}
_DATASOURCE = "${datasource}"
_PREFIX = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


def graphite_host(name: str) -> str:
    """A node's name as a Graphite path component: the sender's own rule."""
    return host_part(name)


def check_prefix(prefix: str) -> str:
    """The Graphite prefix without outer dots; ValueError unless it is dotted [A-Za-z0-9_-]."""
    prefix = prefix.strip(".")
    if prefix and not _PREFIX.fullmatch(prefix):
        raise ValueError(f"Graphite prefix {prefix!r}: use letters, digits, '_', '-' and dots")
    return prefix


def cluster_dashboard(datasource: str, prefix: str = "") -> dict[str, Any]:
    """Every node of the cluster; ``prefix`` is the Graphite one ([graphite] prefix)."""
    _check_datasource(datasource, prefix)
    prefix = check_prefix(prefix)
    if datasource == PROMETHEUS:
        rows, node = (
            prometheus_cluster(),
            _node_variable(
                PROMETHEUS, "label_values(dsh_node_up, node)", "Nodes", many=True, all_value=".*"
            ),
        )
    else:
        rows, node = graphite_cluster(prefix), _graphite_hosts(prefix, many=True)
    return _dashboard("cluster", datasource, "dsh cluster", rows, node, prefix)


def node_dashboard(datasource: str, node: str, prefix: str = "") -> dict[str, Any]:
    """One node's sensors; ``node`` is the node variable's default (a cluster name)."""
    _check_datasource(datasource, prefix)
    prefix = check_prefix(prefix)
    if not node:
        raise ValueError("a node dashboard needs a node name")
    if datasource == PROMETHEUS:
        # The instance label is the scrape target, HOST:PORT: the variable shows
        # HOST (a cluster name, as --node takes it) and the queries add the port.
        rows = prometheus_node()
        variable = _node_variable(
            PROMETHEUS,
            "label_values(node_load1, instance)",
            "Node",
            many=False,
            regex=r"/^(.*?)(?::[0-9]+)?$/",
            current=node,
        )
    else:
        rows = graphite_node(prefix)
        variable = _graphite_hosts(prefix, many=False, current=graphite_host(node))
    return _dashboard("node", datasource, "dsh node", rows, variable, prefix)


def dashboard_json(datasource: str, node: str | None = None, prefix: str = "") -> str:
    """``dshd --grafana-dashboard``'s output: the node dashboard with a node, else the
    cluster's; ValueError (one line) for a bad data source, prefix or node."""
    if node is None:
        dashboard = cluster_dashboard(datasource, prefix)
    else:
        dashboard = node_dashboard(datasource, node, prefix)
    return json.dumps(dashboard, indent=2) + "\n"


def queries(dashboard: Mapping[str, Any]) -> list[str]:
    """Every PromQL ``expr`` or Graphite ``target`` of the panels, in order, once each
    (the variables' own queries are not PromQL, and are left out)."""
    seen: dict[str, None] = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", ()):
            text = target.get("expr", target.get("target"))
            if text:
                seen[text] = None
    return list(seen)


def expand(query: str, values: Mapping[str, str]) -> str:
    """``query`` with Grafana's ``$name`` / ``${name}`` variables replaced from ``values``
    (for running a dashboard's query outside Grafana: node, __rate_interval...)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, query)


_PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


def prometheus_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not its functions, labels or keywords)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)  # matchers, ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = re.finditer(r"\b[A-Za-z_][A-Za-z0-9_]*\b(?!\s*\()", expr)
    return {m.group(0) for m in names if m.group(0).lower() not in _PROMQL_WORDS}


def graphite_paths(target: str) -> list[str]:
    """The path expressions a Graphite target reads, as written (globs, ``$node``),
    also those inside ``applyByNode``'s template, its ``%`` filled in."""
    return _GraphiteParser(target).paths()


class _GraphiteParser:
    """Just enough of Graphite's target grammar: calls, paths, numbers, quoted strings."""

    def __init__(self, text: str) -> None:
        self.text, self.at = text, 0

    def paths(self) -> list[str]:
        found: list[str] = []
        self._walk(self._expression(), found)
        if self.text[self.at :].strip():
            raise ValueError(f"Graphite target {self.text!r}: junk at {self.at}")
        return found

    def _walk(self, node: object, found: list[str]) -> None:
        if isinstance(node, tuple):  # a call: (name, args)
            name, args = node
            for arg in args:
                self._walk(arg, found)
            if name == "applyByNode" and len(args) >= 3 and found:
                template, position = args[2], int(args[1])
                first = [p for p in found if isinstance(p, str)][-1]
                host = ".".join(first.split(".")[: position + 1])
                found += _GraphiteParser(template.strip("'\"").replace("%", host)).paths()
        elif isinstance(node, _Path):
            found.append(str(node))

    def _expression(self) -> object:
        self._blank()
        text, at = self.text, self.at
        if text[at] in "'\"":
            end = text.index(text[at], at + 1)
            self.at = end + 1
            return text[at : end + 1]
        depth, end = 0, at
        while end < len(text) and (depth or text[end] not in "(),'\" "):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        word, self.at = text[at:end], end
        self._blank()
        if self.at < len(text) and text[self.at] == "(":
            self.at += 1
            args: list[object] = []
            while True:
                self._blank()
                if text[self.at] == ")":
                    self.at += 1
                    return word, args
                args.append(self._expression())
                self._blank()
                if text[self.at] == ",":
                    self.at += 1
        if re.fullmatch(r"-?[0-9.]+(e-?[0-9]+)?", word):
            return float(word)
        return _Path(word)

    def _blank(self) -> None:
        while self.at < len(self.text) and self.text[self.at] == " ":
            self.at += 1


class _Path(str):
    pass


def _check_datasource(datasource: str, prefix: str) -> None:
    if datasource not in DATASOURCES:
        raise ValueError(f"data source {datasource!r}: use {' or '.join(DATASOURCES)}")
    if prefix and datasource != GRAPHITE:
        raise ValueError("a prefix is for the Graphite data source only")


def _dashboard(
    kind: str,
    datasource: str,
    title: str,
    rows: Sequence[Sequence[Panel]],
    node: dict[str, Any],
    prefix: str,
) -> dict[str, Any]:
    flavour = "Prometheus" if datasource == PROMETHEUS else "Graphite"
    where = f", prefix {prefix}" if prefix else ""
    return {
        "uid": UIDS[kind, datasource],
        "title": f"{title} ({flavour}{where})",
        "description": f"dshd's {kind} dashboard over {flavour}: dshd --grafana-dashboard",
        "tags": ["dsh", kind, datasource],
        "editable": True,
        "graphTooltip": 1,  # shared crosshair
        "timezone": "browser",
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "links": [
            {
                "title": "dsh dashboards",
                "type": "dashboards",
                "tags": ["dsh"],
                "asDropdown": True,
                "includeVars": False,
                "keepTime": True,
            }
        ],
        "annotations": {"list": []},
        "templating": {"list": [_datasource_variable(datasource), node]},
        "panels": list(_layout(rows, datasource)),
    }


def _datasource_variable(datasource: str) -> dict[str, Any]:
    return {
        "type": "datasource",
        "name": "datasource",
        "label": "Data source",
        "query": datasource,
        "regex": "",
        "hide": 0,
        "refresh": 1,
        "current": {},
        "options": [],
    }


def _node_variable(
    datasource: str,
    query: str,
    label: str,
    *,
    many: bool,
    all_value: str = "",
    regex: str = "",
    current: str = "",
) -> dict[str, Any]:
    variable: dict[str, Any] = {
        "type": "query",
        "name": "node",
        "label": label,
        "datasource": {"type": datasource, "uid": _DATASOURCE},
        "query": query,
        "definition": query,
        "regex": regex,
        "refresh": 2,  # on time range change: nodes come and go
        "sort": 1,
        "hide": 0,
        "multi": many,
        "includeAll": many,
        "options": [],
        "current": {"text": current, "value": current, "selected": True} if current else {},
    }
    if many:
        variable["allValue"] = all_value
        variable["current"] = {"text": ["All"], "value": ["$__all"], "selected": True}
    return variable


def _graphite_hosts(prefix: str, *, many: bool, current: str = "") -> dict[str, Any]:
    # Without a prefix the hosts share the top level with carbon's own "carbon" tree.
    return _node_variable(
        GRAPHITE,
        f"{prefix}.*" if prefix else "*",
        "Nodes" if many else "Node",
        many=many,
        all_value="*",
        current=current,
        regex="" if prefix else "/^(?!carbon$).*/",
    )


def _layout(rows: Sequence[Sequence[Panel]], datasource: str) -> Iterator[dict[str, Any]]:
    """Panels row by row, left to right, each row as high as its highest panel."""
    y, ident = 0, 0
    for row in rows:
        x = 0
        for panel in row:
            if x + panel.width > GRID_COLUMNS:
                raise ValueError(f"row with {panel.title!r} is wider than {GRID_COLUMNS}")
            ident += 1
            grid = {"x": x, "y": y, "w": panel.width, "h": panel.height}
            yield _panel(panel, ident, grid, datasource)
            x += panel.width
        y += max(p.height for p in row)


def _panel(panel: Panel, ident: int, grid: dict[str, int], datasource: str) -> dict[str, Any]:
    source = {"type": datasource, "uid": _DATASOURCE}
    targets = []
    for i, query in enumerate(panel.queries):
        target: dict[str, Any] = {"refId": chr(ord("A") + i), "datasource": source}
        if datasource == PROMETHEUS:
            target.update(expr=query.text, legendFormat=query.legend or "__auto", range=True)
        else:
            target.update(target=query.text, textEditor=True)
        targets.append(target)
    return {
        "id": ident,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": source,
        "gridPos": grid,
        "targets": targets,
        "fieldConfig": {"defaults": _defaults(panel), "overrides": _overrides(panel)},
        "options": _options(panel),
    }


def _defaults(panel: Panel) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    steps += [{"color": colour, "value": value} for value, colour in panel.thresholds]
    defaults: dict[str, Any] = {
        "unit": panel.unit,
        "color": {"mode": "palette-classic"},
        "thresholds": {"mode": "absolute", "steps": steps},
    }
    if panel.minimum is not None:
        defaults["min"] = panel.minimum
    if panel.maximum is not None:
        defaults["max"] = panel.maximum
    if panel.states:
        options = {
            value: {"text": text, "color": colour, "index": i}
            for i, (value, text, colour) in enumerate(panel.states)
        }
        defaults["mappings"] = [{"type": "value", "options": options}]
        defaults["color"] = {"mode": "thresholds"}
    if panel.kind in ("stat", "bargauge") and panel.thresholds:
        defaults["color"] = {"mode": "thresholds"}
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 60 if panel.stack else 10,
            "showPoints": "never",
            "spanNulls": True,
            "stacking": {"mode": "normal" if panel.stack else "none", "group": "A"},
        }
    elif panel.kind == "state-timeline":
        defaults["custom"] = {"fillOpacity": 80, "lineWidth": 0}
    return defaults


def _overrides(panel: Panel) -> list[dict[str, Any]]:
    if not panel.below:
        return []
    return [
        {
            "matcher": {"id": "byRegexp", "options": panel.below},
            "properties": [{"id": "custom.transform", "value": "negative-Y"}],
        }
    ]


def _options(panel: Panel) -> dict[str, Any]:
    last = {"calcs": ["lastNotNull"], "fields": "", "values": False}
    legend = {"showLegend": True, "displayMode": "list", "placement": "bottom", "calcs": []}
    tooltip = {"mode": "multi", "sort": "desc"}
    if panel.kind == "timeseries":
        return {"legend": legend, "tooltip": tooltip}
    if panel.kind == "stat":
        return {
            "reduceOptions": last,
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
            "justifyMode": "auto",
            "orientation": "auto",
        }
    if panel.kind == "bargauge":
        return {
            "reduceOptions": last,
            "orientation": "horizontal",
            "displayMode": "gradient",
            "showUnfilled": True,
            "minVizHeight": 10,
            "minVizWidth": 0,
        }
    if panel.kind == "state-timeline":
        return {
            "mergeValues": True,
            "showValue": "never",
            "alignValue": "left",
            "rowHeight": 0.9,
            "legend": {**legend, "showLegend": False},
            "tooltip": {"mode": "single", "sort": "none"},
        }
    raise ValueError(f"panel kind {panel.kind!r}")
