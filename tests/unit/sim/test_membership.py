"""The real core's membership in the simulator: crashes, partitions, a slow node, departures, loss.

The timing of the design (/work/briefs/issue15.md, interval I = 1.5 s):
suspect after 3.3 s without fresh news, down after a suspicion timeout of
at most 6 * 0.25 * log10(N) * I; ``left`` at once. 8 nodes send to everyone,
40 and more (above the fan-out threshold, 32) to their ring successors and
a few random members.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dsh.sim.cluster import SimCluster
from dsh.sim.network import LinkProfile

INTERVAL = 1.5
WARMUP = 30.0
GONE = ("down", "left")


def started(size: int, seed: int, loss: float = 0.0) -> SimCluster:
    """A cluster after its warm-up, in which every node shows every node up."""
    cluster = SimCluster(size, seed=seed, link=LinkProfile(loss=loss))
    cluster.start()
    cluster.run_until(WARMUP)
    not_up = not_all(cluster, "up", range(size))
    assert not not_up, f"after {WARMUP:g} s not every node shows every node up: {not_up[:5]}"
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


def gone_live_pairs(
    cluster: SimCluster, exclude: tuple[int, ...] = ()
) -> list[tuple[int, int, str]]:
    """Pairs in which a running node shows another running node down or left."""
    live = [i for i in cluster.live() if i not in exclude]
    return [
        (o, m, s)
        for o in cluster.live()
        for m in live
        if m != o and (s := cluster.member_state(o, m)) in GONE
    ]


@pytest.mark.parametrize("size", [8, 64])
def test_a_crashed_node_goes_down_everywhere_and_no_running_node_does(size: int) -> None:
    cluster = started(size, seed=size)
    victim = 3
    crash_at = cluster.now
    cluster.crash(victim)
    all_down_at = None
    for now in steps(cluster, crash_at + 20.0):
        assert not gone_live_pairs(cluster), now
        if all_down_at is None and set(views(cluster, victim).values()) == {"down"}:
            all_down_at = now
    assert all_down_at is not None, views(cluster, victim)
    # the design's bound: 3.3 s to suspect + at most 6 * t_min to down, plus spreading
    assert all_down_at - crash_at <= 3.3 + 6 * 0.25 * 2 * INTERVAL + 2 * INTERVAL
    assert set(views(cluster, victim).values()) == {"down"}  # and it stays down


@pytest.mark.parametrize("size", [8, 40])
def test_a_partition_that_heals(size: int) -> None:
    cluster = started(size, seed=100 + size)
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
    assert not not_all(cluster, "up", range(size)), f"not healed {cluster.now - healed_at:.1f} s"


@pytest.mark.parametrize("size", [8, 64])
def test_a_slow_node_is_suspected_at_most_never_down(size: int) -> None:
    cluster = started(size, seed=200 + size)
    slow = 2
    cluster.slow(slow, 2 * INTERVAL)  # it stalls two intervals at every tick
    seen: set[str] = set()
    for now in steps(cluster, cluster.now + 120.0):
        shown = views(cluster, slow)
        seen.update(shown.values())
        assert not set(shown.values()) & set(GONE), (now, shown)
    assert seen <= {"up", "suspect"}, seen


@pytest.mark.parametrize("size", [8, 64])
def test_a_slow_node_puts_nobody_else_down(size: int) -> None:
    cluster = started(size, seed=300 + size)
    slow = 2
    cluster.slow(slow, 2 * INTERVAL)
    for now in steps(cluster, cluster.now + 120.0):
        wrong = gone_live_pairs(cluster, exclude=(slow,))
        assert not wrong, (now, wrong[:5])


@pytest.mark.parametrize("size", [8, 64])
def test_a_leaving_node_is_left_everywhere_within_about_one_interval(size: int) -> None:
    cluster = started(size, seed=400 + size)
    leaver = 5
    left_at = cluster.now
    cluster.leave(leaver)
    everywhere_at = None
    for now in steps(cluster, left_at + 10.0, step=0.05):
        if set(views(cluster, leaver).values()) == {"left"}:
            everywhere_at = now
            break
    assert everywhere_at is not None, views(cluster, leaver)
    assert everywhere_at - left_at <= 1.5 * INTERVAL


@pytest.mark.parametrize(("size", "minutes"), [(8, 5.0), (100, 3.0)])
def test_thirty_percent_loss_puts_no_running_node_down(size: int, minutes: float) -> None:
    cluster = SimCluster(size, seed=500 + size, link=LinkProfile(loss=0.3))
    cluster.start()
    cluster.run_until(WARMUP)
    start = cluster.now
    for now in steps(cluster, start + minutes * 60, step=1.0):
        wrong = gone_live_pairs(cluster)
        assert not wrong, (now, wrong[:5])
    # the network did lose datagrams: a third of them
    c = cluster.net.counters
    assert 0.25 < c.lost / sum(c.sent) < 0.35
