#!/usr/bin/env python3
"""What dshd costs a node as its metrics agent, idle, next to node_exporter.

    python3 bench/agent_cost.py [--seconds 60] [--scrapes 500] [--out FILE]

In one run, side by side for the same window (so background load hits all
alike), each a real process on loopback:

* dshd with no sensors (the gossip alone), with no config file (its default
  sensors), with FrUCToSA's example lagent.conf (its twenty sensors at its
  intervals), and with contrib/dshd.conf (every sensor at its default
  interval), at dshd's default gossip interval. lagent.conf's dshd is one of a
  sealed three-dshd cluster (the other two without sensors), so that its
  /metrics carries the cluster view; each other is a sealed two-member cluster
  whose other member is a plain UDP socket of this script's: it receives what
  a peer would, so the datagram is measured off the wire.
* Debian's prometheus-node-exporter on 127.0.0.1, once left alone and once
  scraped every 15 s (Prometheus's default), since it does its work per scrape.

CPU is utime + stime from /proc/PID/stat (all threads) over the window, after
a warm-up in which every sensor has read once (start-up is not idle); RSS is
VmRSS and VmHWM at the end. Then --scrapes GETs of /metrics from lagent.conf's
dshd and from the scraped node_exporter, alternating, each over one kept-alive
HTTP/1.1 connection with `Accept-Encoding: gzip`, as Prometheus scrapes:
latency, bytes (gzip and plain), lines and series, CPU per scrape. Prints a
Markdown section; --out also writes it to FILE. Every process started here is
stopped on exit.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "src")]

from support.dshd import Cluster, Node  # noqa: E402
from support.paths import LAGENT_CONF_FILE  # noqa: E402
from support.waiting import wait_for  # noqa: E402
from testbed import cpu_seconds, kib_to_mib, percentile, proc_status  # noqa: E402

from dsh.core.wire import VERSION  # noqa: E402
from dsh.daemon.config import DaemonConfig  # noqa: E402
from dsh.daemon.keys import generate_key_file  # noqa: E402

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
SCRAPE_EVERY = 15.0  # seconds: Prometheus's default scrape_interval
TICK = os.sysconf("SC_CLK_TCK")
_FOOTER = re.compile(r"^# sensor (\S+) (\S+) interval=(\S+) duration=(\S+) readings=(\d+)")


# -- /proc --------------------------------------------------------------------------


# -- the agents ---------------------------------------------------------------------


@dataclass
class Agent:
    label: str
    pid: Callable[[], int]
    sensors: str  # what it reads, for the table
    cpu0: float = 0.0
    cpu: float = 0.0  # seconds in the window
    rss: float = 0.0  # MiB
    hwm: float = 0.0
    threads: int = 0
    notes: list[str] = field(default_factory=list)

    def start_window(self) -> None:
        self.cpu0 = cpu_seconds(self.pid())

    def end_window(self) -> None:
        pid = self.pid()
        self.cpu = cpu_seconds(pid) - self.cpu0
        status = proc_status(pid)
        self.rss, self.hwm = kib_to_mib(status["VmRSS"]), kib_to_mib(status["VmHWM"])
        self.threads = int(status["Threads"])


class Peer:
    """A plain UDP socket where the dshd's other member would be: what it hears."""

    def __init__(self, address: str, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, port))
        self.sock.settimeout(0.2)
        self.sizes: list[int] = []
        self.counting = False
        self.counted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.sizes.append(len(data))
            if self.counting:
                self.counted += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@contextmanager
def dshd(directory: Path, address: str, peers: list[str], conf: Path | None, key: Path,
         members: tuple[str, ...] = ()) -> Iterator[tuple[Node, Peer | None]]:  # fmt: skip
    """The measured dshd at ``address``; ``peers`` are plain sockets (at most one,
    what it sends is measured), ``members`` more dshd with no sensors (a real
    cluster, so that its /metrics carries the others' rows)."""
    d = DaemonConfig()
    directory.mkdir()
    names = [address, *peers, *members]
    cluster = Cluster(directory, names, interval=d.interval, maxloops=d.maxloops)
    (directory / "none.conf").write_text("")
    for name, node in cluster.nodes.items():
        node.verbose = False
        node.key_file = key
        # Never the host's /etc/dsh/dshd.conf: an empty file is "no sensors".
        if name != address or conf is None:
            node.extra_args += ["--config", str(directory / "none.conf")]
        elif conf != Path("-"):
            node.extra_args += ["--config", str(conf)]
    node = cluster.nodes[address]
    env_config = os.environ.pop("DSH_CONFIG", None)  # "-": dshd's own defaults, no file
    listener = Peer(peers[0], cluster.port) if peers else None
    try:
        if conf == Path("-") and Path("/etc/dsh/dshd.conf").exists():
            raise SystemExit(
                "agent_cost: /etc/dsh/dshd.conf exists; the default-set row needs none"
            )
        cluster.start([address, *members])
        if members:
            real = [address, *members]
            wait_for(partial(cluster.all_up, real), 30, f"{address}'s cluster to be up")
        yield node, listener
    finally:
        for other in cluster.nodes.values():
            other.stop()
        if listener is not None:
            listener.close()
        if env_config is not None:
            os.environ["DSH_CONFIG"] = env_config


def sensor_footer(node: Node) -> dict[str, tuple[str, float, int]]:
    """sensor -> (status, last duration in seconds, readings), from the status port."""
    out = {}
    for line in node.status_text().splitlines():
        m = _FOOTER.match(line)
        if m:
            duration = float("nan") if m[4] == "-" else float(m[4])
            out[m[1]] = (m[2], duration, int(m[5]))
    return out


def read_once(node: Node) -> bool:
    return all(status != "waiting" for status, _, _ in sensor_footer(node).values())


def pid_of(node: Node) -> Callable[[], int]:
    return lambda: node.pid


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def node_exporter(directory: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    with open(directory / f"node_exporter-{port}.log", "wb") as log:
        process = subprocess.Popen(
            [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/metrics"

        def listening() -> bool:
            if process.poll() is not None:
                raise SystemExit(f"agent_cost: node_exporter exited {process.returncode}")
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True

        wait_for(listening, 10, "node_exporter to listen")
        yield process, url
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- scrapes --------------------------------------------------------------------------


def scrape(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return len(answer.read())


@dataclass
class Scraped:
    """One agent's /metrics over a kept-alive connection, as Prometheus scrapes."""

    label: str
    host: str
    port: int
    pid: int
    idle_rate: float = 0.0  # CPU s per s when not scraped (from the window), to net out
    ms: list[float] = field(default_factory=list)  # sorted at the end
    cpu: float = 0.0  # s over the N scrapes
    elapsed: float = 0.0  # s from the first scrape to the last
    gzip_bytes: int = 0
    plain_bytes: int = 0
    lines: int = 0
    series: int = 0
    conn: http.client.HTTPConnection | None = None

    def get(self) -> tuple[float, bytes]:
        """One GET /metrics with Prometheus's Accept-Encoding: (ms, body as sent)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        started = time.perf_counter()
        self.conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
        answer = self.conn.getresponse()
        body = answer.read()
        ms = (time.perf_counter() - started) * 1000
        if answer.status != 200 or answer.getheader("Content-Encoding") != "gzip":
            raise SystemExit(f"agent_cost: {self.label} /metrics: {answer.status}, not gzip")
        if answer.will_close:
            raise SystemExit(f"agent_cost: {self.label} closes the connection after a scrape")
        return ms, body

    def body(self, data: bytes) -> None:
        plain = gzip.decompress(data)
        self.gzip_bytes, self.plain_bytes = len(data), len(plain)
        text = plain.decode().splitlines()
        self.lines = len(text)
        self.series = sum(1 for line in text if line and not line.startswith("#"))

    def per_scrape_ms(self, net: bool = False) -> float:
        cpu = self.cpu - (self.idle_rate * self.elapsed if net else 0.0)
        return 1000 * cpu / len(self.ms)


def scrape_side_by_side(agents: list[Scraped], n: int) -> None:
    """``n`` scrapes of each, alternating (first one, then the other, the order
    swapped every round) so that the machine's noise falls on both alike."""
    for a in agents:
        for _ in range(5):  # warm-up: connection, first-scrape caches
            _, data = a.get()
        a.body(data)
    cpu0 = [cpu_seconds(a.pid) for a in agents]
    started = time.monotonic()
    for i in range(n):
        for a in agents if i % 2 == 0 else agents[::-1]:
            ms, _ = a.get()
            a.ms.append(ms)
    elapsed = time.monotonic() - started
    for a, c0 in zip(agents, cpu0, strict=True):
        a.cpu = cpu_seconds(a.pid) - c0
        a.elapsed = elapsed
        a.ms.sort()
        if a.conn is not None:
            a.conn.close()


# -- the run ---------------------------------------------------------------------------


def measure(seconds: float, scrapes_n: int, scratch: Path) -> str:
    if not Path(NODE_EXPORTER).exists():
        raise SystemExit(
            f"agent_cost: {NODE_EXPORTER} not found (apt install prometheus-node-exporter)"
        )
    key = scratch / "key"
    generate_key_file(str(key))
    # label, sensors, config, address, plain-socket peers, more dshd members
    configs: list[tuple[str, str, Path | None, str, list[str], tuple[str, ...]]] = [
        ("dshd, no sensors (gossip only)", "none", None, "127.0.0.71", ["127.0.0.72"], ()),
        ("dshd, no config file (its default set)", "11 at their defaults", Path("-"),
         "127.0.0.73", ["127.0.0.74"], ()),
        ("dshd, FrUCToSA's lagent.conf (3-node cluster)", "20 at lagent.conf's intervals",
         LAGENT_CONF_FILE, "127.0.0.75", [], ("127.0.0.76", "127.0.0.79")),
        ("dshd, contrib/dshd.conf", "all 22 at their defaults", REPO / "contrib" / "dshd.conf",
         "127.0.0.77", ["127.0.0.78"], ()),
    ]  # fmt: skip
    agents: list[Agent] = []
    with ExitStack() as stack:
        nodes: list[tuple[Node, Peer | None]] = []
        for i, (label, what, conf, address, peers, members) in enumerate(configs):
            node, listener = stack.enter_context(
                dshd(scratch / f"c{i}", address, peers, conf, key, members)
            )
            nodes.append((node, listener))
            agents.append(Agent(label, pid_of(node), what))
        idle, _ = stack.enter_context(node_exporter(scratch))
        scraped, scraped_url = stack.enter_context(node_exporter(scratch))
        agents.append(Agent("node_exporter 1.5, not scraped", lambda: idle.pid, "its defaults"))
        agents.append(Agent(f"node_exporter 1.5, scraped every {SCRAPE_EVERY:g} s",
                            lambda: scraped.pid, "its defaults"))  # fmt: skip

        # Warm-up: every sensor has read once (the first readings are start-up).
        for node, _ in nodes:
            wait_for(partial(read_once, node), 30, f"{node.name}'s first readings")
        scrape(scraped_url)
        time.sleep(3)

        for agent in agents:
            agent.start_window()
        listeners = [listener for _, listener in nodes if listener is not None]
        for listener in listeners:
            listener.counting = True
        started = time.monotonic()
        scrapes = 0
        while (left := started + seconds - time.monotonic()) > 0:
            if scrapes * SCRAPE_EVERY <= time.monotonic() - started:
                scrape(scraped_url)
                scrapes += 1
            time.sleep(min(left, 0.5))
        for agent in agents:
            agent.end_window()
        window = time.monotonic() - started
        for listener in listeners:
            listener.counting = False

        footers = [sensor_footer(node) for node, _ in nodes]
        wire = listeners[0].sizes
        rate = [listener.counted / window for listener in listeners]
        name_len = len(nodes[0][0].name)
        lagent = nodes[2][0]
        ne_port = int(scraped_url.rsplit(":", 1)[1].split("/")[0])
        side = [
            Scraped(f"dshd ({lagent.name}, lagent.conf)", lagent.name, lagent.cluster.http_port,
                    lagent.pid, agents[2].cpu / window),
            Scraped("node_exporter 1.5", "127.0.0.1", ne_port, scraped.pid,
                    agents[4].cpu / window),
        ]  # fmt: skip
        scrape_side_by_side(side, scrapes_n)

    return report(window, scrapes, agents, footers, wire, rate, name_len, side)


def report(window: float, scrapes: int, agents: list[Agent],
           footers: list[dict[str, tuple[str, float, int]]], wire: list[int], rate: list[float],
           name_len: int, side: list[Scraped]) -> str:  # fmt: skip
    lines = [
        "## dshd as a node agent: its idle cost (bench/agent_cost.py)",
        "",
        f"{window:.0f} s window, all side by side on this machine ({os.cpu_count()} cores),"
        f" after a warm-up in which every sensor read once. CPU = utime + stime from"
        f" /proc/PID/stat (ticks of {1000 / TICK:g} ms: {100 / TICK / window:.3f} % resolution);"
        " RSS at the end. Every dshd gossips sealed, at its default interval"
        f" ({DaemonConfig().interval:g} s): to one plain-socket peer, or (lagent.conf's)"
        " in a cluster of three dshd.",
        "",
        "| agent | sensors | CPU s | % of one core | VmRSS MiB | VmHWM MiB | threads |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for a in agents:
        lines.append(
            f"| {a.label} | {a.sensors} | {a.cpu:.2f} | {100 * a.cpu / window:.3f} |"
            f" {a.rss:.1f} | {a.hwm:.1f} | {a.threads} |"
        )
    lines.append("")
    lines.append(f"node_exporter was scraped {scrapes} times in the window.")
    if wire:
        sizes = sorted(set(wire))
        shown = ", ".join(str(s) for s in sizes)
        plain = 108 + name_len
        lines += [
            "",
            f"Gossip datagram, off the wire: version {VERSION}, sealed, node name of"
            f" {name_len} bytes: {shown} bytes ({plain} plain, the rest the seal),"
            f" {statistics.mean(rate):.2f} datagrams/s to each peer"
            f" ({', '.join(f'{r:.2f}' for r in rate)}); the name's length adds byte for byte.",
        ]
    n = len(side[0].ms)
    lines += [
        "",
        f"Scrapes: GET /metrics with `Accept-Encoding: gzip`, {n} of each over one"
        " kept-alive HTTP/1.1 connection per agent, alternating between the two."
        " CPU per scrape = the agent's utime + stime over the scrapes / N; net = less"
        " its idle rate from the window over the same time.",
        "",
        "| agent | median ms | p90 ms | p99 ms | max ms | gzip bytes | plain bytes |"
        " lines | series | CPU ms/scrape | net of idle |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for s in side:
        lines.append(
            f"| {s.label} | {statistics.median(s.ms):.2f} | {percentile(s.ms, 0.9):.2f} |"
            f" {percentile(s.ms, 0.99):.2f} | {s.ms[-1]:.2f} | {s.gzip_bytes} | {s.plain_bytes} |"
            f" {s.lines} | {s.series} | {s.per_scrape_ms():.2f} |"
            f" {s.per_scrape_ms(net=True):.2f} |"
        )
    d, ne = side
    lines += [
        "",
        f"dshd / node_exporter: median {statistics.median(d.ms) / statistics.median(ne.ms):.2f}x,"
        f" p99 {percentile(d.ms, 0.99) / percentile(ne.ms, 0.99):.2f}x,"
        f" CPU per scrape {d.per_scrape_ms() / ne.per_scrape_ms():.2f}x,"
        f" gzip bytes {d.gzip_bytes / ne.gzip_bytes:.2f}x.",
    ]
    every = footers[-1]
    lines += [
        "",
        "What each reading took (its last duration, contrib/dshd.conf's node):",
        "",
        "| sensor | status | ms | readings in the run |",
        "|---|---|--:|--:|",
    ]
    for name, (status, duration, readings) in sorted(every.items(), key=lambda kv: -kv[1][1]):
        lines.append(f"| {name} | {status} | {1000 * duration:.1f} | {readings} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0, help="length of the idle window")
    p.add_argument("--scrapes", type=int, default=500, help="scrapes of each agent")
    p.add_argument("--out", type=Path, help="also write the Markdown section here")
    args = p.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: every process started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    scratch = Path(tempfile.mkdtemp(prefix="dsh-agent-cost-"))
    try:
        text = measure(args.seconds, args.scrapes, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    sys.stdout.write(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
