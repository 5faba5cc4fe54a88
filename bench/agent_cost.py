#!/usr/bin/env python3
"""What dshd costs a node as its metrics agent, idle, next to node_exporter.

    python3 bench/agent_cost.py [--seconds 60] [--out FILE]

In one run, side by side for the same window (so background load hits all
alike), each a real process on loopback:

* dshd with no sensors (the gossip alone), with no config file (its default
  sensors), with FrUCToSA's example lagent.conf (its twenty sensors at its
  intervals), and with contrib/dshd.conf (every sensor at its default
  interval). Each is a sealed two-member cluster, at dshd's default gossip
  interval, whose other member is a plain UDP socket of this script's: it
  receives what a peer would, so the datagram is measured off the wire.
* Debian's prometheus-node-exporter on 127.0.0.1, once left alone and once
  scraped every 15 s (Prometheus's default), since it does its work per scrape.

CPU is utime + stime from /proc/PID/stat over the window, after a warm-up in
which every sensor has read once (start-up is not idle); RSS is VmRSS and
VmHWM at the end. Then the scrape latency of node_exporter (and of dshd's
/metrics where this build has one). Prints a Markdown section; --out also
writes it to FILE. Every process started here is stopped on exit.
"""

from __future__ import annotations

import argparse
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

from dsh.daemon.config import DaemonConfig  # noqa: E402
from dsh.daemon.keys import generate_key_file  # noqa: E402

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
SCRAPE_EVERY = 15.0  # seconds: Prometheus's default scrape_interval
TICK = os.sysconf("SC_CLK_TCK")
_FOOTER = re.compile(r"^# sensor (\S+) (\S+) interval=(\S+) duration=(\S+) readings=(\d+)")


# -- /proc --------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of the process so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / TICK  # fields 14 and 15 of stat(5)


def status_fields(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def kib_to_mib(text: str) -> float:
    return int(text.split()[0]) / 1024


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
        status = status_fields(pid)
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
def dshd(directory: Path, address: str, peer: str, conf: Path | None, key: Path
         ) -> Iterator[tuple[Node, Peer]]:  # fmt: skip
    d = DaemonConfig()
    directory.mkdir()
    cluster = Cluster(directory, [address, peer], interval=d.interval, maxloops=d.maxloops)
    node = cluster.nodes[address]
    node.verbose = False
    node.key_file = key
    # Never the host's /etc/dsh/dshd.conf: an empty file is "no sensors".
    if conf is None:
        node.extra_args += ["--config", str(directory / "none.conf")]
        (directory / "none.conf").write_text("")
    elif conf != Path("-"):
        node.extra_args += ["--config", str(conf)]
    env_config = os.environ.pop("DSH_CONFIG", None)  # "-": dshd's own defaults, no file
    listener = Peer(peer, cluster.port)
    try:
        if conf == Path("-") and Path("/etc/dsh/dshd.conf").exists():
            raise SystemExit(
                "agent_cost: /etc/dsh/dshd.conf exists; the default-set row needs none"
            )
        node.start()
        yield node, listener
    finally:
        node.stop()
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


def scrape_latencies(url: str, n: int = 50) -> tuple[list[float], int] | None:
    """Milliseconds per GET of ``url`` (sorted) and the body's size; None where
    there is nothing to scrape (dshd's /metrics before it exists)."""
    try:
        size = scrape(url)
    except (urllib.error.URLError, OSError):
        return None
    out = []
    for _ in range(n):
        started = time.perf_counter()
        scrape(url)
        out.append((time.perf_counter() - started) * 1000)
    return sorted(out), size


def pct(xs: list[float], p: float) -> float:
    return xs[min(len(xs) - 1, int(len(xs) * p))]


# -- the run ---------------------------------------------------------------------------


def measure(seconds: float, scratch: Path) -> str:
    if not Path(NODE_EXPORTER).exists():
        raise SystemExit(
            f"agent_cost: {NODE_EXPORTER} not found (apt install prometheus-node-exporter)"
        )
    key = scratch / "key"
    generate_key_file(str(key))
    configs: list[tuple[str, str, Path | None, str]] = [
        ("dshd, no sensors (gossip only)", "none", None, "127.0.0.71"),
        ("dshd, no config file (its default set)", "11 at their defaults", Path("-"), "127.0.0.73"),
        ("dshd, FrUCToSA's lagent.conf", "20 at lagent.conf's intervals", LAGENT_CONF_FILE,
         "127.0.0.75"),
        ("dshd, contrib/dshd.conf", "all 22 at their defaults", REPO / "contrib" / "dshd.conf",
         "127.0.0.77"),
    ]  # fmt: skip
    agents: list[Agent] = []
    with ExitStack() as stack:
        nodes: list[tuple[Node, Peer]] = []
        for i, (label, what, conf, address) in enumerate(configs):
            peer = address[:-1] + str(int(address[-1]) + 1)
            node, listener = stack.enter_context(dshd(scratch / f"c{i}", address, peer, conf, key))
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
        for _, listener in nodes:
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
        for _, listener in nodes:
            listener.counting = False

        footers = [sensor_footer(node) for node, _ in nodes]
        wire = nodes[0][1].sizes
        rate = [listener.counted / window for _, listener in nodes]
        name_len = len(nodes[0][0].name)
        ne = scrape_latencies(scraped_url)
        dshd_metrics = scrape_latencies(
            f"http://{nodes[-1][0].name}:{nodes[-1][0].cluster.http_port}/metrics"
        )

    return report(seconds, window, scrapes, agents, footers, wire, rate, name_len, ne,
                  dshd_metrics)  # fmt: skip


def report(seconds: float, window: float, scrapes: int, agents: list[Agent],
           footers: list[dict[str, tuple[str, float, int]]], wire: list[int], rate: list[float],
           name_len: int, ne: tuple[list[float], int] | None,
           dshd_metrics: tuple[list[float], int] | None) -> str:  # fmt: skip
    lines = [
        "## dshd as a node agent: its idle cost (bench/agent_cost.py)",
        "",
        f"{window:.0f} s window, all side by side on this machine ({os.cpu_count()} cores),"
        f" after a warm-up in which every sensor read once. CPU = utime + stime from"
        f" /proc/PID/stat (ticks of {1000 / TICK:g} ms: {100 / TICK / window:.3f} % resolution);"
        " RSS at the end. Every dshd gossips sealed, at its default interval"
        f" ({DaemonConfig().interval:g} s), to one peer.",
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
        lines += [
            "",
            f"Gossip datagram, off the wire (sealed, node name of {name_len} bytes):"
            f" {shown} bytes, {statistics.mean(rate):.2f} datagrams/s to each peer"
            f" ({', '.join(f'{r:.2f}' for r in rate)}); the name's length adds byte for byte.",
        ]
    lines += ["", "Scrape latency (GET /metrics, 50 in a row, after the window):", ""]
    for label, result in (("node_exporter", ne), ("dshd", dshd_metrics)):
        if result is None:
            lines.append(f"* {label}: no /metrics to scrape in this build")
        else:
            ms, size = result
            lines.append(
                f"* {label}: median {statistics.median(ms):.1f} ms, p90 {pct(ms, 0.9):.1f} ms,"
                f" max {ms[-1]:.1f} ms; {size / 1000:.1f} kB"
            )
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
    p.add_argument("--out", type=Path, help="also write the Markdown section here")
    args = p.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: every process started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    scratch = Path(tempfile.mkdtemp(prefix="dsh-agent-cost-"))
    try:
        text = measure(args.seconds, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    sys.stdout.write(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
