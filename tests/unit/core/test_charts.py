"""The charts and the [view] section: cstat's defaults, its keys, FILE:LINE errors."""

from __future__ import annotations

import pytest

from dsh.core.charts import (
    CHARTS,
    CSS_COLOURS,
    DEFAULT_CHARTS,
    PALETTE,
    RATE,
    ViewConf,
    parse_view,
)
from dsh.core.history import FIELDS
from dsh.daemon.conf import parse_conf
from dsh.errors import ConfigFileError


def view(text: str) -> ViewConf:
    return parse_conf("[view]\n" + text, "dshd.conf").view


def test_the_defaults_are_cstats_eight_charts() -> None:
    charts = ViewConf().charts
    titles = ["User CPU", "Sys CPU", "Idle CPU", "Wait CPU", "Disk Read", "Disk Write",
              "Net In", "Net Out"]  # fmt: skip
    assert [c.title for c in charts] == titles
    assert [c.aggregate for c in charts] == ["avg"] * 4 + ["sum"] * 4
    assert [c.fields for c in charts] == [("cpu_user",), ("cpu_system",), ("cpu_idle",),
        ("cpu_iowait",), ("disk_read",), ("disk_write",), ("net_receive",),
        ("net_transmit",)]  # fmt: skip
    assert all(c.max == 100 and c.factor == 100 for c in charts[:4])  # percent, fixed
    assert all(c.max is None and c.factor == 1 and c.unit == RATE for c in charts[4:])  # auto
    assert parse_conf("").view == ViewConf()  # no [view]: the same
    assert tuple(c.name for c in charts) == DEFAULT_CHARTS


def test_every_chart_shows_history_fields() -> None:
    assert all(f in FIELDS for c in CHARTS.values() for f in c.fields)


def test_colours_follow_the_cluster_file_order() -> None:
    nodes = [f"n{i}" for i in range(25)]
    colours = ViewConf().colours(nodes)
    assert [colours[n] for n in nodes[:20]] == list(PALETTE)
    assert colours["n20"] == PALETTE[0]  # reused in order past the palette
    # the same node, the same colour, whoever asks: only the order decides
    assert ViewConf().colours(["a", "b", "c"]) == {"a": PALETTE[0], "b": PALETTE[1],
                                                   "c": PALETTE[2]}  # fmt: skip


def test_charts_choose_order_and_scale() -> None:
    v = view("charts = in read:200M, usr:50 out:auto\n")
    assert [c.name for c in v.charts] == ["in", "read", "usr", "out"]
    assert v.charts[1].max == 200 * 1024**2
    assert v.charts[2].max == 50
    assert v.charts[3].max is None
    # dsh's field names work too, and repeated lines add up (cstat's multi-line list)
    v = view("charts = cpu_user\ncharts = net_transmit:1.5k\n")
    assert [(c.name, c.max) for c in v.charts] == [("usr", 100), ("out", 1536)]


def test_cstat_chart_lines_as_they_are() -> None:
    v = view(
        'charts = "User CPU"   usr  0 {0.0 100.0  50.0} 1         average\n'
        'charts = "Disk Read"  read 6 {0.0 200.0 100.0} 1048576   sum\n'
        'charts = "Sys  CPU"   sys  1 {0.0 50.0  25.0} 1         sum\n'
    )
    assert [(c.title, c.max, c.aggregate) for c in v.charts] == [
        ("User CPU", 100, "avg"), ("Disk Read", 200 * 1048576, "sum"), ("Sys CPU", 50, "sum")
    ]  # fmt: skip


def test_colours_a_list_or_by_name() -> None:
    v = view("colours = red green\ncolours = Blue, #00AA88\ncolours = c=orange\n")
    assert v.palette == ("red", "green", "blue", "#00aa88")
    assert v.colours(["a", "b", "c", "d", "e"]) == {
        "a": "red", "b": "green", "c": "orange", "d": "#00aa88", "e": "red"
    }  # fmt: skip
    assert view("colors = C=#abc\n").colours(["c"]) == {"c": "#abc"}  # either spelling
    assert {"red", "green", "blue", "yellow", "cyan", "magenta", "orange", "purple",
            "lightblue"} <= CSS_COLOURS  # cstat's own list  # fmt: skip


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("charts = usr nope\n", 2, "no chart 'nope'"),
        ("charts = usr:lots\n", 2, "usr's maximum 'lots' is not auto or a number"),
        ("charts = usr:5k\n", 2, "usr's maximum '5k' is not auto or a number"),
        ("charts = read:0\n", 2, "must be above 0"),
        ("charts = read:2X\n", 2, "is not auto or a number with k, M or G"),
        ("charts = usr\ncharts = sys usr\n", 3, "chart 'usr' given twice (first on line 2)"),
        ('charts = "User CPU" usr 0 {0 100} 1 average\n', 2, "is not {min max tick}"),
        ('charts = "User CPU" usr 0 {0 100 50} 1 median\n', 2, "'median' is not average or sum"),
        ('charts = "User CPU" usr {0 100 50} 1 average\n', 2, "a cstat chart is"),
        ("colours = red puce\n", 2, "'puce' is not a colour"),
        ("colours = =red\n", 2, "which node?"),
        ("colours =\n", 2, "colours has no value"),
        ("chart = usr\n", 2, "[view] has no setting 'chart'"),
        ("charts = usr\n[view]\n", 3, "[view] given twice (first on line 1)"),
    ],
)
def test_errors_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigFileError) as caught:
        view(text)
    assert caught.value.line == line
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"dshd.conf:{line}: ")


def test_view_json() -> None:
    v = parse_view([("charts", "usr read:1M", 2), ("colours", "b=red", 3)], "f")
    got = v.as_json(["a", "b"])
    assert got["nodes"] == ["a", "b"]
    assert got["colours"] == {"a": PALETTE[0], "b": "red"}
    assert got["charts"] == [
        {"name": "usr", "title": "User CPU", "fields": ["cpu_user"], "aggregate": "avg",
         "unit": "percent", "factor": 100.0, "max": 100.0},
        {"name": "read", "title": "Disk Read", "fields": ["disk_read"], "aggregate": "sum",
         "unit": "bytes/s", "factor": 1.0, "max": 1048576.0},
    ]  # fmt: skip
