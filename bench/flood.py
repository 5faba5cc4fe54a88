#!/usr/bin/env python3
"""dshd under attack, measured: UDP flood rate, best-node latency under a TCP flood, RSS.

    python3 bench/flood.py [--seconds 10] [--out FILE]

A three-node sealed cluster on 127.0.0.51-53 (interval 0.5 s, maxloops 3).
The attacker (this script) sends, unpaced and as fast as one Python process
can, random and wrongly keyed datagrams from a member's address at node .51,
and holds thousands of TCP connections open that never read. It prints a
Markdown section; with --out it also writes it there.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "src")]

from support.dshd import Cluster, ask  # noqa: E402
from support.waiting import wait_for  # noqa: E402

from dsh.core.auth import Sealer  # noqa: E402
from dsh.core.wire import MAX_INCARNATION, State, encode_state  # noqa: E402
from dsh.daemon.keys import generate_key_file  # noqa: E402

A, B, C = "127.0.0.51", "127.0.0.52", "127.0.0.53"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def latencies(port: int, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        ask(A, port, timeout=10)
        out.append((time.perf_counter() - started) * 1000)
    return sorted(out)


def pct(xs: list[float], p: float) -> float:
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def udp_flood(cluster: Cluster, seconds: float) -> tuple[int, int, bool]:
    """Send for ``seconds``; return (sent, counted by the daemon, peers stayed up)."""
    node = cluster.nodes[A]
    before = sum(node.counters()["datagrams"].values())
    wrong = Sealer([os.urandom(32)])
    forged = wrong.seal(
        encode_state(State(B, MAX_INCARNATION, 1, 0, 2, 0, 0, 0, 1)), os.urandom(12)
    )
    rng = random.Random(1)
    junk = [rng.randbytes(rng.randrange(1, 300)) for _ in range(256)] + [forged] * 256
    sent, peers_up = 0, True
    stop = threading.Event()

    def watch() -> None:
        nonlocal peers_up
        while not stop.is_set():
            states = {n.name: n.state for n in node.status().nodes}
            peers_up &= states.get(B) == "up" and states.get(C) == "up"
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((B, 0))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for data in junk:
                s.sendto(data, (A, cluster.port))
            sent += len(junk)
    time.sleep(1)
    stop.set()
    watcher.join()
    counted = sum(node.counters()["datagrams"].values()) - before
    return sent, counted, peers_up


def tcp_flood(cluster: Cluster, connections: int) -> tuple[list[float], list[socket.socket]]:
    held = []
    for i in range(connections):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect((A, cluster.port + (i % 2)))
        except BlockingIOError:
            pass
        held.append(s)
    return latencies(cluster.port + 1, 200), held


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--connections", type=int, default=3000)
    p.add_argument("--out")
    args = p.parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory(prefix="dsh-flood-") as tmp:
        key = Path(tmp) / "key"
        generate_key_file(str(key))
        (Path(tmp) / "c").mkdir()
        cluster = Cluster(Path(tmp) / "c", [A, B, C], interval=0.5)
        for node in cluster.nodes.values():
            node.key_file = key
            node.verbose = False  # as in production: no debug log
        held: list[socket.socket] = []
        try:
            cluster.start()
            wait_for(cluster.all_up, 15, "cluster up")
            pid = cluster.nodes[A].pid
            rss_start = rss_mib(pid)
            idle = latencies(cluster.port + 1, 200)
            sent, counted, peers_up = udp_flood(cluster, args.seconds)
            rss_udp = rss_mib(pid)
            flooded, held = tcp_flood(cluster, args.connections)
            still_up = cluster.all_up()
            rss_end = rss_mib(pid)
            denied = cluster.nodes[A].counters()["tcp"]
        finally:
            for s in held:
                s.close()
            cluster.stop()
    lines = [
        "## dshd under attack (bench/flood.py)",
        "",
        f"Reproduce: `python3 bench/flood.py --seconds {args.seconds:g} "
        f"--connections {args.connections}` (sealed 3-node cluster on 127.0.0.51-53, "
        "interval 0.5 s, maxloops 3).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| hostile datagrams sent, unpaced, {args.seconds:g} s | "
        f"{sent} ({sent / args.seconds:.0f}/s) |",
        f"| of these processed and counted by the daemon | {counted} "
        f"({counted / args.seconds:.0f}/s; the rest dropped by the kernel) |",
        f"| peers shown up throughout the UDP flood | {'yes' if peers_up else 'NO'} |",
        f"| best-node latency idle, median / p99 | "
        f"{pct(idle, 0.5):.2f} / {pct(idle, 0.99):.2f} ms |",
        f"| same with {args.connections} never-reading connections held | "
        f"{pct(flooded, 0.5):.2f} / {pct(flooded, 0.99):.2f} ms |",
        f"| cluster all up after both floods | {'yes' if still_up else 'NO'} |",
        f"| daemon RSS: start / after UDP flood / after TCP flood | "
        f"{rss_start:.1f} / {rss_udp:.1f} / {rss_end:.1f} MiB |",
        f"| TCP counters after | {denied} |",
        "",
        f"Median over 200 queries each; mean idle {statistics.mean(idle):.2f} ms.",
    ]  # fmt: skip
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
