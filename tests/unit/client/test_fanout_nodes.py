"""client/fanout.py: which nodes ``dsh -a`` and ``dsh -w`` run on, given the gossip's states."""

from __future__ import annotations

from dsh.client.cli import Options
from dsh.client.fanout import select

STATES = {"n1": "up", "n2": "suspect", "n3": "drained", "n4": "down", "n5": "left",
          "n6": "up"}  # fmt: skip


def options(*, all_nodes: bool = False, nodes: str | None = None, exclude: str | None = None,
            all_listed: bool = False) -> Options:  # fmt: skip
    o = Options()
    o.all_nodes, o.nodes, o.exclude, o.all_listed = all_nodes, nodes, exclude, all_listed
    return o


def test_a_runs_on_live_nodes_suspect_ones_too_and_names_down_and_left_ones() -> None:
    assert select(STATES, options(all_nodes=True)) == (
        ["n1", "n2", "n3", "n6"],
        {"down": ["n4"], "left": ["n5"]},
    )


def test_all_listed_tries_every_node() -> None:
    assert select(STATES, options(all_nodes=True, all_listed=True)) == (list(STATES), {})


def test_each_state_is_a_group() -> None:
    assert select(STATES, options(nodes="@suspect,@up")) == (["n2", "n1", "n6"], {})
    assert select(STATES, options(nodes="@left", all_listed=True)) == (["n5"], {})
    assert select(STATES, options(nodes="@left")) == ([], {"left": ["n5"]})
    assert select(STATES, options(all_nodes=True, exclude="@down,@left")) == (
        ["n1", "n2", "n3", "n6"],
        {},
    )


def test_a_node_the_gossip_does_not_know_is_tried() -> None:
    assert select({}, options(nodes="x[1-2]")) == (["x1", "x2"], {})
