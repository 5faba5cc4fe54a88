"""The Prometheus dashboards read what dshd really exports: a real Prometheus
scrapes two real dshd nodes, and every query of the cluster and the node
dashboard, its variables expanded as Grafana expands them, returns a sample
with a number. A query without one is excused only when a metric it reads
comes from a sensor that says, on this machine, that it is unavailable, and
the test says so on the terminal."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from support.dashboard_nodes import configure, place_a_job_on_each, unavailable_sensors
from support.dshd import ClusterFactory
from support.prometheus import Prometheus
from support.waiting import wait_for

from dsh.daemon.dashboards import model
from dsh.daemon.metrics import EXPORTS

C, D = "127.0.0.83", "127.0.0.84"
MakePrometheus = Callable[[list[str]], Prometheus]
# Grafana's own variables, as a 1 s scrape gives them: $__rate_interval is at
# least four scrape intervals; $__interval the step of a short graph.
GRAFANA = {"__rate_interval": "5s", "__interval": "1s", "__range": "5m", "__range_s": "300"}
SENSOR_OF = {export.metric: sensor for (sensor, _), export in EXPORTS.items()}


def regex_escape(value: str) -> str:
    """A multi-value variable's value in a PromQL regex string, as Grafana's
    Prometheus data source writes it: specials behind a backslash, itself
    escaped for the double-quoted string."""
    return re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\\\1", value)


def node_values(dashboard: Mapping[str, Any]) -> list[str]:
    """What $node takes: for a single-value variable its current value as it is;
    for the cluster's multi-value one each node, both ((a|b)) and All (allValue)."""
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "node")
    if not variable["multi"]:
        return [variable["current"]["value"]]
    each = [regex_escape(n) for n in (C, D)]
    return [*each, f"({'|'.join(each)})", variable["allValue"]]


def expanded_queries(dashboard: Mapping[str, Any]) -> list[str]:
    out = []
    for query in model.queries(dashboard):
        for node in node_values(dashboard):
            expr = model.expand(query, {"node": node, **GRAFANA})
            assert not re.search(r"\$\{?\w", expr), f"a variable left in {expr!r}"
            out.append(expr)
    return list(dict.fromkeys(out))


def without_data(prom: Prometheus, queries: list[str]) -> dict[str, str]:
    """Query -> what is wrong, for each query that gives no sample with a number yet."""
    wrong = {}
    for expr in queries:
        values = [float(r["value"][1]) for r in prom.query(expr)]
        if not values:
            wrong[expr] = "no sample"
        elif not any(math.isfinite(v) for v in values):
            wrong[expr] = f"no finite value: {values}"
    return wrong


def unavailable_metrics(expr: str, unavailable: Mapping[str, str]) -> dict[str, str]:
    """Metric -> its sensor, for the metrics ``expr`` reads whose sensor is unavailable here."""
    metrics = model.prometheus_metrics(expr)
    return {m: SENSOR_OF[m] for m in metrics if SENSOR_OF.get(m) in unavailable}


def test_every_dashboard_query_returns_samples(
    make_cluster: ClusterFactory,
    make_prometheus: MakePrometheus,
    capsys: pytest.CaptureFixture[str],
) -> None:
    unavailable = unavailable_sensors()
    cluster = make_cluster([C, D])
    for node in cluster.nodes.values():
        configure(node)
    cluster.start()
    wait_for(cluster.all_up, 10, "both nodes up")
    place_a_job_on_each(cluster.nodes)
    targets = [f"{n}:{cluster.http_port}" for n in (C, D)]
    prom = make_prometheus(targets)

    boards = [model.cluster_dashboard("prometheus")]
    boards += [model.node_dashboard("prometheus", n) for n in (C, D)]
    assert [node_values(b) for b in boards[1:]] == [[C], [D]]
    queries = [q for b in boards for q in expanded_queries(b)]
    read = {m for q in queries for m in model.prometheus_metrics(q)}
    assert len(queries) > 60 and len(read) > 30, (len(queries), sorted(read))
    expected = [q for q in queries if not unavailable_metrics(q, unavailable)]
    wait_for(prom.scraped, 20, f"both targets scraped\n{prom.tail()}", poll=0.2)
    try:
        wait_for(lambda: not without_data(prom, expected), 15,
                 "samples for every dashboard query", poll=0.5)  # fmt: skip
    except AssertionError:
        pass  # what is still missing is listed (or excused) below
    wrong = without_data(prom, queries)
    excused = {q: unavailable_metrics(q, unavailable) for q in wrong}
    excused = {q: metrics for q, metrics in excused.items() if metrics}
    with capsys.disabled():
        for expr, metrics in excused.items():
            why = "; ".join(f"{m} from sensor {s}, unavailable here ({unavailable[s]})"
                            for m, s in sorted(metrics.items()))  # fmt: skip
            print(f"\nEXCUSED {expr}: {wrong[expr]}: {why}")
    failures = [f"{q}: {why}" for q, why in wrong.items() if q not in excused]
    assert not failures, (
        "\n".join(failures) + "\n" + "\n".join(n.tail() for n in cluster.nodes.values())
    )

    # The node variables list the nodes: the cluster's by label node, the node
    # dashboard's by instance with the port cut off by the variable's regex.
    cluster_var = boards[0]["templating"]["list"][1]
    node_var = boards[1]["templating"]["list"][1]
    assert cluster_var["query"] == "label_values(dsh_node_up, node)"
    assert set(prom.api("label/node/values", **{"match[]": "dsh_node_up"})) == {C, D}
    assert node_var["query"] == "label_values(node_load1, instance)"
    regex = re.compile(node_var["regex"].strip("/"))
    instances = prom.api("label/instance/values", **{"match[]": "node_load1"})
    assert {m.group(1) for i in instances if (m := regex.match(i))} == {C, D}, instances
