#!/usr/bin/env python3
"""What dshd's ``jobs`` costs on a node with N processes (issue 14's benchmark).

    python3 bench/jobs_cost.py [--processes 2000] [--asks 20] [--out FILE]

One real dshd on 127.0.0.90 (``--jobs all``), two more on 127.0.0.91-92 with
``--jobs own`` (the default), N extra ``sleep`` processes of this script's
(half of them marked as dsh's, DSH_JOB=1, so that ``own`` shows them), then
per dshd: the latency of ``GET /jobs?format=json`` asked once a second (each
a fresh table; dshd's own ``read=`` figure from the text header), of asks in
a tight loop (the rate limit: at most one fresh table a second), the answer's
size, and dshd's CPU over the asks (utime+stime of /proc/PID/stat); then the
whole of ``dsh ps`` over the three (each dshd reads the same /proc). Prints a
Markdown section; --out also writes it to FILE. Every process started here is
stopped on exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support.dshd import Cluster  # noqa: E402
from testbed import cpu_seconds  # noqa: E402

NODES = ["127.0.0.90", "127.0.0.91", "127.0.0.92"]
POLICIES = ("all", "own", "own")


def ask(url: str) -> tuple[float, bytes]:
    begun = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as r:
        body = r.read()
    return time.perf_counter() - begun, body


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f} ms (max {max(values) * 1000:.1f})"


def dsh_ps(c: Cluster, runs: int) -> str:
    """`dsh ps` over the three nodes (each shows its marked sleeps): the whole run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSH_")}
    env.update(DSH_DAEMON=NODES[0], DSH_HTTP_PORT=str(c.http_port))
    times, rows = [], 0
    for _ in range(runs):
        begun = time.perf_counter()
        done = subprocess.run([sys.executable, str(REPO / "dsh"), "ps"], env=env,
                              capture_output=True, check=True)  # fmt: skip
        times.append(time.perf_counter() - begun)
        rows = done.stdout.count(b"\n") - 1
    return (
        f"`dsh ps` over {len(NODES)} nodes ({rows} rows: the caller's processes, every one "
        "on the `all` node, those dsh placed on the two `own` nodes; merged and sorted), "
        f"the whole command: {ms(times)}"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--processes", type=int, default=2000)
    p.add_argument("--asks", type=int, default=20)
    p.add_argument("--out")
    args = p.parse_args()
    sleeps: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp, Cluster(Path(tmp), NODES, interval=1.5) as c:
        for name, policy in zip(NODES, POLICIES, strict=True):
            c.nodes[name].extra_args = ["--jobs", policy]
            c.nodes[name].verbose = False
        try:
            marked = {**os.environ, "DSH_JOB": "1"}
            for i in range(args.processes):
                sleeps.append(subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL,
                                               env=marked if i % 2 else None))  # fmt: skip
            c.start()
            total = len([d for d in os.listdir("/proc") if d.isdigit()])
            out = [f"## jobs on a node with {total} processes ({args.processes} of them "
                   f"sleeps of this script's, half marked DSH_JOB)", "",
                   "| dshd --jobs | shown | fresh table (asked 1/s) | dshd's read | "
                   "tight loop (shared) | answer | dshd CPU per fresh table |",
                   "|---|---|---|---|---|---|---|"]  # fmt: skip
            for name, policy in list(zip(NODES, POLICIES, strict=True))[:2]:
                base = f"http://{name}:{c.http_port}/jobs"
                ask(base + "?format=json")  # the first table (its 0.2 s prime)
                pid = c.nodes[name].pid
                fresh, reads = [], []
                cpu0 = cpu_seconds(pid)
                for _ in range(args.asks):
                    time.sleep(1.05)
                    seconds, body = ask(base)
                    fresh.append(seconds)
                    head = body.split(b"\n", 1)[0].decode()
                    reads.append(float(head.split("read=")[1].split("ms")[0]) / 1000)
                cpu = (cpu_seconds(pid) - cpu0) / args.asks
                shared = [ask(base + "?format=json")[0] for _ in range(args.asks)]
                seconds, body = ask(base + "?format=json")
                shown = body.count(b'"pid":')
                out.append(f"| {policy} | {shown} | {ms(fresh)} | {ms(reads)} | {ms(shared)} | "
                           f"{len(body) / 1024:.0f} KiB JSON | {cpu * 1000:.0f} ms |")  # fmt: skip
            out += ["", dsh_ps(c, args.asks)]
        finally:
            for s in sleeps:
                s.send_signal(signal.SIGKILL)
            for s in sleeps:
                s.wait()
    text = "\n".join(out) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
