"""dsh top's pure parts: the rows out of /api/cluster, the table's columns, units,
colour bands, sort, filter and scrolling, the log's choice of new reports."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from dsh.client.cli import Options
from dsh.client.config import ClientConfig, config_from
from dsh.client.top import view
from dsh.client.top.cli import as_json, wants_color
from dsh.client.top.log import HEADER, Logbook, csv_line, format_line
from dsh.client.top.rows import cluster_row, filter_rows, next_sort, node_rows, sort_rows
from dsh.errors import ConfigError

GIB = 1 << 30


def node(name: str, state: str = "up", **values: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": name, "state": state, "age": 0.2, "load": 0.5, "load1": 0.4, "cpus": 4,
        "mem_avail": 6 * GIB, "mem_total": 8 * GIB, "score": 0.3, "cpu_user": 0.2,
        "cpu_system": 0.05, "cpu_idle": 0.7, "cpu_iowait": 0.05, "disk_read": 2048,
        "disk_write": 0, "net_receive": 3 << 20, "net_transmit": 100, "swap_used": 0,
        "swap_total": GIB, "jobs": 5, "jobs_recent": 2,
    }  # fmt: skip
    if state in ("down", "left"):
        base.update({k: None for k in base if k not in ("name", "state", "age", "jobs")})
        base["jobs_recent"] = 0
    base.update(values)
    return base


def answer(*nodes: dict[str, object]) -> dict[str, object]:
    return {"self": "n1", "time": 1_800_000_000.0, "interval": 1.5, "nodes": list(nodes)}


def plain(frame: view.Frame) -> list[str]:
    return view.text(frame).splitlines()


def cells(line: str) -> list[str]:
    return line.replace("|", " ").split()


# -- one value ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, ("-", "")), (0.2, ("0", "")), (1, ("1", "red")), (33.4, ("33", "red")),
     (34, ("34", "yellow")), (67.9, ("68", "green")), (68, ("68", "green")),  # the shown number
     (99.4, ("99", "green")), (100, ("100", "white bold"))],
)  # fmt: skip
def test_percentages_take_dools_colour_bands(value: float | None, expected: view.Segment) -> None:
    assert view.percent(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, ("-", "")), (0, ("0 ", "")), (0.4, ("0 ", "")), (1023, ("1023B", "red")),
     (9999, ("9999B", "red")), (10_000, ("10k", "yellow")), (3 << 20, ("3072k", "yellow")),
     (12_000_000, ("11M", "green")), (6 * GIB, ("6144M", "green")),
     (20 * GIB, ("20G", "blue")), (5 << 40, ("5120G", "blue"))],
)  # fmt: skip
def test_rates_and_amounts_take_dools_units_at_base_1024(
    value: float | None, expected: view.Segment
) -> None:
    assert view.amount(value) == expected
    assert len(expected[0]) <= 5


def test_load_and_age_fit_their_columns() -> None:
    assert [view.load(v)[0] for v in (None, 0.0, 3.14159, 12.34, 123.4)] == [
        "-", "0.00", "3.14", "12.3", "123"]  # fmt: skip
    assert [view.age(s) for s in (0.4, 59.9, 60, 3599, 7200, 90000)] == [
        "0s", "59s", "1m", "59m", "2h", "1d"]  # fmt: skip


# -- the rows ----------------------------------------------------------------------


def test_rows_take_the_apis_units_to_the_tables() -> None:
    (row,) = node_rows(answer(node("n1")))
    assert (row.usr, row.sys, row.idl, row.wai) == pytest.approx((20, 5, 70, 5))
    assert row.mem_used == 2 * GIB and row.mem_avail == 6 * GIB and row.cpus == 4
    assert row.jobs_recent == 2 and row.jobs == 5 and row.live == 1


def test_what_is_missing_or_garbage_is_unknown_not_an_error() -> None:
    data = answer(
        {"name": "bare"},
        node("odd", cpu_user="lots", disk_read=-5, load=float("inf"), cpus=True),
        {"state": "up"},  # no name: not a node
        "not a node",  # type: ignore[arg-type]
    )
    bare, odd = node_rows(data)
    assert bare.state == "?" and bare.load is None and bare.mem_used is None
    assert odd.usr is None and odd.disk_read is None and odd.load is None and odd.cpus is None
    assert node_rows({"nodes": "many"}) == [] and node_rows({}) == []
    lines = plain(view.render(data, 120))
    bare_line = next(line for line in lines if line.startswith("bare"))
    assert set(cells(bare_line)[2:-2]) == {"-"}  # every value but the jobs counts


def test_the_cluster_row_averages_percentages_and_sums_the_rest() -> None:
    data = answer(
        node("a", cpu_user=0.1, cpus=2, disk_read=1000, net_transmit=10, jobs_recent=1),
        node("b", cpu_user=0.5, cpus=8, disk_read=3000, net_transmit=30, jobs_recent=4),
        node("c", "drained", cpu_user=0.3, cpus=4, disk_read=0, net_transmit=0, jobs_recent=0),
        node("d", "down", age=75.0),
    )
    total = cluster_row(node_rows(data))
    assert total.usr == pytest.approx(30.0)  # (10 + 50 + 30) / 3: the down node has none
    assert total.cpus == 14 and total.disk_read == 4000 and total.net_transmit == 40
    assert total.jobs_recent == 5 and total.jobs == 20  # the down node's past jobs count
    assert total.mem_used == 6 * GIB and total.mem_avail == 18 * GIB
    assert total.load == pytest.approx(1.5) and total.state == "3/4"
    last = plain(view.render(data, 120))[-1]
    assert cells(last)[:6] == ["cluster", "3/4", "1.50", "1.20", "14", "-"]
    assert cells(last)[6] == "30"  # usr %
    assert cluster_row([]).usr is None and cluster_row([]).state == "0/0"


# -- the table ---------------------------------------------------------------------


def test_down_nodes_stay_dimmed_with_their_age_and_drained_ones_are_marked() -> None:
    data = answer(node("n1"), node("n2", "down", age=75.0), node("n3", "drained"))
    lines = view.render(data, 120).lines
    down = next(line for line in lines if line[0][0].startswith("n2"))
    assert all("dim" in style.split() for _, style in down)
    assert down[2] == ("down 1m ", "red dim")
    drained = next(line for line in lines if line[0][0].startswith("n3"))
    assert drained[2] == ("drain   ", "magenta")
    up = next(line for line in lines if line[0][0].startswith("n1"))
    assert not any("dim" in style.split() for _, style in up)
    assert "3 nodes, 1 up, 1 drained, 1 down" in plain(view.render(data, 120))[0]


def test_suspect_nodes_are_yellow_and_live_left_ones_dimmed_like_down() -> None:
    data = answer(node("n1"), node("n2", "suspect", age=3.4), node("n3", "left", age=75.0),
                  node("n4", "down", age=5.0), node("n5", "drained"),
                  node("n6", "left", age=None))  # fmt: skip
    lines = view.render(data, 120).lines
    by_name = {line[0][0].strip(): line for line in lines[3:-1]}
    suspect = by_name["n2"]
    assert suspect[2] == ("suspect ", "yellow")
    assert not any("dim" in style.split() for _, style in suspect)
    left = by_name["n3"]
    assert left[2] == ("left 1m ", "dim") and all("dim" in style.split() for _, style in left)
    assert by_name["n6"][2] == ("left    ", "dim")
    assert by_name["n4"][2] == ("down 5s ", "red dim")
    text = plain(view.render(data, 120))
    assert "6 nodes, 1 up, 1 suspect, 1 drained, 1 down, 2 left" in text[0]
    assert cells(next(t for t in text if t.startswith("n2")))[2] == "0.50"  # its last report's
    rows = node_rows(data)
    assert [r.live for r in rows] == [1, 1, 0, 0, 1, 0]
    assert cluster_row(rows).state == "3/6"  # live: up, suspect and drained
    assert cluster_row(rows).cpus == 12  # the suspect node's CPUs count, the left ones' not


def test_narrow_terminals_drop_the_least_needed_columns_first() -> None:
    data = answer(*(node(f"node{i:02d}.example.org") for i in range(3)))
    wide = plain(view.render(data, 300))
    assert cells(wide[2]) == ["node", "state", "load", "1m", "cpus", "score", "usr", "sys",
                              "idl", "wai", "used", "avail", "total", "swap", "read", "writ",
                              "recv", "send", "jobs", "all"]  # fmt: skip
    assert "node00.example.org" in wide[3]  # room for the whole name
    narrow = plain(view.render(data, 80))
    assert all(len(line) <= 80 for line in narrow)
    assert cells(narrow[2]) == ["node", "state", "load", "usr", "sys", "idl", "wai", "avail",
                                "read", "writ", "recv", "send", "jobs"]  # fmt: skip
    tiny = plain(view.render(data, 30))
    assert all(len(line) <= 30 for line in tiny)
    assert cells(tiny[3])[:3] == ["node00.example~", "up", "0.50"]


def test_a_long_name_is_cut_with_a_mark() -> None:
    assert view.fit("abcdefgh", 5, left=True) == "abcd~"
    assert view.fit("ab", 5, left=False) == "   ab"


def test_the_header_names_each_group_over_its_columns() -> None:
    groups, nicks = plain(view.render(answer(node("n1")), 120))[1:3]
    assert groups.index("cpu %") < nicks.index("idl") < groups.index("memory")
    assert len(groups) == len(nicks.rstrip())


def test_sorting_by_name_load_cpu_and_memory() -> None:
    rows = node_rows(answer(
        node("n10", load=3.0, cpu_idle=0.9, mem_avail=1 * GIB),
        node("n9", load=1.0, cpu_idle=0.1, mem_avail=7 * GIB),
        node("n2", load=2.0, cpu_idle=0.5, mem_avail=4 * GIB),
        node("n1", "down"),
    ))  # fmt: skip
    names = {
        key: [r.name for r in sort_rows(rows, key)] for key in ("name", "load", "cpu", "memory")
    }
    assert names == {
        "name": ["n1", "n2", "n9", "n10"], "load": ["n10", "n2", "n9", "n1"],
        "cpu": ["n9", "n2", "n10", "n1"], "memory": ["n10", "n2", "n9", "n1"],
    }  # fmt: skip
    assert [next_sort(k) for k in ("name", "load", "cpu", "memory", "?")] == [
        "load", "cpu", "memory", "name", "name"]  # fmt: skip


def test_the_filter_keeps_names_that_contain_the_text() -> None:
    rows = node_rows(answer(node("gpu1"), node("GPU2"), node("cpu1")))
    assert [r.name for r in filter_rows(rows, "gpu")] == ["gpu1", "GPU2"]
    frame = view.render(answer(node("gpu1"), node("GPU2"), node("cpu1")), 120, filter="gpu")
    lines = plain(frame)
    assert frame.shown == 2 and frame.total == 3 and "filter 'gpu' (2 of 3)" in lines[0]
    assert [cells(line)[0] for line in lines[3:]] == ["gpu1", "GPU2", "cluster"]
    assert cells(lines[-1])[4] == "12"  # the cluster row is still the whole cluster's CPUs


def test_the_live_view_scrolls_its_node_rows_between_pinned_lines() -> None:
    data = answer(*(node(f"n{i:02d}") for i in range(40)))
    frame = view.render(data, 100, 24, offset=10)
    lines = plain(frame)
    assert len(frame.lines) == 24 and frame.body == 19 and frame.offset == 10
    assert cells(lines[3])[0] == "n10" and cells(lines[21])[0] == "n28"
    assert cells(lines[22])[0] == "cluster"
    assert "rows 11-29 of 40" in lines[23] and lines[23].startswith("q quit")
    end = view.render(data, 100, 24, offset=1000)
    assert end.offset == 21 and cells(plain(end)[21])[0] == "n39"
    few = view.render(answer(node("a")), 100, 24, offset=5)
    assert few.offset == 0 and "rows" not in plain(few)[23]
    assert len(plain(view.render(data, 100, 3))) == 3  # a tiny window: what fits
    prompt = plain(view.render(data, 100, 24, prompt="n0"))[23]
    assert prompt.startswith("filter: n0_")


def test_a_banner_replaces_the_title_and_keeps_the_last_rows() -> None:
    frame = view.render(answer(node("n1")), 100, 10, banner="no answer from dshd, retrying")
    assert frame.lines[0] == [("no answer from dshd, retrying", "reverse red")]
    assert cells(plain(frame)[3])[0] == "n1"
    assert plain(view.render(None, 100, 10))[0] == "dsh top: waiting for dshd"


def test_ansi_text_has_escapes_only_with_colour() -> None:
    frame = view.render(answer(node("n1", cpu_user=0.2), node("n2", "down")), 120)
    bare = view.text(frame, color=False)
    assert "\033" not in bare
    coloured = view.text(frame, color=True)
    assert "\033[31m 20\033[0m" in coloured  # usr 20 %: red
    assert "\033[31;2mdown" in coloured  # the down node: dim
    assert re.sub(r"\033\[[0-9;]*m", "", coloured) == bare


def test_colour_follows_the_flags_then_no_color_then_the_terminal() -> None:
    assert wants_color(None, True, {}) and not wants_color(None, False, {})
    assert not wants_color(None, True, {"NO_COLOR": "1"}) and wants_color(
        None, True, {"NO_COLOR": ""}
    )
    assert wants_color(True, False, {"NO_COLOR": "1"}) and not wants_color(False, True, {})


def test_json_has_the_shown_rows_and_the_cluster_row() -> None:
    out = as_json(answer(node("n2"), node("n1"), node("x")), "name", "n")
    assert [n["name"] for n in out["nodes"]] == ["n1", "n2"]  # type: ignore[attr-defined]
    assert out["cluster"]["cpus"] == 12  # type: ignore[index]
    json.dumps(out)


# -- the log ----------------------------------------------------------------------


def test_the_log_writes_each_report_once() -> None:
    book = Logbook()
    first = answer(node("a", age=0.1), node("b", age=0.3))
    assert [r.name for _, r in book.fresh(first, 0)] == ["a", "b"]
    again = {**first, "time": 1_800_000_000.4, "nodes": [node("a", age=0.501), node("b", age=0.7)]}
    assert book.fresh(again, 0) == []  # the same reports, seen 0.4 s later
    later = {**first, "time": 1_800_000_001.5,
             "nodes": [node("a", age=0.1), node("b", "down", age=1.8)]}  # fmt: skip
    fresh = book.fresh(later, 0)
    assert [(r.name, r.state) for _, r in fresh] == [("a", "up"), ("b", "down")]
    assert fresh[0][0] == pytest.approx(1_800_000_001.4)  # the report's time, not the answer's
    still = {**later, "time": 1_800_000_003.0,
             "nodes": [node("b", "down", age=3.3)]}  # fmt: skip
    assert book.fresh(still, 0) == []  # down: no new report, no new line


def test_log_lines_parse_as_csv_and_json() -> None:
    (row,) = node_rows(answer(node("a,b", cpu_iowait=None)))
    line = csv_line(list(HEADER)) + format_line(1_800_000_000.0, row, "csv")
    header, values = list(csv.reader(io.StringIO(line)))
    record = dict(zip(header, values, strict=True))
    assert record["name"] == "a,b" and record["usr"] == "20.0" and record["wai"] == ""
    assert record["time"].startswith("20") and "T" in record["time"]
    parsed = json.loads(format_line(1_800_000_000.0, row, "jsonl"))
    assert parsed["wai"] is None and parsed["mem_used"] == 2 * GIB
    assert list(parsed) == list(HEADER)


# -- where the daemon is ------------------------------------------------------------


def test_dsh_http_port_is_read_once_with_the_rest() -> None:
    assert ClientConfig().http_port == 8383
    assert config_from(Options(), {"DSH_HTTP_PORT": "9000"}).http_port == 9000
    with pytest.raises(ConfigError, match="DSH_HTTP_PORT"):
        config_from(Options(), {"DSH_HTTP_PORT": "http"})
