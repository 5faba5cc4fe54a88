"""dshd's JSON API on a real 3-node loopback cluster: /api/cluster's fields,
/api/history's since/step/fields/nodes, 400 for what cannot be meant, and
the points of a killed node turning null."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import pytest
from support.dshd import Cluster, ClusterFactory
from support.waiting import wait_for

NODES = ["127.0.0.71", "127.0.0.72 2.0", "127.0.0.73 1 1 drain"]
A, B, C = (line.split()[0] for line in NODES)
NODE_FIELDS = {"name", "state", "listed", "age", "load", "load1", "cpus", "mem_avail",
               "mem_total", "score", "extra", "loadscale", "memscale", "cpu_user", "cpu_system",
               "cpu_idle", "cpu_iowait", "disk_read", "disk_write", "net_receive",
               "net_transmit", "swap_used", "swap_total", "jobs", "jobs_recent"}  # fmt: skip


def get(cluster: Cluster, target: str) -> Any:
    url = f"http://{A}:{cluster.http_port}{target}"
    with urllib.request.urlopen(url, timeout=5) as answer:
        assert answer.headers["Content-Type"] == "application/json"
        return json.load(answer)


def status_of(cluster: Cluster, target: str) -> int:
    try:
        get(cluster, target)
    except urllib.error.HTTPError as exc:
        exc.close()  # its socket, now rather than in some later test's garbage collection
        return exc.code
    return 200


@pytest.fixture
def cluster(make_cluster: ClusterFactory) -> Cluster:
    cluster = make_cluster(NODES, interval=0.2)
    cluster.start()
    wait_for(cluster.all_up, 10, "the nodes to see each other")
    return cluster


def test_the_cluster_now_and_its_history(cluster: Cluster) -> None:
    def reported() -> Any:
        # Up may come first from another member's news of a node (a node's
        # first report can go out before A listens); mem_total only from its
        # own, and the usage only from a full one (probes and their answers
        # are brief: they leave it out).
        data = get(cluster, "/api/cluster")
        known = all(n["mem_total"] is not None and n["cpu_user"] is not None
                    for n in data["nodes"])  # fmt: skip
        return data if known else None

    data = wait_for(reported, 10, "every node's own report at A")
    assert data["self"] == A and data["interval"] == 0.2 and isinstance(data["time"], float)
    nodes = {n["name"]: n for n in data["nodes"]}
    assert set(nodes) == {A, B, C}
    for node in nodes.values():
        assert set(node) == NODE_FIELDS
        assert node["cpus"] >= 1 and 0 < node["mem_avail"] <= node["mem_total"]
        shares = [node[k] for k in ("cpu_user", "cpu_system", "cpu_idle", "cpu_iowait")]
        assert (
            all(0 <= s <= 1 for s in shares) and sum(shares) <= 1.001
        )  # (nice, irq, steal: not shown)
        assert all(node[k] >= 0 for k in ("disk_read", "disk_write", "net_receive"))
    assert [nodes[n]["state"] for n in (A, B, C)] == ["up", "up", "drained"]
    assert all(nodes[n]["listed"] is True for n in (A, B, C))  # all in the cluster file
    assert nodes[B]["loadscale"] == 2.0

    wait_for(lambda: len(get(cluster, "/api/history?since=-10")["times"]) >= 5, 10, "5 ticks")
    history = get(cluster, "/api/history?since=-10")
    times = history["times"]
    assert isinstance(times, list) and times == sorted(times)
    assert times[0] >= data["time"] - 10 - 1
    assert set(history["nodes"]) == {A, B, C}
    for fields in history["nodes"].values():
        assert all(len(values) == len(times) for values in fields.values())
    assert history["nodes"][C]["state"][-1] == 2  # drained

    some = get(cluster, f"/api/history?since=-10&fields=load,cpu_user&nodes={A},{C}")
    assert some["fields"] == ["load", "cpu_user"]
    assert set(some["nodes"]) == {A, C}
    assert set(some["nodes"][A]) == {"load", "cpu_user"}
    since = times[-3]  # wall seconds: that point and those after
    assert get(cluster, f"/api/history?since={since}")["times"][0] >= since
    coarse = get(cluster, "/api/history?since=-10&step=1")
    assert 0 < len(coarse["times"]) < len(times)

    for bad in ("since=soon", "since=nan", "step=0", "step=-1", "fields=load,colour"):
        assert status_of(cluster, f"/api/history?{bad}") == 400, bad


def test_a_killed_nodes_points_turn_null(cluster: Cluster) -> None:
    cluster.nodes[B].stop(signal.SIGKILL)
    wait_for(lambda: cluster.nodes[A].state_of(B) == "down", 10, "B to be down")
    down = {n["name"]: n for n in get(cluster, "/api/cluster")["nodes"]}[B]
    assert down["state"] == "down" and down["age"] > 0
    assert down["load"] is None and down["cpu_user"] is None and down["cpus"] is None

    def last_point() -> Any:
        series = get(cluster, f"/api/history?since=-30&nodes={B}")["nodes"][B]
        return series if series["state"][-1] == 0 else None

    series = wait_for(last_point, 10, "B's points to say down")
    assert series["load"][-1] is None and series["cpu_idle"][-1] is None
    assert any(v is not None for v in series["load"])  # before it died


def test_a_node_that_stops_cleanly_is_left_at_once_without_values(cluster: Cluster) -> None:
    cluster.nodes[B].stop()  # SIGTERM: it says so
    wait_for(lambda: cluster.nodes[A].state_of(B) == "left", 5, "B to have left")
    left = {n["name"]: n for n in get(cluster, "/api/cluster")["nodes"]}[B]
    assert left["state"] == "left" and left["listed"] is True
    assert left["load"] is None and left["cpu_user"] is None and left["cpus"] is None

    def last_point() -> Any:
        series = get(cluster, f"/api/history?since=-30&nodes={B}")["nodes"][B]
        return series if series["state"][-1] == 4 else None

    series = wait_for(last_point, 10, "B's points to say left")
    assert series["load"][-1] is None and series["cpu_idle"][-1] is None


def test_jobs_count_the_best_node_answers_naming_each_node(cluster: Cluster) -> None:
    # What dsh top's jobs column shows: the answers of this daemon's best-node
    # port, since start and in the last minute.
    a = cluster.nodes[A]
    answers = Counter(a.best() for _ in range(6))
    assert set(answers) <= {A, B} and sum(answers.values()) == 6  # C is drained

    def counted() -> bool:
        nodes = {n["name"]: n for n in get(cluster, "/api/cluster")["nodes"]}
        return all(nodes[n]["jobs"] == answers[n] and nodes[n]["jobs_recent"] == answers[n]
                   for n in (A, B, C))  # fmt: skip

    # jobs_recent comes from the history: a tick or two after the answers
    wait_for(counted, 10, "the answers in jobs and jobs_recent")
