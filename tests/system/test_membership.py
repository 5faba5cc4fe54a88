"""Membership on real hosts (issue 15): eight dshd in network namespaces at the
default interval, with nftables loss on every host, crashes, clean stops and
discovery by broadcast.

Needs root (namespaces, a bridge, nftables); the subnet 10.252.0.0/24 exists
only on the bridge of this module (tests/support/netns.py), removed after.
The bounds asserted are the issue's: no false ``down`` at 30 % loss of all
traffic for 2 minutes, ``down`` everywhere within 5 s of a SIGKILL, ``left``
within one interval of a SIGTERM. Everything else waits with a deadline.
"""

from __future__ import annotations

import signal
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.netns import Dshd, Hosts, parse_counters, retrying, root_reason
from support.waiting import wait_for

from dsh.daemon.config import DaemonConfig
from dsh.daemon.keys import generate_key_file

pytestmark = pytest.mark.skipif(root_reason() is not None, reason=str(root_reason()))

N = 8
INTERVAL = DaemonConfig().interval  # the default, 1.5 s: what the bounds are for
LOSS_SECONDS = 120.0  # the "for 2 minutes"
LOSS_PERCENT = 30
POLL = 0.5  # s between two status polls of one host during the loss run
DOWN_WITHIN = 5.0  # s after a SIGKILL (the bound at the default interval)


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    hosts = Hosts(tmp_path_factory.mktemp("membership"), N, net="10.252.0")
    try:
        hosts.open()
        yield hosts
    finally:
        hosts.close()


@pytest.fixture
def hosts(bed: Hosts) -> Iterator[Hosts]:
    """The module's hosts with no dshd running and no nftables rules, after too."""
    try:
        yield bed
    finally:
        for daemon in bed.daemons:
            if daemon.running():
                print(f"--- host {daemon.host}'s log:\n{daemon.tail(15)}")
            daemon.stop()
        bed.daemons.clear()
        for i in bed.numbers:
            bed.clear(i)


def listed_cluster(hosts: Hosts) -> Path:
    path = hosts.directory / "cluster"
    path.write_text("".join(f"{hosts.address(i)}\n" for i in hosts.numbers))
    return path


def start_listed(hosts: Hosts) -> list[Dshd]:
    """Eight dshd at the default interval, every one in the cluster file, all up."""
    cluster = listed_cluster(hosts)
    daemons = [hosts.run_dshd(i, "-f", str(cluster), "--no-key", "-v") for i in hosts.numbers]
    for daemon in daemons:
        hosts.wait_answering(daemon)
    wait_for(lambda: hosts.all_see(hosts.numbers), 30, "eight hosts up everywhere", poll=0.2)
    return daemons


# -- (a) loss ------------------------------------------------------------------------------


@dataclass
class Watch:
    """What the observers' status tables said, polled every POLL s each."""

    polls: int = 0
    failed_polls: int = 0  # the poll itself lost (it crosses the lossy network too)
    states: Counter[str] = field(default_factory=Counter)
    bad: list[tuple[float, int, str, str]] = field(default_factory=list)  # t, host, whom, state
    lock: threading.Lock = field(default_factory=threading.Lock)


def poll_once(hosts: Hosts, i: int, started: float, out: Watch) -> None:
    """One poll of host i's table. Its TCP crosses the loss too: a lost SYN or
    handshake ACK costs a second's retransmission, so polls overlap (each has
    4 s) rather than wait for each other, and a poll that fails is counted,
    not retried: the next one is half a second away."""
    others = {hosts.address(j) for j in hosts.numbers} - {hosts.address(i)}
    try:
        seen = hosts.states(i, timeout=4.0)
    except (OSError, ValueError):
        with out.lock:
            out.failed_polls += 1
        return
    t = time.monotonic() - started
    with out.lock:
        out.polls += 1
        for name in sorted(others):
            state = seen.get(name, "missing")
            out.states[state] += 1
            if state not in ("up", "suspect"):
                out.bad.append((t, i, name, state))


@pytest.mark.timeout(LOSS_SECONDS + 120)
def test_no_false_down_at_30_percent_loss_of_all_traffic_for_two_minutes(hosts: Hosts) -> None:
    daemons = start_listed(hosts)
    for i in hosts.numbers:
        hosts.loss(i, LOSS_PERCENT)  # inbound, every protocol, on every host
    out = Watch()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=12 * N) as pool:
        slot = started
        while slot < started + LOSS_SECONDS:
            for i in hosts.numbers:
                pool.submit(poll_once, hosts, i, started, out)
            slot += POLL
            time.sleep(max(0.0, slot - time.monotonic()))
    for i in hosts.numbers:
        hosts.clear(i)
    observed = sum(out.states.values())
    print(
        f"{LOSS_PERCENT}% inbound loss of all traffic on {N} hosts, {LOSS_SECONDS:g} s at the"
        f" default interval ({INTERVAL:g} s): {out.polls} status polls answered,"
        f" {out.failed_polls} lost, observations {dict(out.states)}; suspect in"
        f" {out.states['suspect'] / max(1, observed):.2%} of them"
    )
    bad = sorted(out.bad)
    for t, i, name, state in bad[:20]:
        print(f"  {t:6.1f} s: host {i} showed {name} {state}")
    for daemon in daemons:
        assert daemon.running(), f"host {daemon.host}'s dshd died:\n{daemon.tail()}"
    assert out.polls > 0.5 * N * LOSS_SECONDS / POLL, "too few status polls to say anything"
    assert not bad, f"{len(bad)} observations of a live host not up or suspect (first: {bad[0]})"
    wait_for(lambda: hosts.all_see(hosts.numbers), 15, "all up again after the loss", poll=0.2)


# -- (b) crash, (c) clean stop ------------------------------------------------------------


def time_until(hosts: Hosts, observers: list[int], subject: str, state: str, since: float,
               timeout: float, poll: float = 0.05) -> dict[int, float]:  # fmt: skip
    """Seconds from ``since`` until each observer's table showed ``subject`` in
    ``state`` (the time the answer arrived: an upper bound, by at most a poll)."""
    seen: dict[int, float] = {}
    deadline = since + timeout
    while len(seen) < len(observers) and time.monotonic() < deadline:
        for i in observers:
            if i not in seen:
                states = retrying(lambda i=i: hosts.states(i, timeout=1.0))  # type: ignore[misc]
                if states is not None and states.get(subject) == state:
                    seen[i] = time.monotonic() - since
        time.sleep(poll)
    missing = [i for i in observers if i not in seen]
    assert not missing, f"hosts {missing} never showed {subject} {state} within {timeout:g} s"
    return seen


def test_a_sigkilled_dshd_is_down_everywhere_within_5_s(hosts: Hosts) -> None:
    # Three crashes, of three different hosts, each restarted after: the
    # detection times of 3 x 7 observers, and a crashed node that comes back
    # (a new incarnation) is up everywhere again.
    daemons = start_listed(hosts)
    took: list[float] = []
    for victim in daemons[-3:]:
        others = [i for i in hosts.numbers if i != victim.host]
        victim.signal(signal.SIGKILL)
        killed = time.monotonic()
        victim.process.wait()
        # Waited for longer than the bound so that a slow detection is measured, then judged.
        seen = time_until(hosts, others, victim.address, "down", killed, 4 * DOWN_WITHIN)
        took += seen.values()
        print(f"SIGKILL of host {victim.host} -> down at the others after"
              f" {', '.join(f'{seen[i]:.2f}' for i in others)} s")  # fmt: skip
        for i in others:  # and nobody else went with it
            states = hosts.states(i)
            assert all(states[hosts.address(j)] == "up" for j in others if j != i), states
        back = hosts.run_dshd(victim.host, "-f", str(listed_cluster(hosts)), "--no-key", "-v")
        hosts.wait_answering(back)
        wait_for(lambda: hosts.all_see(hosts.numbers), 20, "the restarted node up everywhere", 0.2)
    print(
        f"SIGKILL -> down, 3 crashes x {N - 1} observers, interval {INTERVAL:g} s:"
        f" median {statistics.median(took):.2f} s, max {max(took):.2f} s"
    )
    assert max(took) <= DOWN_WITHIN, took


def test_a_sigtermed_dshd_is_left_everywhere_within_one_interval(hosts: Hosts) -> None:
    daemons = start_listed(hosts)
    victim = daemons[-1]
    others = [i for i in hosts.numbers if i != victim.host]
    victim.signal(signal.SIGTERM)
    stopped = time.monotonic()
    took = time_until(hosts, others, victim.address, "left", stopped, 4 * INTERVAL, poll=0.02)
    code = victim.process.wait(10)
    print(
        f"SIGTERM -> left, {len(others)} observers: median {statistics.median(took.values()):.3f}"
        f" s, max {max(took.values()):.3f} s; dshd exited {code}"
    )
    assert max(took.values()) <= INTERVAL, took
    assert code == 0, victim.tail()
    # A node that left and comes back is up again everywhere.
    back = hosts.run_dshd(victim.host, "-f", str(listed_cluster(hosts)), "--no-key", "-v")
    hosts.wait_answering(back)
    wait_for(lambda: hosts.all_see(hosts.numbers), 20, "the returned node up everywhere", 0.2)


# -- (d) discovery -------------------------------------------------------------------------


def test_broadcast_discovery_brings_up_a_cluster_from_an_empty_member_list(
    hosts: Hosts, tmp_path: Path
) -> None:
    cluster = tmp_path / "cluster"
    cluster.write_text(f"# nobody listed: found by broadcast\n@broadcast {hosts.broadcast}\n")
    daemons = [hosts.run_dshd(i, "-f", str(cluster), "--name", hosts.address(i), "--no-key",
                              "-v") for i in hosts.numbers]  # fmt: skip
    for daemon in daemons:
        hosts.wait_answering(daemon)
    wait_for(lambda: hosts.all_see(hosts.numbers), 30, "every found host up everywhere", 0.2)
    for i in hosts.numbers:
        table = hosts.table(i)
        others = [hosts.address(j) for j in hosts.numbers if j != i]
        assert all(table[name].get("via") == "found" for name in others), table


def test_with_a_cluster_key_an_unkeyed_dshd_found_by_broadcast_does_not_join(
    hosts: Hosts, tmp_path: Path
) -> None:
    cluster = tmp_path / "cluster"
    cluster.write_text(f"@broadcast {hosts.broadcast}\n")
    key = tmp_path / "key"
    generate_key_file(str(key))
    keyed, stranger = hosts.numbers[:4], hosts.numbers[4]
    daemons = [hosts.run_dshd(i, "-f", str(cluster), "--name", hosts.address(i),
                              "--key-file", str(key), "-v") for i in keyed]  # fmt: skip
    daemons.append(hosts.run_dshd(stranger, "-f", str(cluster), "--name",
                                  hosts.address(stranger), "--no-key", "-v"))  # fmt: skip
    for daemon in daemons:
        hosts.wait_answering(daemon)
    wait_for(lambda: hosts.all_see(keyed), 30, "the keyed hosts up at each other", 0.2)

    # Proof that the two sides hear each other's datagrams (and drop them):
    # each keyed node has dropped some of the stranger's, the stranger some of theirs.
    def dropped(i: int) -> int:
        return parse_counters(hosts.status_text(i)).get("datagrams", {}).get("bad_auth", 0)

    wait_for(lambda: all(dropped(i) >= 3 for i in [*keyed, stranger]), 20,
             "keyed and unkeyed nodes to drop each other's datagrams", 0.2)  # fmt: skip
    for i in keyed:
        table = hosts.table(i)
        assert hosts.address(stranger) not in table, table
    alien = hosts.table(stranger)
    assert all(alien.get(hosts.address(i), {}).get("state") in (None, "down") for i in keyed)
