"""dshd's Grafana dashboards (daemon/dashboards/): the JSON is a well-formed
Grafana dashboard, and every query reads only what dshd exports: the /metrics
families (metrics.py; the README's HTTP-port section lists them) and the
Graphite paths of the README's Graphite scheme.

Grafana itself is not packaged here, so the checks are structural; promtool,
where installed, parses every PromQL expression. (Every Graphite target was
also evaluated by Debian's graphite-web 1.1.8 against a whisper tree of this
machine's sensor paths while writing them; that needs Django, not a unit test.)
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from support.paths import REPO

from dsh.core.gossip import StatusRow
from dsh.core.wire import Usage
from dsh.daemon import cli
from dsh.daemon.conf import DEFAULT_SENSORS
from dsh.daemon.dashboards.model import (
    GRAPHITE,
    PROMETHEUS,
    SCHEMA_VERSION,
    cluster_dashboard,
    dashboard_json,
    expand,
    graphite_paths,
    node_dashboard,
    prometheus_metrics,
    queries,
)
from dsh.daemon.metrics import BY_LABEL, EXPORTS, Own, cluster_families, own_families
from dsh.daemon.sensors.catalogue import SENSORS
from dsh.daemon.sensors.runner import SensorState


def dshds_own_and_cluster_families() -> set[str]:
    """Every family /metrics has besides the sensors': built from a member with every
    column, a sensor and Graphite configured (the README's families table lists them)."""
    usage = Usage(0.25, 0.05, 0.6, 0.1, 1.0, 2.0, 3.0, 4.0, 5, 6)
    row = StatusRow(name="n1", state="up", load=1.5, ncpu=4, mem_avail=3, loadscale=1.0,
                    memscale=1.0, score=0.4, age=0.3, load1=1.25, extra=0.0, is_self=True,
                    mem_total=8, drained=False, usage=usage)  # fmt: skip
    sensor = SensorState("LoadAvg", 10.0, 5.0, read_at=1.0, read_mono=1.0, up=True, duration=0.1)
    own = Own("n1", {"accepted": 1}, {"served": 1, "none": 1}, {"served": 1}, {"n1": 1},
              {"sent": 1.0, "dropped": 0.0, "buffered": 0.0})  # fmt: skip
    families = [*cluster_families([row]), *own_families(own, [sensor], 2.0)]
    return {s.name for f in families for s in f.samples}


# Every name a dashboard may query: what /metrics exports without a config file, that
# is dshd's own and the cluster's families and those of the sensors dshd runs by
# default (metrics.EXPORTS and BY_LABEL).
OWN_AND_CLUSTER = dshds_own_and_cluster_families()
CONTRACT = OWN_AND_CLUSTER | {
    export.metric
    for (sensor, *_), export in (*EXPORTS.items(), *BY_LABEL.items())
    if sensor in DEFAULT_SENSORS
}
# node_exporter's names that dshd does not export: a query may read them as the other
# side of an ``or``, for a node dashboard that works on node_exporter too.
NODE_EXPORTERS = {"node_memory_Cached_bytes", "node_memory_SReclaimable_bytes"}
# dshd's own state in Graphite, HOST.dshd.FIELD[.LABEL] (the README's Graphite section):
# field -> number of labels
DSHD_PATHS = {"best_answers": 1, "datagrams": 1, "sensor_up": 1, "sensor_duration": 1,
              "graphite_dropped": 0}  # fmt: skip
# Grafana's unit ids (packages/grafana-data/src/valueFormats/categories.ts), those a
# dashboard of machine metrics could use.
UNITS = {"none", "short", "percent", "percentunit", "bytes", "decbytes", "bits", "Bps", "bps",
         "pps", "iops", "ops", "opm", "reqps", "cps", "s", "ms", "µs", "ns", "dtdurations",
         "dateTimeAsIso", "dateTimeFromNow", "hertz", "celsius", "watt", "rotrpm"}  # fmt: skip
PANEL_KINDS = {"timeseries", "stat", "state-timeline", "status-history", "bargauge"}
GRAFANA_VARIABLES = {"__rate_interval", "__interval", "__range"}

PREFIX = "site.dsh"
DASHBOARDS = {
    "prometheus cluster": cluster_dashboard(PROMETHEUS),
    "prometheus node": node_dashboard(PROMETHEUS, "node1.example.org"),
    "graphite cluster": cluster_dashboard(GRAPHITE),
    "graphite node": node_dashboard(GRAPHITE, "node1.example.org"),
    "graphite cluster, prefix": cluster_dashboard(GRAPHITE, PREFIX),
    "graphite node, prefix": node_dashboard(GRAPHITE, "node1", PREFIX),
}
EACH = pytest.mark.parametrize("name", DASHBOARDS)


def source_of(dashboard: dict[str, Any]) -> str:
    return str(dashboard["templating"]["list"][0]["query"])


@EACH
def test_the_dashboard_is_grafanas_model(name: str) -> None:
    d = DASHBOARDS[name]
    assert d["schemaVersion"] == SCHEMA_VERSION >= 39
    assert re.fullmatch(r"[a-z-]{1,40}", d["uid"]) and d["title"].startswith("dsh ")
    assert "dsh" in d["tags"] and d["editable"] is True
    assert d["time"] == {"from": "now-1h", "to": "now"} and re.fullmatch(r"\d+[smh]", d["refresh"])
    json.dumps(d, allow_nan=False)  # JSON, no NaN


@EACH
def test_panels_tile_the_24_column_grid_without_overlapping(name: str) -> None:
    panels = DASHBOARDS[name]["panels"]
    assert len({p["id"] for p in panels}) == len(panels) >= 10
    taken: dict[tuple[int, int], str] = {}
    for p in panels:
        assert p["type"] in PANEL_KINDS and p["title"]
        g = p["gridPos"]
        assert set(g) == {"x", "y", "w", "h"} and all(type(v) is int for v in g.values())
        assert g["x"] >= 0 and g["y"] >= 0 and g["w"] > 0 and g["h"] > 0
        assert g["x"] + g["w"] <= 24, p["title"]
        for cell in product(range(g["x"], g["x"] + g["w"]), range(g["y"], g["y"] + g["h"])):
            assert cell not in taken, f"{p['title']!r} overlaps {taken[cell]!r}"
            taken[cell] = p["title"]


@EACH
def test_every_query_uses_the_datasource_variable_and_defined_variables(name: str) -> None:
    d = DASHBOARDS[name]
    source = source_of(d)
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and source in (PROMETHEUS, GRAPHITE)
    node = variables["node"]
    assert node["type"] == "query" and node["datasource"] == {"type": source,
                                                              "uid": "${datasource}"}  # fmt: skip
    key = "expr" if source == PROMETHEUS else "target"
    for p in d["panels"]:
        assert p["datasource"] == {"type": source, "uid": "${datasource}"}
        assert p["targets"] and len({t["refId"] for t in p["targets"]}) == len(p["targets"])
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"] and t[key], p["title"]
            used = set(re.findall(r"\$\{?(\w+)", t[key]))
            assert used <= set(variables) | GRAFANA_VARIABLES, (p["title"], used)
    assert all(q for q in queries(d)) and len(queries(d)) >= len(d["panels"])


@EACH
def test_units_are_grafana_unit_ids(name: str) -> None:
    for p in DASHBOARDS[name]["panels"]:
        assert p["fieldConfig"]["defaults"]["unit"] in UNITS, p["title"]


def test_the_node_variables_query_the_contract() -> None:
    cluster, node = DASHBOARDS["prometheus cluster"], DASHBOARDS["prometheus node"]
    assert cluster["templating"]["list"][1]["query"] == "label_values(dsh_node_up, node)"
    assert cluster["templating"]["list"][1]["multi"] is True
    variable = node["templating"]["list"][1]
    assert variable["query"] == "label_values(node_load1, instance)"
    assert variable["current"]["value"] == "node1.example.org"  # --node, a cluster name
    # The variable shows instance "HOST:PORT" as HOST, what --node takes.
    strip = re.compile(variable["regex"].strip("/"))
    assert [strip.match(i).group(1) for i in ("n1:8383", "n1", "[::1]:8383")] == [  # type: ignore[union-attr]
        "n1", "n1", "[::1]"]  # fmt: skip
    hosts = DASHBOARDS["graphite node, prefix"]["templating"]["list"][1]
    assert hosts["query"] == f"{PREFIX}.*" and hosts["current"]["value"] == "node1"
    bare = DASHBOARDS["graphite node"]["templating"]["list"][1]
    assert bare["query"] == "*" and bare["current"]["value"] == "node1_example_org"
    assert not re.match(bare["regex"].strip("/"), "carbon")  # carbon-cache's own tree


def test_prometheus_queries_read_only_contract_names() -> None:
    used: set[str] = set()
    for name in ("prometheus cluster", "prometheus node"):
        for expr in queries(DASHBOARDS[name]):
            names = prometheus_metrics(expr)
            if names & NODE_EXPORTERS:  # only as the other side of an or
                assert " or " in expr and names - NODE_EXPORTERS, expr
            names -= NODE_EXPORTERS
            assert names and names <= CONTRACT, (expr, names - CONTRACT)
            used |= names
            if name.endswith("node"):  # one node: by its scrape target
                assert expr.count("{") == expr.count('instance=~"$node(:[0-9]+)?"'), expr
    assert {"dsh_node_up", "dsh_node_load", "dsh_best_node_answers_total", "dsh_sensor_up",
            "node_cpu_seconds_total", "node_cpu_scaling_frequency_hertz"} <= used  # fmt: skip


def test_the_node_memory_panel_counts_cache_alike_from_dshd_and_node_exporter() -> None:
    """Stacked to the total as free(1) counts: cached is page cache + reclaimable slab,
    dshd's dsh_memory_cached_bytes or node_exporter's Cached + SReclaimable."""
    panel = next(p for p in DASHBOARDS["prometheus node"]["panels"]
                 if (p["title"], p["type"]) == ("Memory", "timeseries"))  # fmt: skip
    exprs = {t["legendFormat"]: t["expr"] for t in panel["targets"]}
    node = '{instance=~"$node(:[0-9]+)?"}'
    cached = (f"(dsh_memory_cached_bytes{node} or node_memory_Cached_bytes{node} + "
              f"node_memory_SReclaimable_bytes{node})")  # fmt: skip
    assert exprs["cached"] == cached
    assert exprs["used"] == (f"node_memory_MemTotal_bytes{node} - node_memory_MemFree_bytes{node}"
                             f" - node_memory_Buffers_bytes{node} - {cached}")  # fmt: skip


def test_the_readme_lists_every_family_of_dshds_own_and_the_clusters() -> None:
    text = (REPO / "README.md").read_text()
    section = text[text.index("### The HTTP port") : text.index("### Graphite")]
    # `dsh_node_swap_{used,total}_bytes` names two families
    listed = set(re.findall(r"`(dsh_\w+)`", section))
    for head, many, tail in re.findall(r"`(dsh_\w*)\{([\w,]+)\}(\w*)`", section):
        listed |= {f"{head}{one}{tail}" for one in many.split(",")}
    assert {n.removesuffix("_total") for n in OWN_AND_CLUSTER} <= {
        n.removesuffix("_total") for n in listed
    }, OWN_AND_CLUSTER - listed
    graphite = text[text.index("### Graphite") : text.index("### Dashboards")]
    for field in DSHD_PATHS:
        assert f"HOST.dshd.{field}" in graphite, field
    assert "PREFIX.HOST.Sensor.field.LABELVALUE" in graphite


def test_prometheus_metrics_parses_names_out_of_an_expression() -> None:
    expr = ('60 * sum by (node) (rate(a_total{node=~"x|rate(y)", mode!="idle"}[5m])) '
            "/ on (node) group_left max without (cpu) (b) or c offset 5m")  # fmt: skip
    assert prometheus_metrics(expr) == {"a_total", "b", "c"}


def test_promtool_parses_every_expression(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is not installed: run contrib/install-deps"
    values = {"node": "node1", "__rate_interval": "1m"}
    exprs = [expand(e, values) for n in ("prometheus cluster", "prometheus node")
             for e in queries(DASHBOARDS[n])]  # fmt: skip
    rules = [{"record": f"dsh:check:{i}", "expr": e} for i, e in enumerate(exprs)]
    (tmp_path / "rules.json").write_text(json.dumps({"groups": [{"name": "dsh", "rules": rules}]}))
    done = subprocess.run([promtool, "check", "rules", str(tmp_path / "rules.json")],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def label_arity() -> dict[tuple[str, str], set[tuple[str, ...]]]:
    """(sensor, field) -> the label values of this machine's reading, sanitised as
    Graphite path parts: what PREFIX.HOST.Sensor.field.LABEL... can be here."""
    found: dict[tuple[str, str], set[tuple[str, ...]]] = {}
    for name in DEFAULT_SENSORS:
        sensor = SENSORS[name]
        if sensor.available() is not None:
            continue
        for value in sensor.read(sensor.option_values({})):
            labels = tuple(re.sub(r"[^A-Za-z0-9_-]", "_", v.strip("/") or "root")
                           for _, v in value.labels)  # fmt: skip
            found.setdefault((name, value.field), set()).add(labels)
    return found


def alternatives(part: str) -> list[str]:
    braces = re.fullmatch(r"\{([^}]*)\}", part)
    return braces.group(1).split(",") if braces else [part]


@pytest.mark.parametrize("name", [n for n in DASHBOARDS if n.startswith("graphite")])
def test_graphite_targets_read_only_paths_of_the_scheme(name: str) -> None:
    prefix = PREFIX.split(".") if name.endswith("prefix") else []
    readings = label_arity()
    for target in queries(DASHBOARDS[name]):
        paths = graphite_paths(target)
        assert paths, target
        for path in paths:
            parts = path.split(".")
            assert parts[: len(prefix)] == prefix, path
            host, sensor, field, *labels = parts[len(prefix) :]
            assert host in ("$node", "*"), path
            if sensor == "dshd":
                assert DSHD_PATHS[field] == len(labels), path
                continue
            assert sensor in DEFAULT_SENSORS, path  # what dshd reads without a config
            for one in alternatives(field):
                assert one in {f.name for f in SENSORS[sensor].fields}, path
                if (sensor, one) not in readings:  # not on this machine (CPUFreq in a VM)
                    continue
                here = readings[sensor, one]
                assert {len(h) for h in here} == {len(labels)}, (path, here)
                for i, label in enumerate(labels):
                    for value in alternatives(label):
                        assert value == "*" or value in {h[i] for h in here}, (path, value)


def test_graphite_paths_reads_applybynodes_template() -> None:
    template = "'divideSeries(%.A.x, countSeries(%.B.{y,z}))'"
    target = f"aliasByNode(applyByNode(p.*.A.x, 1, {template}, '%'), 1)"
    assert graphite_paths(target) == ["p.*.A.x", "p.*.A.x", "p.*.B.{y,z}"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--datasource", "prometheus"],
        ["--datasource", "prometheus", "--node", "node1"],
        ["--datasource", "graphite"],
        ["--datasource", "graphite", "--node", "node1", "--prefix", "site.dsh."],
    ],
)
def test_cli_prints_the_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert cli.main(["--grafana-dashboard", *argv]) == cli.EXIT_OK
    out, err = capsys.readouterr()
    printed = json.loads(out)
    kind = "node" if "--node" in argv else "cluster"
    assert printed["uid"] == f"dsh-{kind}-{argv[1]}" and err == ""
    assert out == dashboard_json(argv[1], "node1" if "--node" in argv else None,
                                 "site.dsh" if "--prefix" in argv else "")  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--grafana-dashboard"], "--grafana-dashboard needs --datasource prometheus or graphite"),
        (["--grafana-dashboard", "--datasource", "influx"], "data source 'influx': use prometheus"),
        (["--datasource", "prometheus"], "--datasource, --node and --prefix go with"),
        (["--node", "node1"], "--datasource, --node and --prefix go with"),
        (["--grafana-dashboard", "--datasource", "prometheus", "--prefix", "x"],
         "a prefix is for the Graphite data source only"),
        (["--grafana-dashboard", "--datasource", "graphite", "--prefix", "a b"],
         "Graphite prefix 'a b': use letters"),
        (["--grafana-dashboard", "--datasource", "graphite", "--node", ""],
         "a node dashboard needs a node name"),
    ],
)  # fmt: skip
def test_cli_refuses_a_bad_combination_in_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert cli.main(argv) == cli.EXIT_CONFIG == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith(f"dshd: {message}"), err


def test_the_contract_cited_is_in_the_repository() -> None:
    """The code and tests once cited a design note outside the repository as the contract."""
    outside = "names" + ".md"
    for path in [*(REPO / "src").rglob("*.py"), *(REPO / "tests").rglob("*.py")]:
        assert outside not in path.read_text(encoding="utf-8"), path
