"""The virtual network: loss, duplication, delay and partitions behave as configured."""

from __future__ import annotations

import random

from dsh.sim.network import DELIVER, EventQueue, LinkProfile, Network


def network(size: int = 4, seed: int = 1, **profile: float) -> Network:
    return Network(size, EventQueue(), random.Random(seed), LinkProfile(**profile))


def drain(net: Network) -> list[tuple[float, int, bytes, int]]:
    """Every scheduled delivery as (time, dst, data, src), in time order."""
    out = []
    while len(net.queue):
        at, _, kind, dst, data, src = net.queue.pop()
        assert kind == DELIVER
        out.append((at, dst, data, src))
    return out


def test_each_datagram_is_lost_with_the_configured_probability() -> None:
    net = network(loss=0.3)
    sends = 20_000
    for k in range(sends):
        net.send(0, 1, b"x" * 10, k * 0.001)
    arrived = len(drain(net))
    # binomial: sd = sqrt(0.3 * 0.7 / 20000) = 0.32 %; 1.5 % is 4.6 sd
    assert abs(arrived / sends - 0.7) < 0.015
    assert net.counters.lost == sends - arrived
    assert net.counters.sent[0] == sends and net.counters.sent_bytes[0] == 10 * sends


def test_no_loss_delivers_everything_once_within_the_delay_range() -> None:
    net = network(delay_min=0.0002, delay_max=0.002)
    for k in range(1000):
        net.send(k % 4, (k + 1) % 4, k.to_bytes(2, "big"), 1.0)
    arrived = drain(net)
    assert len(arrived) == 1000
    assert all(1.0002 <= at <= 1.002 for at, *_ in arrived)
    assert sorted(data for _, _, data, _ in arrived) == [k.to_bytes(2, "big") for k in range(1000)]
    # uniform delays: both halves of the range get about half
    early = sum(1 for at, *_ in arrived if at < 1.0011)
    assert 400 < early < 600


def test_duplicates_are_two_copies_each_lost_on_its_own() -> None:
    net = network(duplicate=0.1, loss=0.5)
    sends = 20_000
    for k in range(sends):
        net.send(2, 3, b"d", float(k))
    arrived = len(drain(net))
    assert abs(net.counters.duplicated / sends - 0.1) < 0.01
    # each of 1.1 * sends copies survives with 0.5
    assert abs(arrived / (1.1 * sends) - 0.5) < 0.015


def test_the_tail_adds_a_few_long_delays() -> None:
    net = network(tail=0.05, tail_mean=0.1)
    for _ in range(10_000):
        net.send(0, 1, b"t", 0.0)
    delays = [at for at, *_ in drain(net)]
    late = sum(1 for d in delays if d > 0.002)
    assert 350 < late < 650  # about 5 %, each later than the uniform part's end


def test_a_partition_cuts_between_sides_and_healing_ends_it() -> None:
    net = network(size=6)
    net.partition([0, 1], [2, 3])  # 4 and 5: a third side
    for src in range(6):
        for dst in range(6):
            if src != dst:
                net.send(src, dst, b"p", 0.0)
    pairs = {(src, dst) for _, dst, _, src in drain(net)}
    assert pairs == {(0, 1), (1, 0), (2, 3), (3, 2), (4, 5), (5, 4)}
    assert net.counters.cut == 30 - 6
    assert not net.reachable(0, 2) and net.reachable(4, 5)
    net.heal()
    net.send(0, 2, b"p", 1.0)
    assert [(src, dst) for _, dst, _, src in drain(net)] == [(0, 2)]


def test_counters_are_per_node_and_reset() -> None:
    net = network(size=3)
    net.send(0, 1, b"abc", 0.0)
    net.send(0, 2, b"abcd", 0.0)
    net.send(2, 0, b"a", 0.0)
    for _, dst, data, _ in drain(net):
        net.delivered(dst, data)
    c = net.counters
    assert (c.sent, c.sent_bytes) == ([2, 0, 1], [7, 0, 1])
    assert (c.received, c.received_bytes) == ([1, 1, 1], [1, 3, 4])
    net.reset_counters()
    assert net.counters.sent == [0, 0, 0]


def test_same_seed_same_deliveries() -> None:
    def run(seed: int) -> list[tuple[float, int, bytes, int]]:
        net = network(seed=seed, loss=0.2, duplicate=0.05, tail=0.01)
        for k in range(500):
            net.send(k % 4, (k * 3 + 1) % 4, bytes([k % 256]), k * 0.01)
        return drain(net)

    assert run(7) == run(7)
    assert run(7) != run(8)
