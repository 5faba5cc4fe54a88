"""dshd pushing to a real carbon-cache ([graphite]): the paths of the README's
Graphite scheme (core/graphite.py) arrive with plausible values and times, by
plaintext and by pickle;
a carbon that goes away, one that never reads and a port that refuses cost
neither the gossip nor unbounded memory, and sending resumes."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from support.carbon import Carbon, free_port, running_carbon
from support.dshd import Cluster, ClusterFactory, Node
from support.waiting import wait_for

from dsh.core.graphite import MAX_PENDING

A, B = "127.0.0.71", "127.0.0.72"
HA, HB = "127_0_0_71", "127_0_0_72"
SENSORS = """\
[sensor:LoadAvg]
time_interval = 1
[sensor:VirtualMemory]
time_interval = 1
[sensor:CPUTimes]
time_interval = 1
[sensor:DiskUsage]
time_interval = 1
path = /
"""


@pytest.fixture
def carbon(tmp_path: Path) -> Iterator[Carbon]:
    yield from running_carbon(tmp_path / "carbon")


def configure(node: Node, graphite: str, sensors: str = SENSORS) -> Path:
    conf = node.cluster.directory / f"{node.name}.conf"
    conf.write_text(sensors + "[graphite]\n" + graphite)
    node.extra_args = ["--config", str(conf)]
    return conf


def graphite_counters(node: Node) -> dict[str, int]:
    return node.counters().get("graphite", {})


def buffering(node: Node) -> bool:
    c = graphite_counters(node)
    return c["buffered"] > 0 and c["errors"] > 0


def caught_up(node: Node) -> bool:
    c = graphite_counters(node)
    return c["buffered"] == 0 and c["connected"] == 1


def two_nodes(make_cluster: ClusterFactory, graphite_a: str, graphite_b: str) -> Cluster:
    cluster = make_cluster([A, B])
    configure(cluster.nodes[A], graphite_a)
    configure(cluster.nodes[B], graphite_b)
    cluster.start()
    wait_for(cluster.all_up, 10, "both nodes up")
    return cluster


def test_values_arrive_by_plaintext_and_by_pickle(
    make_cluster: ClusterFactory, carbon: Carbon
) -> None:
    cluster = two_nodes(
        make_cluster,
        f"host = 127.0.0.1\nport = {carbon.line_port}\ninterval = 1\n",  # the timer sends
        f"host = 127.0.0.1\nprotocol = pickle\nport = {carbon.pickle_port}\nprefix = dsh.test\n",
    )
    cluster.nodes[A].best()  # a best-node answer, for dshd.best_answers
    a = [f"{HA}.{p}" for p in ("LoadAvg.load1", "VirtualMemory.total", "DiskUsage.free.root",
                               "CPUTimes.seconds.0.user", "dshd.datagrams.accepted",
                               "dshd.sensor_up.LoadAvg", "dshd.sensor_duration.LoadAvg",
                               "dshd.graphite_dropped")]  # fmt: skip
    a.append(f"{HA}.dshd.best_answers.{HA if cluster.nodes[A].best() == A else HB}")
    b = [
        f"dsh.test.{HB}.{p}"
        for p in (
            "LoadAvg.load1",
            "VirtualMemory.total",
            "DiskUsage.free.root",
            "dshd.sensor_up.CPUTimes",
        )
    ]
    wait_for(lambda: set(a + b) <= carbon.paths(), 15, "carbon to have every path")
    wait_for(lambda: len(carbon.fetch(f"dsh.test.{HB}.LoadAvg.load1")) >= 3, 10, "three readings")
    now = time.time()
    for path in (a[0], b[0]):
        points = carbon.fetch(path)
        assert all(abs(t - now) < 10 for t, _ in points), points
        assert abs(points[-1][1] - os.getloadavg()[0]) < 1.0 + os.getloadavg()[0] / 2, points
    total = psutil.virtual_memory().total
    assert carbon.fetch(a[1])[-1][1] == total
    assert carbon.fetch(b[1])[-1][1] == total
    assert carbon.fetch(f"{HA}.dshd.sensor_up.LoadAvg")[-1][1] == 1
    assert carbon.fetch(f"{HA}.dshd.datagrams.accepted")[-1][1] >= 1
    assert not any(p.startswith(f"{HB}.") or p.startswith(f"dsh.test.{HA}") for p in carbon.paths())
    counters = graphite_counters(cluster.nodes[A])
    assert counters["sent"] > 0 and counters["dropped"] == 0 and counters["errors"] == 0, counters

    # SIGHUP with another prefix and protocol: a new sender, new paths
    configure(cluster.nodes[A], f"host = 127.0.0.1\nport = {carbon.pickle_port}\n"
                                "protocol = pickle\nprefix = after\n")  # fmt: skip
    cluster.nodes[A].send(signal.SIGHUP)
    wait_for(lambda: f"after.{HA}.LoadAvg.load1" in carbon.paths(), 10, "the new prefix")
    assert graphite_counters(cluster.nodes[A])["sent"] >= counters["sent"]


def test_carbon_gone_for_a_while(make_cluster: ClusterFactory, carbon: Carbon) -> None:
    cluster = two_nodes(
        make_cluster,
        f"host = 127.0.0.1\nport = {carbon.line_port}\n",
        f"host = 127.0.0.1\nprotocol = pickle\nport = {carbon.pickle_port}\n",
    )
    path = f"{HB}.LoadAvg.load1"
    wait_for(lambda: len(carbon.fetch(path)) >= 2, 15, "the first readings")
    carbon.stop()
    down_at = time.time()
    accepted = cluster.nodes[A].counters()["datagrams"]["accepted"]
    for node in cluster.nodes.values():
        wait_for(lambda n=node: buffering(n), 10, f"{node.name} to buffer")  # type: ignore[misc]
    time.sleep(3)  # carbon down for some seconds: dshd goes on meanwhile
    assert cluster.all_up()
    assert cluster.nodes[A].counters()["datagrams"]["accepted"] > accepted
    waiting = graphite_counters(cluster.nodes[B])
    assert waiting["connected"] == 0 and waiting["dropped"] == 0, waiting
    carbon.start()
    up_at = time.time()
    for node in cluster.nodes.values():
        # the backoff was at most 1+2+4 s when carbon came back
        wait_for(lambda n=node: caught_up(n), 15, f"{node.name} to catch up")  # type: ignore[misc]
    after = graphite_counters(cluster.nodes[B])
    assert after["sent"] > waiting["sent"] and after["dropped"] == 0, after

    # The buffered readings arrive with their own timestamps, and what carbon
    # had taken but not stored when it stopped is sent again: the outage leaves
    # no gap (README: Graphite). Waited for, since a resend may take a
    # connection more (carbon may close the first ones while it starts up).
    def gaps() -> list[tuple[str, list[int]]]:
        found = []
        for p in (path, f"{HA}.LoadAvg.load1"):
            points = carbon.fetch(p)
            seconds = {t for t, _ in points}
            # Readings land at any fraction of a second: two may share one
            # second and leave the next empty, never two seconds in a row.
            missing = [t for t in range(int(down_at) - 1, int(up_at) + 1) if t not in seconds]
            if any(t + 1 in missing for t in missing) or not points or points[-1][0] <= up_at:
                found.append((p, missing))
        return found

    wait_for(lambda: not gaps(), 20, "the outage's readings in carbon, no two seconds missing")


class StuckCarbon:
    """Accepts connections and never reads: the kernel's buffers fill, then writes block."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF, 1024
        )  # accepted ones inherit it
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = int(self.server.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                self.accepted.append(self.server.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.server.close()
        for s in self.accepted:
            s.close()


def test_a_carbon_that_never_reads_and_one_that_refuses(make_cluster: ClusterFactory) -> None:
    stuck = StuckCarbon()
    refused = free_port()  # nothing listens there: connection refused at once
    # A long prefix makes the traffic big enough to fill the socket in seconds.
    prefix = ".".join(["p" * 200] * 10)
    try:
        cluster = make_cluster([A, B])
        configure(cluster.nodes[A], f"host = 127.0.0.1\nport = {stuck.port}\nprefix = {prefix}\n")
        configure(cluster.nodes[B], f"host = 127.0.0.1\nport = {refused}\n")
        started = time.monotonic()
        cluster.start()
        wait_for(cluster.all_up, 10, "both nodes up")
        a, b = cluster.nodes[A], cluster.nodes[B]
        rss = psutil.Process(a.pid).memory_info().rss
        accepted = a.counters()["datagrams"]["accepted"]
        # the write deadline gives up on the stuck connection, and it is tried again
        wait_for(lambda: graphite_counters(a)["errors"] >= 1, 25, "the write deadline")
        assert cluster.all_up()
        assert a.counters()["datagrams"]["accepted"] > accepted
        stalled = graphite_counters(a)
        # what could not be written waits, within the bound, for the next connection
        assert 0 < stalled["buffered"] <= MAX_PENDING, stalled
        wait_for(lambda: graphite_counters(a)["connects"] >= 2, 10, "a new connection")
        assert psutil.Process(a.pid).memory_info().rss < rss + 30 * 2**20
        # refused at once: the retries back off (1, 2, 4 ... s), no tight loop
        elapsed = time.monotonic() - started
        refusals = graphite_counters(b)
        assert refusals["connected"] == 0 and refusals["sent"] == 0, refusals
        assert 2 <= refusals["connects"] <= 1 + int(elapsed).bit_length(), (refusals, elapsed)
        assert refusals["errors"] == refusals["connects"]
        assert a.process is not None and a.process.poll() is None
    finally:
        stuck.close()
