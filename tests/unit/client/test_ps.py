"""client/ps.py: which nodes to ask, and the merge."""

from __future__ import annotations

import pytest

from dsh.client import ps

CLUSTER: dict[str, object] = {"nodes": [
    {"name": "n1", "state": "up"}, {"name": "n2", "state": "down"},
    {"name": "n3", "state": "drained"}, {"bad": 1}, {"name": "n4", "state": "suspect"},
    {"name": "n5", "state": "left"}, {"name": "n6", "state": "from-the-future"},
]}  # fmt: skip


def test_live_nodes_are_asked_suspect_ones_too_down_and_left_are_named() -> None:
    assert ps.live_nodes(CLUSTER, None) == (["n1", "n3", "n4"], ["n2", "n6"], ["n5"])
    assert ps.live_nodes(CLUSTER, ["n2", "n3", "n5"]) == (["n3"], ["n2"], ["n5"])
    with pytest.raises(ValueError, match="not in the cluster: n9"):
        ps.live_nodes(CLUSTER, ["n1", "n9"])


def test_merged_sorted_by_the_key_then_node_and_pid() -> None:
    a = [{"node": "n1", "pid": 5, "cpu": 1.0, "rss": 10, "elapsed": 9.0}]
    b = [{"node": "n3", "pid": 2, "cpu": 7.0, "rss": 5, "elapsed": 1.0},
         {"node": "n3", "pid": 1, "cpu": 1.0, "rss": 1, "elapsed": 3.0}]  # fmt: skip
    assert [r["pid"] for r in ps.merged([a, b], "cpu")] == [2, 5, 1]
    assert [r["pid"] for r in ps.merged([a, b], "mem")] == [5, 2, 1]
    assert [r["pid"] for r in ps.merged([a, b], "time")] == [5, 1, 2]


def test_table_puts_the_node_first() -> None:
    rows = [{"node": "node-long", "pid": 5, "user": "me", "state": "S", "cpu": 1.5,
             "rss": 4096, "elapsed": 61.0, "command": "sleep 9"}]  # fmt: skip
    lines = ps.table(rows).splitlines()
    assert lines[0].split()[:2] == ["NODE", "PID"]
    assert lines[1].split() == ["node-long", "5", "me", "S", "1.5", "4", "01:01", "sleep", "9"]


def test_node_sets_with_groups_and_exclusion() -> None:
    data: dict[str, object] = {"nodes": [{"name": f"n{i}", "state": "up"} for i in range(1, 5)]
                               + [{"name": "n5", "state": "down"}]}  # fmt: skip
    assert ps.wanted_nodes(data, None, None) is None
    assert ps.wanted_nodes(data, "n[1-3]", "n2") == ["n1", "n3"]
    assert ps.wanted_nodes(data, "@down", None) == ["n5"]
    assert ps.wanted_nodes(data, None, "@up") == ["n5"]
    assert ps.wanted_nodes(CLUSTER, "@suspect,@left", None) == ["n4", "n5"]
