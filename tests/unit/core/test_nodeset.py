"""Node sets as pdsh and clush write them, and folding names back into one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsh.core.nodeset import NodeSetError, expand, fold

GROUPS = {"up": ["n1", "n2"], "down": ["n3"], "drained": [], "all": ["n1", "n2", "n3"]}


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("a", ["a"]),
        ("a,b , c", ["a", "b", "c"]),
        ("node[1-3]", ["node1", "node2", "node3"]),
        ("node[01-03,10]", ["node01", "node02", "node03", "node10"]),
        ("node[08-10]", ["node08", "node09", "node10"]),  # the lower bound's width is kept
        ("node[1-10/4]", ["node1", "node5", "node9"]),
        ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
        ("[1-2].x", ["1.x", "2.x"]),
        ("127.0.0.[21-22]", ["127.0.0.21", "127.0.0.22"]),
        ("n[2],n2,n[1-2]", ["n2", "n1"]),  # each once, in the order given
        ("@up,n9", ["n1", "n2", "n9"]),
        ("@drained", []),
    ],
)
def test_expand(text: str, names: list[str]) -> None:
    assert expand(text, GROUPS) == names


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty node set"),
        ("n[1-3", "'[' without ']'"),
        ("n1-3]", "']' without '['"),
        ("n[[1]]", "brackets inside brackets"),
        ("n[a-b]", "is not a list of numbers or ranges"),
        ("n[1-]", "is not a list of numbers or ranges"),
        ("n[]", "is not a list of numbers or ranges"),
        ("n[3-1]", "runs backwards"),
        ("n[1-4/0]", "must be at least 1"),
        ("n[1-4/x]", "is not a list of numbers or ranges"),
        ("a,,b", "an empty name between commas"),
        ("a,", "an empty name between commas"),
        ("a b", "a space in"),
        ("@nope", "no group @nope (groups: @all, @down, @drained, @up)"),
        ("n[1-1000000]", "more than 100000 names"),
        ("a[1-1000]b[1-1000]", "more than 100000 names"),
    ],
)
def test_bad_node_sets_say_what_is_wrong(text: str, why: str) -> None:
    with pytest.raises(NodeSetError) as caught:
        expand(text, GROUPS)
    assert why in str(caught.value)
    assert "\n" not in str(caught.value)


def test_groups_need_a_view() -> None:
    with pytest.raises(NodeSetError, match="no group @up"):
        expand("@up")


@pytest.mark.parametrize(
    ("names", "folded"),
    [
        (["n1", "n2", "n3"], "n[1-3]"),
        (["n3", "n1", "n2", "n5"], "n[1-3,5]"),
        (["n1"], "n1"),
        (["node09", "node10", "node11"], "node[09-11]"),
        (["n1", "n01"], "n01,n1"),  # different names: both kept
        (["x", "n2", "n10"], "n[2,10],x"),
        (["127.0.0.21", "127.0.0.22"], "127.0.0.[21-22]"),
        (["r1n1", "r1n2", "r2n1"], "r1n[1-2],r2n1"),
        (["a5b", "a6b"], "a[5-6]b"),
    ],
)
def test_fold(names: list[str], folded: str) -> None:
    assert fold(names) == folded


name = st.from_regex(r"[a-c]{1,2}[0-9]{1,3}", fullmatch=True)


@given(st.lists(name, min_size=1, max_size=30))
def test_folding_then_expanding_gives_the_same_names(names: list[str]) -> None:
    assert sorted(expand(fold(names))) == sorted(set(names))
