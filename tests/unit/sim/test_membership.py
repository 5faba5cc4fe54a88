"""The real core's membership in the simulator: crashes, partitions, a slow node, departures, loss.

The timing of the design (/work/briefs/issue15.md, interval I = 1.5 s):
suspect after 3.3 s without fresh news, down after a suspicion timeout of
at most 6 * 0.25 * log10(N) * I; ``left`` at once. 8 nodes send to everyone,
40 and more (above the fan-out threshold, 32) to their ring successors and
a few random members.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from dsh.sim.cluster import SimCluster
from dsh.sim.metrics import FalseAlarms
from dsh.sim.network import LinkProfile

INTERVAL = 1.5
GONE = ("down", "left")


def started(size: int, seed: int, loss: float = 0.0, warmup: float = 60.0) -> SimCluster:
    cluster = SimCluster(size, seed=seed, link=LinkProfile(loss=loss))
    cluster.start()
    cluster.run_until(warmup)
    return cluster


def views(cluster: SimCluster, member: int) -> dict[int, str]:
    """What every running node but ``member`` shows of ``member``."""
    return {o: cluster.member_state(o, member) for o in cluster.live() if o != member}


def not_all(
    cluster: SimCluster, state: str, members: range | list[int], observers: list[int] | None = None
) -> list[tuple[int, int, str]]:
    """(observer, member, state) for each pair that does not show ``state``."""
    wrong = []
    for o in cluster.live() if observers is None else observers:
        for m in members:
            if m != o and (s := cluster.member_state(o, m)) != state:
                wrong.append((o, m, s))
    return wrong


def steps(cluster: SimCluster, until: float, step: float = 0.25) -> Iterator[float]:
    while cluster.now < until - 1e-9:
        cluster.run_until(min(until, cluster.now + step))
        yield cluster.now


def watching(cluster: SimCluster) -> FalseAlarms:
    """Every pair of running nodes, for edges of a member that runs: up -> suspect, -> down.

    A member never heard of shows ``down`` too (table.py's NEW); that is no
    edge: only a member once shown up and then down counts."""
    alarms = FalseAlarms.sample(cluster, budget=10**9, settle=0.0, rng=random.Random(0))
    alarms.check(cluster)
    return alarms


def downs(
    alarms: FalseAlarms, member: int | None = None, other_than: int | None = None
) -> list[tuple[float, int, int, str, str]]:
    return [
        e
        for e in alarms.examples
        if e[4] in GONE and (member is None or e[2] == member) and e[2] != other_than
    ]


def declared_down(cluster: SimCluster) -> int:
    """Members declared down (own judgments and ones heard from others), over running nodes."""
    return sum(
        node.events["declared_down"] + node.events["heard_down"]
        for node in cluster.nodes
        if node is not None
    )


@pytest.mark.parametrize(("size", "within"), [(8, 5.0), (64, 60.0)])
def test_every_node_shows_every_node_up_soon_after_the_start(size: int, within: float) -> None:
    cluster = SimCluster(size, seed=size)
    cluster.start()
    for _ in steps(cluster, within, step=1.0):
        if not not_all(cluster, "up", range(size)):
            break
    wrong = not_all(cluster, "up", range(size))
    assert not wrong, f"{len(wrong)} pairs not up after {within:g} s: {wrong[:5]}"


@pytest.mark.parametrize("size", [8, 64])
def test_a_crashed_node_goes_down_everywhere_and_no_running_node_does(size: int) -> None:
    cluster = started(size, seed=size)
    victim = 3
    assert set(views(cluster, victim).values()) == {"up"}
    alarms = watching(cluster)
    crash_at = cluster.now
    cluster.crash(victim)
    all_down_at = None
    for now in steps(cluster, crash_at + 20.0):
        alarms.check(cluster)
        if all_down_at is None and set(views(cluster, victim).values()) == {"down"}:
            all_down_at = now
    assert all_down_at is not None, views(cluster, victim)
    # the design's bound: 3.3 s to suspect + at most 6 * t_min to down, plus spreading
    assert all_down_at - crash_at <= 3.3 + 6 * 0.25 * 2 * INTERVAL + 2 * INTERVAL
    assert set(views(cluster, victim).values()) == {"down"}  # and it stays down
    assert alarms.down_edges == 0, alarms.examples


@pytest.mark.parametrize("size", [8, 40])
def test_a_partition_that_heals(size: int) -> None:
    cluster = started(size, seed=100 + size)
    assert not not_all(cluster, "up", range(size))
    left, right = list(range(size // 2)), list(range(size // 2, size))
    cluster.net.partition(left, right)
    for _ in steps(cluster, cluster.now + 30.0):
        pass
    # each side has given the other up, and still sees itself
    assert not not_all(cluster, "down", right, left)
    assert not not_all(cluster, "down", left, right)
    assert not not_all(cluster, "up", left, left)
    assert not not_all(cluster, "up", right, right)
    cluster.net.heal()
    healed_at = cluster.now
    for _ in steps(cluster, healed_at + 60.0, step=0.5):
        if not not_all(cluster, "up", range(size)):
            break
    wrong = not_all(cluster, "up", range(size))
    assert not wrong, (
        f"{len(wrong)} pairs not up {cluster.now - healed_at:.1f} s after: {wrong[:5]}"
    )


@pytest.mark.parametrize("size", [8, 64])
def test_a_slow_node_is_suspected_at_most_never_down_and_puts_nobody_down(size: int) -> None:
    cluster = started(size, seed=200 + size)
    slow = 2
    assert set(views(cluster, slow).values()) == {"up"}
    alarms = watching(cluster)
    declared = declared_down(cluster)
    # It stalls at every tick, so that its reports are up to 1.5 + 1.8 = 3.3 s
    # apart: as long as suspect_after, within the detection time.
    cluster.slow(slow, 1.2 * INTERVAL)
    for _ in steps(cluster, cluster.now + 60.0, step=0.5):
        alarms.check(cluster)
    shown_down = {"the slow node": downs(alarms, member=slow)[:3],
                  "others": downs(alarms, other_than=slow)[:3]}  # fmt: skip
    assert shown_down == {"the slow node": [], "others": []}
    assert declared_down(cluster) - declared == 0


@pytest.mark.parametrize("size", [8, 64])
def test_a_node_silent_beyond_the_detection_time_accuses_nobody_and_comes_back(size: int) -> None:
    # Stalls of 3 s at every tick: reports 4.5 s apart, longer than a crash takes
    # to be declared at 8 nodes (3.3 s + t_min), so the others may well give it
    # up, as they would a crashed node. What must hold (Lifeguard's point): the
    # slow node, which misses what it is sent, declares nobody down, the others
    # put nobody else down, and it is up everywhere once it is fast again.
    cluster = started(size, seed=300 + size)
    slow = 2
    alarms = watching(cluster)
    node = cluster.nodes[slow]
    assert node is not None
    own = node.events["declared_down"]
    cluster.slow(slow, 2 * INTERVAL)
    for _ in steps(cluster, cluster.now + 60.0, step=0.5):
        alarms.check(cluster)
    assert downs(alarms, other_than=slow)[:3] == []
    assert node.events["declared_down"] == own
    assert node.health > 0
    cluster.slow(slow, 0.0)
    for _ in steps(cluster, cluster.now + 4 * INTERVAL, step=0.5):
        pass
    assert set(views(cluster, slow).values()) == {"up"}


@pytest.mark.parametrize("size", [8, 64])
def test_a_leaving_node_is_left_everywhere_within_about_one_interval(size: int) -> None:
    cluster = started(size, seed=400 + size)
    leaver = 5
    assert set(views(cluster, leaver).values()) == {"up"}
    left_at = cluster.now
    cluster.leave(leaver)
    everywhere_at = None
    for now in steps(cluster, left_at + 10.0, step=0.05):
        if set(views(cluster, leaver).values()) == {"left"}:
            everywhere_at = now
            break
    assert everywhere_at is not None, views(cluster, leaver)
    assert everywhere_at - left_at <= 1.5 * INTERVAL


@pytest.mark.parametrize(("size", "minutes"), [(8, 5.0), (100, 2.0)])
def test_thirty_percent_loss_puts_no_running_node_down(size: int, minutes: float) -> None:
    cluster = started(size, seed=500 + size, loss=0.3, warmup=30.0)
    alarms = watching(cluster)
    declared = declared_down(cluster)
    for _ in steps(cluster, cluster.now + minutes * 60, step=1.0):
        alarms.check(cluster)
    # nobody crashed: every declaration (a node's own or news taken from another) is false
    assert declared_down(cluster) - declared == 0, alarms.examples
    assert alarms.down_edges == 0, alarms.examples
    # the network did lose datagrams: a third of them
    c = cluster.net.counters
    assert 0.25 < c.lost / sum(c.sent) < 0.35
