"""The history ring: bounded, oldest first, two tiers, NaN for the unknown."""

from __future__ import annotations

import math

import pytest

from dsh.core.gossip import StatusRow
from dsh.core.history import FIELDS, MIN_COARSE, History, point
from dsh.core.wire import Usage

T0 = 1_699_999_800.0  # a multiple of 300 s: steps start at T0
USAGE = Usage(0.25, 0.125, 0.5, 0.125, 100.0, 200.0, 300.0, 400.0, 7, 8)


def row(name: str, state: str = "up", load: float = 1.5, usage: Usage | None = USAGE) -> StatusRow:
    return StatusRow(name, state, load, 4, 1000, 1.0, 1.0, 0.5, 0.1, 0.75, 0.0, False,
                     2000, state == "drained", usage)  # fmt: skip


def test_a_point_holds_every_field_and_nan_for_the_unknown() -> None:
    up = dict(zip(FIELDS, point(row("a"), 3), strict=True))
    assert up["state"] == 1 and up["load"] == 1.5 and up["cpus"] == 4 and up["jobs"] == 3
    assert (up["cpu_user"], up["disk_write"], up["swap_used"]) == (0.25, 200.0, 7.0)
    old = dict(zip(FIELDS, point(row("a", usage=None), 0), strict=True))
    assert math.isnan(old["cpu_user"]) and old["load"] == 1.5  # a node of the previous release
    down = dict(zip(FIELDS, point(row("a", "down"), 0), strict=True))
    assert down["state"] == 0 and math.isnan(down["load"])  # its last report is not its state now
    assert dict(zip(FIELDS, point(row("a", "drained"), 0), strict=True))["state"] == 2


def test_a_suspect_node_keeps_its_values_a_left_one_has_none() -> None:
    suspect = dict(zip(FIELDS, point(row("a", "suspect"), 0), strict=True))
    assert suspect["state"] == 3 and suspect["load"] == 1.5 and suspect["cpu_user"] == 0.25
    left = dict(zip(FIELDS, point(row("a", "left"), 0), strict=True))
    assert left["state"] == 4 and math.isnan(left["load"]) and math.isnan(left["cpu_user"])
    assert math.isnan(left["cpus"]) and left["jobs"] == 0
    # a state this release does not know is not a number, and its values unknown
    other = dict(zip(FIELDS, point(row("a", "whatever"), 0), strict=True))
    assert math.isnan(other["state"]) and math.isnan(other["load"])


def test_since_gives_what_came_after_oldest_first_and_fields_on_request() -> None:
    h = History(interval=1.0, span=10.0)
    for k in range(5):
        h.record(T0 + k, [row("a", load=k), row("b", load=10 + k)], {"a": k})
    s = h.since(T0 + 1.5, fields=["load", "jobs"])
    assert s.times == [T0 + 2, T0 + 3, T0 + 4]
    assert s.nodes["a"] == {"load": [2.0, 3.0, 4.0], "jobs": [2, 3, 4]}
    assert s.nodes["b"]["load"] == [12.0, 13.0, 14.0]
    assert list(h.since(T0, names=["b"]).nodes) == ["b"]
    with pytest.raises(ValueError):
        h.since(T0, fields=["bogus"])


def test_the_fine_ring_is_bounded_and_older_points_are_five_minute_means() -> None:
    h = History(interval=10.0, span=600.0, step=300.0, coarse_span=3600.0)
    assert h.fine.capacity == 60 and h.coarse.capacity == 12
    for k in range(180):  # half an hour: the fine ring keeps the last ten minutes
        h.record(T0 - T0 % 300 + k * 10, [row("a", load=float(k))], {})
    s = h.since(0, fields=["load"])
    fine = [t for t in s.times if t >= s.times[-1] - 590]
    assert len(fine) == 60
    coarse = s.times[: len(s.times) - 60]
    assert coarse == sorted(coarse) and all(c < fine[0] for c in coarse)
    # the first 5-minute step averages loads 0..29
    assert s.nodes["a"]["load"][0] == pytest.approx(14.5)


def test_a_step_averages_the_known_values_and_keeps_the_last_count() -> None:
    h = History(interval=1.0, span=100.0)
    for k in range(6):
        state = "down" if k == 1 else "up"
        h.record(T0 + k, [row("a", state, load=float(k))], {"a": 10 + k})
    s = h.since(T0 - 1, step=3.0, fields=["load", "jobs"])
    # steps by wall time: [T0+0..2], [T0+3..5]; the down point is unknown, not 0
    assert s.nodes["a"]["load"] == [pytest.approx(1.0), pytest.approx(4.0)]
    assert s.nodes["a"]["jobs"] == [12, 15]


def test_a_node_added_later_is_unknown_before_and_one_forgotten_is_gone() -> None:
    h = History(interval=1.0, span=10.0)
    h.record(T0, [row("a")], {})
    h.record(T0 + 1, [row("a"), row("c")], {})
    s = h.since(0, fields=["load"])
    assert s.nodes["c"]["load"] == [None, 1.5]
    h.forget(["a"])
    assert list(h.since(0).nodes) == ["a"]


def test_memory_is_fixed_by_the_node_count_and_under_20_mb_for_100_nodes() -> None:
    h = History(interval=1.5)
    rows = [row(f"node{i:03d}") for i in range(100)]
    h.record(T0, rows, {})
    before = h.nbytes
    for k in range(1, 50):
        h.record(T0 + 1.5 * k, rows, {})
    assert h.nbytes == before < 20_000_000


def test_a_forgotten_node_does_not_come_back_when_the_coarse_step_closes() -> None:
    h = History(interval=10.0, span=60.0, step=300.0, coarse_span=3600.0)
    for k in range(10):  # into the first 5-minute step, still open
        h.record(T0 + k * 10, [row("a"), row("b")], {})
    h.forget(["a"])
    for k in range(10, 40):  # the step closes, and others after it
        h.record(T0 + k * 10, [row("a")], {})
    assert set(h.coarse.nodes) == {"a"} and list(h.since(0).nodes) == ["a"]


def test_above_32_members_memory_and_work_stay_those_of_32() -> None:
    h = History(interval=1.5)
    rows32 = [row(f"n{i}") for i in range(32)]
    ticks = [h.due(32) for _ in range(10)]
    assert all(ticks) and h.fine.capacity == 2400 and h.coarse.capacity == 288
    for k in range(100):
        h.record(T0 + 1.5 * k, rows32, {})
    kept = h.since(0.0, fields=["load"]).times
    # 200 members: every 7th tick, a ring 7 times smaller that keeps the newest points
    recorded = [h.due(200) for _ in range(70)]
    assert sum(recorded) == 10 and recorded[0]
    assert h.fine.capacity == 343 and h.coarse.capacity == 42
    assert h.since(0.0, fields=["load"]).times == kept[-343:]
    rows200 = [row(f"n{i}") for i in range(200)]
    for k in range(400):
        h.record(T0 + 1000 + 10.5 * k, rows200, {})
    small = History(interval=1.5)
    for k in range(2400):
        small.record(T0 + 1.5 * k, rows32, {})
    assert h.nbytes <= 1.05 * small.nbytes  # 200 members in the memory of 32
    huge = History(interval=1.5)
    assert sum(huge.due(10_000) for _ in range(313)) == 1
    assert huge.fine.capacity == 8 and huge.coarse.capacity == MIN_COARSE
    h.due(8)  # back below 32: every tick again, and the full hour
    assert h.every == 1 and h.fine.capacity == 2400
    assert len(h.since(0.0).times) <= 343 + 42
