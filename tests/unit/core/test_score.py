"""Scoring functions: lower is better, and each input moves the score the documented way."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsh.core.cluster import MAX_SCALE, parse_cluster
from dsh.core.score import DEFAULT_SCORE, GIB, SCORES, NodeView, score_load, score_loadavg

IDLE = NodeView(
    load=0.0, load1=0.0, ncpu=4, mem_avail=8 * GIB, loadscale=1.0, memscale=1.0, extra=0.0
)


def memory_part(v: NodeView) -> float:
    """The documented memory term: ``0.25 / (1 + free_GiB * memscale)``."""
    return 0.25 / (1 + v.mem_avail / GIB * v.memscale)


def test_default_is_registered() -> None:
    assert SCORES[DEFAULT_SCORE] is score_load


def test_documented_formula() -> None:
    v = replace(IDLE, load=3.0, extra=1.0, ncpu=8, loadscale=1.5, mem_avail=3 * GIB, memscale=2)
    # (3 + 1 + 1) / 8 * 1.5 + 0.25 / (1 + 3 * 2)
    assert score_load(v) == pytest.approx(0.9375 + 0.25 / 7)


def test_loadscale_2_doubles_an_idle_nodes_load_term() -> None:
    slow = replace(IDLE, loadscale=2.0)
    for fn in (score_load, score_loadavg):
        fast_term = fn(IDLE) - memory_part(IDLE)
        slow_term = fn(slow) - memory_part(slow)
        assert fast_term == pytest.approx(1 / 4)  # the job about to be placed, on 4 CPUs
        assert slow_term == pytest.approx(2 * fast_term)
        assert fn(slow) > fn(IDLE)


@pytest.mark.parametrize("name", sorted(SCORES))
def test_extra_load_raises_the_score(name: str) -> None:
    fn = SCORES[name]
    assert fn(replace(IDLE, extra=1.0)) > fn(IDLE)
    assert fn(replace(IDLE, extra=2.0)) > fn(replace(IDLE, extra=1.0))


@pytest.mark.parametrize("name", sorted(SCORES))
def test_more_cpus_lower_the_score_of_a_loaded_node(name: str) -> None:
    fn = SCORES[name]
    loaded = replace(IDLE, load=4.0, load1=4.0)
    assert fn(replace(loaded, ncpu=8)) < fn(loaded)


def test_load_raises_load_score_and_load1_raises_loadavg_score() -> None:
    assert score_load(replace(IDLE, load=1.0)) > score_load(IDLE)
    assert score_load(replace(IDLE, load1=5.0)) == score_load(IDLE)  # ignores the average
    assert score_loadavg(replace(IDLE, load1=1.0)) > score_loadavg(IDLE)
    assert score_loadavg(replace(IDLE, load=5.0)) == score_loadavg(IDLE)


@pytest.mark.parametrize("name", sorted(SCORES))
def test_more_free_memory_lowers_the_score(name: str) -> None:
    fn = SCORES[name]
    scores = [fn(replace(IDLE, mem_avail=gib * GIB)) for gib in (0, 1, 4, 64)]
    assert scores == sorted(scores, reverse=True)
    assert len(set(scores)) == len(scores)


@pytest.mark.parametrize("name", sorted(SCORES))
def test_higher_memscale_lowers_the_score(name: str) -> None:
    fn = SCORES[name]
    assert fn(replace(IDLE, memscale=2.0)) < fn(IDLE) < fn(replace(IDLE, memscale=0.5))
    # memory that is not there does not count more for being scaled
    empty = replace(IDLE, mem_avail=0)
    assert fn(replace(empty, memscale=10.0)) == fn(empty)


def test_memory_weighs_at_most_a_quarter_job_per_cpu_in_load_score() -> None:
    no_mem = replace(IDLE, mem_avail=0)
    lots = replace(IDLE, mem_avail=1024 * GIB)
    assert 0 < score_load(no_mem) - score_load(lots) < 0.25


def test_memory_score_prefers_memory_over_load() -> None:
    fn = SCORES["memory"]
    busy_big = replace(IDLE, load=8.0, mem_avail=64 * GIB)
    idle_small = replace(IDLE, mem_avail=1 * GIB)
    assert fn(busy_big) < fn(idle_small)
    # ... and load breaks ties between equal memory
    assert fn(replace(IDLE, load=1.0)) > fn(IDLE)


U32_LOAD = 0xFFFFFFFF / 1000  # the largest load the wire carries


def views(scales: st.SearchStrategy[float]) -> st.SearchStrategy[NodeView]:
    loads = st.floats(0, U32_LOAD)
    return st.builds(
        NodeView,
        load=loads,
        load1=loads,
        ncpu=st.integers(1, 0xFFFF),
        mem_avail=st.integers(0, 2**64 - 1),
        loadscale=scales,
        memscale=scales,
        extra=st.floats(0, 1e6),
    )


@settings(max_examples=150)
@given(views(st.floats(1e-6, 1e6)), st.sampled_from(sorted(SCORES)))
def test_scores_finite_over_wire_ranges(v: NodeView, name: str) -> None:
    value = SCORES[name](v)
    assert isinstance(value, float)
    assert math.isfinite(value)
    assert value > 0


@pytest.mark.parametrize("name", sorted(SCORES))
def test_scores_finite_at_the_largest_scale_the_cluster_file_accepts(name: str) -> None:
    # The cluster file takes scales up to MAX_SCALE.
    (spec,) = parse_cluster(f"slow.foo.bar {MAX_SCALE:g} {MAX_SCALE:g}\n")
    busy = replace(
        IDLE,
        load=U32_LOAD,  # the largest load the wire carries
        load1=U32_LOAD,
        ncpu=1,
        loadscale=spec.loadscale,
        memscale=spec.memscale,
    )
    # A score of inf cannot be compared with others (inf - inf is nan), and
    # gossip.best() then cannot pick this node even when it is the only one.
    assert math.isfinite(SCORES[name](busy))
