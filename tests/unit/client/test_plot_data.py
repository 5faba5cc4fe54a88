"""dsh plot's data preparation: /api/view + /api/history -> per-chart series."""

from __future__ import annotations

import pytest

from dsh.client.plot.data import fields, node_order, prepare, seconds, size, step, units
from dsh.core.charts import PALETTE, Chart, ViewConf, parse_view

NODES = ["n2", "n1", "n3"]  # the cluster file's order


def view(conf: ViewConf | None = None) -> dict[str, object]:
    return {"self": "n2", "interval": 1.5, **(conf or ViewConf()).as_json(NODES)}


def history() -> dict[str, object]:
    return {
        "times": [100.0, 101.5, 103.0],
        "nodes": {
            "n1": {"cpu_user": [0.1, 0.2, None], "disk_read": [1000, 0, None],
                   "cpu_system": [0.05, 0.05, None]},
            "n2": {"cpu_user": [0.3, 0.4, 0.5], "disk_read": [24, 10, 5],
                   "cpu_system": [0.1, 0.1, 0.1]},
            "n3": {"cpu_user": [None, None, None], "disk_read": [None, None, None],
                   "cpu_system": [None, None, None]},
        },
    }  # fmt: skip


def test_every_default_chart_gets_a_line_per_node_and_the_aggregate() -> None:
    charts = prepare(view(), history())
    assert [c.title for c in charts][:5] == ["User CPU", "Sys CPU", "Idle CPU", "Wait CPU",
                                            "Disk Read"]  # fmt: skip
    usr = charts[0]
    assert usr.times == [100.0, 101.5, 103.0] and usr.top == 100 and usr.unit == "percent"
    assert [(line.label, line.colour) for line in usr.nodes] == [
        ("n2", PALETTE[0]), ("n1", PALETTE[1]), ("n3", PALETTE[2])]  # fmt: skip
    assert usr.nodes[0].values == pytest.approx([30, 40, 50])  # shares to percent
    assert usr.nodes[1].values[2] is None and usr.nodes[2].values == [None, None, None]
    # the average of the known values; unknown nodes do not count as zero
    assert usr.total.values == pytest.approx([20, 30, 50]) and usr.total.label == "average"
    read = charts[4]
    assert read.top is None and read.total.label == "sum"
    assert read.total.values == [1024, 10, 5]
    idle = charts[2]  # a field the history does not have: unknown everywhere
    assert idle.total.values == [None, None, None]


def test_a_chart_of_several_fields_adds_them_up() -> None:
    (busy,) = prepare(view(parse_view([("charts", "busy", 2)], "f")), history())
    # cpu_iowait is absent: unknown, so the sum is unknown too
    assert busy.nodes[0].values == [None, None, None]
    conf = ViewConf((Chart("x", "User+Sys", ("cpu_user", "cpu_system"), "sum", "percent"),))
    (both,) = prepare(view(conf), history())
    assert both.nodes[0].values == pytest.approx([40, 50, 60])
    assert both.total.values == pytest.approx([55, 75, 60])


def test_fields_and_order() -> None:
    assert fields(view())[:3] == ["cpu_user", "cpu_system", "cpu_idle"]
    assert node_order(view(), ["n1", "z", "n2", "a"]) == ["n2", "n1", "a", "z"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"times": "now", "nodes": {}}, "times is not a list"),
        ({"times": [1.0], "nodes": []}, "nodes is not an object"),
        ({"times": [1.0, 2.0], "nodes": {"n1": {"cpu_user": [0.1]}}}, "1 values for 2 times"),
        ({"times": [1.0], "nodes": {"n1": {"cpu_user": ["x"]}}}, "n1's cpu_user is not a number"),
        ({"times": [None], "nodes": {}}, "a time is null"),
    ],
)
def test_garbage_is_a_value_error(bad: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        prepare(view(), bad)


def test_the_command_lines_values() -> None:
    assert [seconds(t) for t in ("90", "90s", "10m", "2h", "1d", "1.5m")] == [
        90, 90, 600, 7200, 86400, 90]  # fmt: skip
    for bad in ("", "m", "ten", "10x", "-5m", "0", "inf"):
        with pytest.raises(ValueError):
            seconds(bad)
    assert size("1200x900") == (1200, 900) and size("640X480") == (640, 480)
    for bad in ("1200", "x900", "1200x", "12x900", "axb", "1200x900x3"):
        with pytest.raises(ValueError):
            size(bad)
    assert step(600, 1.5) == 2.0 and step(60, 1.5) == 1.5 and step(3600, 0.2) == 12.0
    assert [units(v) for v in (0, 999, 1000, 1536, 20 * 1024**2, 3 * 1024**4)] == [
        "0B", "999B", "1.0k", "1.5k", "20M", "3T"]  # fmt: skip
