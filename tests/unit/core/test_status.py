"""The status port's table: formatted for people and awk, parsed back by dsh."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from support.gossip_node import make_node

from dsh.core import table
from dsh.core.gossip import OUTCOMES, Sample, StatusRow
from dsh.core.score import GIB
from dsh.core.status import (
    COLUMNS,
    LIVE,
    STATES,
    ClusterView,
    Member,
    format_status,
    parse_status,
)
from dsh.core.wire import State, Usage, encode_state

MIB = 1024 * 1024
# The documented column order (status.py docstring, README "The status port").
DOCUMENTED = ["name", "state", "load", "cpus", "freemem", "loadscale", "memscale", "score", "age",
              "load1", "extra", "user", "sys", "idle", "iowait", "diskr", "diskw", "netrx",
              "nettx", "swap", "via"]  # fmt: skip
USAGE = Usage(0.25, 0.125, 0.5, 0.125, 2048.0, 1536.4, 10 * 1024.0, 512.0, 3 * MIB + 7, 8 * GIB)


def row(name: str = "newton", state: str = "up", **kw: object) -> StatusRow:
    fields: dict[str, object] = dict(
        name=name,
        state=state,
        load=1.25,
        ncpu=8,
        mem_avail=3 * GIB + 5 * MIB,
        loadscale=2.0,
        memscale=0.5,
        score=0.40625,
        age=1.04,
        load1=0.5,
        extra=1.0,
        is_self=False,
    )
    fields.update(kw)
    return StatusRow(**fields)  # type: ignore[arg-type]


UNKNOWN = dict(load=None, ncpu=None, mem_avail=None, score=None, age=None, load1=None)
COUNTERS = {
    "datagrams": {"accepted": 12, "not_member": 1, "malformed": 2, "name_mismatch": 0, "stale": 3},
    "tcp": {"clients": 4},
}


def test_format_status_layout() -> None:
    rows = [
        row("newton.foo.bar", is_self=True, usage=USAGE),
        row("galileo.foo.bar", "down", extra=0.0, **UNKNOWN),
        row("k", "drained", load=12.5, ncpu=128, score=10.0),
    ]
    text = format_status(rows, ["self newton.foo.bar", "dshd 0.1 score=load"], COUNTERS)
    assert text.endswith("\n")
    lines = text.splitlines()
    assert lines[0].startswith("#")
    assert lines[0].lstrip("#").split() == DOCUMENTED
    body = lines[1:4]
    cells = [line.split() for line in body]
    assert all(len(c) >= 9 for c in cells)
    assert cells[0] == [
        "newton.foo.bar",
        "up",
        "1.25",
        "8",
        str(3 * 1024 + 5),  # free memory in MiB
        "2.00",
        "0.50",
        "0.406",
        "1.0",
        "0.50",
        "1.00",
        # version 2's usage: CPU percent, disk and network KiB/s, swap MiB
        "25.0", "12.5", "50.0", "12.5", "2", "2", "10", "0", "3",
        "file",  # listed in the cluster file
    ]  # fmt: skip
    # unknowns are '-', so awk's column numbers never shift (a node of version 1: no usage)
    assert cells[1] == ["galileo.foo.bar", "down", "-", "-", "-", "2.00", "0.50", "-", "-", "-",
                        "0.00", *["-"] * 9, "file"]  # fmt: skip
    assert cells[2][:4] == ["k", "drained", "12.50", "128"]
    # everything after the nodes is a comment
    tail = lines[4:]
    assert tail == [
        "# self newton.foo.bar",
        "# dshd 0.1 score=load",
        "# datagrams accepted=12 not_member=1 malformed=2 name_mismatch=0 stale=3",
        "# tcp clients=4",
    ]


def test_the_new_states_and_how_a_member_came() -> None:
    rows = [
        row("s", "suspect", age=3.5),  # still its last report's values
        row("l", "left", **UNKNOWN),
        row("f", "up", listed=False, loadscale=1.0, memscale=1.0),  # found: default scales
    ]
    cells = [line.split() for line in format_status(rows, [], {}).splitlines()[1:]]
    assert [(c[0], c[1], c[-1]) for c in cells] == [
        ("s", "suspect", "file"),
        ("l", "left", "file"),
        ("f", "up", "found"),
    ]
    assert all(len(c) == len(COLUMNS) for c in cells)
    assert cells[0][2:4] == ["1.25", "8"] and cells[1][2:4] == ["-", "-"]
    assert parse_status(format_status(rows, [], {})).nodes == [
        Member("s", "suspect", 8, 0.406),
        Member("l", "left", None, None),
        Member("f", "up", 8, 0.406, "found"),
    ]


def test_a_table_without_via_is_of_a_release_that_knew_listed_members_only() -> None:
    old = "a up 0.00 4 100 1.00 1.00 0.300 0.1 0.00 0.00 " + " ".join(["-"] * 9)
    oldest = "b up 0.00 4 100 1.00 1.00 0.300 0.1"  # version 1: up to age
    assert parse_status(f"{old}\n{oldest}\n").nodes == [
        Member("a", "up", 4, 0.3, "file"),
        Member("b", "up", 4, 0.3, "file"),
    ]


def test_columns_are_aligned_for_people() -> None:
    rows = [row("a"), row("a-much-longer-name.foo.bar", load=123.0)]
    lines = format_status(rows, [], {}).splitlines()
    # every column starts at the same offset on every line
    starts = [
        [i for i, ch in enumerate(line) if ch != " " and (i == 0 or line[i - 1] == " ")]
        for line in lines[1:]
    ]
    assert starts[0] == starts[1]
    assert lines[0].index("state") == starts[0][1]
    assert all(line == line.rstrip() for line in lines)


def test_no_rows_is_still_a_header() -> None:
    assert parse_status(format_status([], [], {})) == ClusterView(None, [])


def test_parse_status_round_trip() -> None:
    rows = [
        row("newton.foo.bar", score=0.25, is_self=True),
        row("galileo.foo.bar", "down", **UNKNOWN),
        row("kepler.foo.bar", "drained", ncpu=2, score=1.5),
    ]
    parsed = parse_status(format_status(rows, ["self newton.foo.bar"], COUNTERS))
    assert parsed == ClusterView(
        "newton.foo.bar",
        [
            Member("newton.foo.bar", "up", 8, 0.25),
            Member("galileo.foo.bar", "down", None, None),
            Member("kepler.foo.bar", "drained", 2, 1.5),
        ],
    )


def test_parse_status_of_a_real_nodes_rows() -> None:
    node = make_node(
        "newton.foo.bar\ngalileo.foo.bar 2.0\nkepler.foo.bar\n",
        "newton.foo.bar",
        {"galileo.foo.bar": "10.0.0.2"},
        seed=0,
    )
    node.tick(Sample(ncpu=4, load=1.0, load1=1.0, mem_avail=GIB, mem_total=GIB), 0.0, 0)
    state = State("galileo.foo.bar", 1, 1, 0, 16, 0.0, 0.0, GIB, 2 * GIB)
    node.receive(encode_state(state), "10.0.0.2", 0.0)
    text = format_status(
        node.status_rows(1.0), [f"self {node.name}"], {"datagrams": dict(node.counters)}
    )
    assert text.splitlines()[-1] == "# datagrams " + " ".join(
        f"{k}={1 if k == 'accepted' else 0}" for k in OUTCOMES
    )
    parsed = parse_status(text)
    assert parsed.self_name == "newton.foo.bar"
    assert [(n.name, n.state, n.cpus) for n in parsed.nodes] == [
        ("newton.foo.bar", "up", 4),
        ("galileo.foo.bar", "up", 16),
        ("kepler.foo.bar", "down", None),
    ]
    # newton: (1 + 1) / 4 = 0.5 plus memory; galileo: 1 / 16 * 2 = 0.125 plus memory
    scores = {n.name: n.score for n in parsed.nodes}
    assert scores["kepler.foo.bar"] is None
    assert abs(scores["newton.foo.bar"] - (0.5 + 0.125)) <= 0.0005  # type: ignore[operator]
    assert abs(scores["galileo.foo.bar"] - (0.125 + 0.125)) <= 0.0005  # type: ignore[operator]
    assert [n.name for n in parsed.candidates()] == ["galileo.foo.bar", "newton.foo.bar"]
    assert parsed.slots() == 20


# anything without white space that does not start with '#' stays one cell
names = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from("abcxyzABC019:"),
    st.text(st.sampled_from("abcxyz09-.:%#é"), max_size=30),
)
lines = st.builds(
    Member,
    name=names,
    state=st.sampled_from(STATES),
    cpus=st.none() | st.integers(1, 0xFFFF),
    # the table shows 3 decimals: thousandths survive exactly
    score=st.none() | st.integers(0, 10**7).map(lambda k: k / 1000),
    via=st.sampled_from(["file", "found"]),
)


@settings(max_examples=60)
@given(st.lists(lines, max_size=8, unique_by=lambda n: n.name), st.none() | names)
def test_round_trip_any_table(nodes: list[Member], self_name: str | None) -> None:
    rows = [
        row(n.name, n.state, ncpu=n.cpus, score=n.score, is_self=n.name == self_name,
            listed=n.via == "file")
        for n in nodes
    ]  # fmt: skip
    comments = [] if self_name is None else [f"self {self_name}", "dshd 0.1"]
    parsed = parse_status(format_status(rows, comments, COUNTERS))
    assert parsed == ClusterView(self_name, nodes)


def status(*nodes: Member) -> ClusterView:
    return ClusterView("a", list(nodes))


def test_candidates_are_up_nodes_best_first() -> None:
    s = status(
        Member("a", "up", 4, 0.9),
        Member("b", "down", 4, None),
        Member("c", "up", 4, 0.0),
        Member("d", "drained", 4, 0.1),
        Member("e", "up", 4, 0.5),
        Member("f", "up", None, None),  # up but no score: nothing to rank by
        Member("g", "suspect", 4, 0.05),  # live, but dshd would not name it best either
        Member("h", "left", 4, None),
        Member("i", "up", 4, 0.7, "found"),  # found by discovery: as good as listed
    )
    assert [n.name for n in s.candidates()] == ["c", "e", "i", "a"]


def test_slots_sum_cpus_of_up_nodes_only() -> None:
    s = status(
        Member("a", "up", 4, 0.9),
        Member("b", "down", 8, None),
        Member("c", "drained", 16, 0.1),
        Member("d", "up", 32, 0.5),
        Member("e", "up", None, 0.5),
        Member("f", "suspect", 64, 0.5),
        Member("g", "left", 128, None),
    )
    assert s.slots() == 36
    assert status().slots() == 0


def test_live_states_are_those_whose_last_report_counts() -> None:
    assert set(STATES) == {"up", "drained", "suspect", "down", "left"}
    assert frozenset(("up", "drained", "suspect")) == LIVE
    assert [s for s in STATES if Member("n", s, 1, 0.0).live] == ["up", "drained", "suspect"]
    # the core's names for what it shows (table.py) are among them
    assert {table.SUSPECT, table.DOWN, table.LEFT} <= set(STATES)


def test_parse_status_skips_what_it_does_not_know() -> None:
    text = (
        "# name state load cpus freemem loadscale memscale score age load1 extra\n"
        "a up 0.00 4 100 1.00 1.00 0.300 0.1 0.00 0.00 future-column\n"
        "\n"
        "short line\n"
        "#self b\n"
        "# self c d\n"
        "b up x y 100 1.00 1.00 z 0.1\n"
        "# self a\n"
    )
    parsed = parse_status(text)
    assert parsed.self_name == "a"
    assert parsed.nodes == [Member("a", "up", 4, 0.3), Member("b", "up", None, None)]
