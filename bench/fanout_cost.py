#!/usr/bin/env python3
"""``dsh -a true`` against ``pdsh -R ssh`` and ``clush`` over N nodes, in one run (issue 14).

A throw-away cluster on loopback, built from tests/support: 16 nodes on
127.0.0.100-115, each with a real sshd (keys and an ssh_config of this run)
and a dshd (one cluster file naming them all). For N = 2, 8 and 16 it times
``dsh -w NODES true`` (``dsh -a true`` at N = 16: the cluster has 16 nodes),
``pdsh -R ssh -w NODES true`` and ``clush -w NODES true`` against the same
sshd; repetitions are interleaved (the order of the tools rotates each round)
and the medians printed as a Markdown table. pdsh and clush start one ssh per
node per run; dsh hands each node's command to the per-user mux, whose SSH
connections and resident executors stay open between runs, so the first dsh
run (which opens them) is reported apart. Everything started here is stopped
on exit, Ctrl-C and SIGTERM included; traffic goes to 127.0.0.x only.

pdsh and clush get the run's ssh_config the ways their manuals give:
PDSH_SSH_ARGS_APPEND="-F FILE" (pdsh(1), ENVIRONMENT) and ``-o "-F FILE"``
(clush(1): "options added first to ssh").
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

# testbed puts src/ and tests/ on sys.path; tests/support's helpers come through it
from testbed import (
    DSH,
    PY,
    BenchError,
    Cluster,
    Sshd,
    common_free_port,
    make_client_keys,
    run,
    timed,
    wait_for,
    write_ssh_config,
)

NODES = [f"127.0.0.{n}" for n in range(100, 116)]
SIZES = (2, 8, 16)
TOOLS = ("dsh", "pdsh", "clush")


def say(text: str) -> None:
    print(f"bench: {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def node_set(n: int) -> str:
    return f"127.0.0.[100-{100 + n - 1}]"


class FanBed:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        keys = make_client_keys(directory / "keys")
        port = common_free_port(NODES)
        self.sshd = [Sshd(a, port, directory / f"sshd-{a}", keys) for a in NODES]
        self.config = str(write_ssh_config(directory / "ssh_config", self.sshd, keys))
        (directory / "dshd").mkdir()
        self.dshd = Cluster(directory / "dshd", NODES, interval=0.5)
        for node in self.dshd.nodes.values():
            node.verbose = False
        (directory / "run").mkdir(mode=0o700)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DSH_")}
        self.env.update({"XDG_RUNTIME_DIR": str(directory / "run"),
                         "DSH_HTTP_PORT": str(self.dshd.http_port)})  # fmt: skip

    def start(self) -> None:
        for server in self.sshd:
            server.start()
        self.dshd.start()
        wait_for(lambda: self.dshd.all_up([NODES[0], *NODES]), 20, "bench cluster up")

    def stop(self) -> None:
        run([PY, DSH, "--mux-stop"], env=self.env, timeout=30)
        self.dshd.stop()
        for server in self.sshd:
            server.stop()

    def argv(self, tool: str, n: int) -> tuple[list[str], dict[str, str]]:
        if tool == "dsh":
            port = self.dshd.port
            which = ["-a"] if n == len(NODES) else ["-w", node_set(n)]
            return [PY, DSH, "-H", f"{NODES[0]}:{port + 1}", "--status-port", str(port),
                    "--ssh-config", self.config, *which, "true"], self.env  # fmt: skip
        if tool == "pdsh":
            env = {**self.env, "PDSH_SSH_ARGS_APPEND": f"-F {self.config}"}
            return ["pdsh", "-R", "ssh", "-f", "64", "-w", node_set(n), "true"], env
        return ["clush", "-f", "64", "-o", f"-F {self.config}", "-w", node_set(n), "true"], self.env


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=10)
    args = p.parse_args(argv)
    missing = [tool for tool in ("pdsh", "clush") if not shutil.which(tool)]
    if missing:
        print(f"bench: {' and '.join(missing)} not installed (apt-get install pdsh clustershell)",
              file=sys.stderr)  # fmt: skip
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="dsh-fanout-bench.") as tmp:
        bed = FanBed(Path(tmp))
        try:
            say(f"starting {len(NODES)} sshd and dshd")
            bed.start()
            first = {}
            for n in SIZES:  # the first dsh run at each N opens what later runs reuse
                command, env = bed.argv("dsh", n)
                first[n] = timed(command, env=env, cwd=tmp)
            for tool in ("pdsh", "clush"):  # (and every other tool once: same footing)
                command, env = bed.argv(tool, 2)
                timed(command, env=env, cwd=tmp)
            times: dict[tuple[str, int], list[float]] = {}
            for r in range(args.rounds):
                say(f"round {r + 1}/{args.rounds}")
                for n in SIZES:
                    for tool in TOOLS[r % 3 :] + TOOLS[: r % 3]:
                        command, env = bed.argv(tool, n)
                        times.setdefault((tool, n), []).append(timed(command, env=env, cwd=tmp))
        finally:
            bed.stop()
    med = {key: statistics.median(values) * 1000 for key, values in times.items()}
    print(
        f"\n`true` on N loopback nodes (real sshd; medians of {args.rounds} interleaved runs, ms)\n"
    )
    print(
        "| N | dsh -a (warm mux) | pdsh -R ssh | clush | pdsh / dsh | clush / dsh | dsh first run |"
    )
    print("|---|---|---|---|---|---|---|")
    for n in SIZES:
        d, p, c = med[("dsh", n)], med[("pdsh", n)], med[("clush", n)]
        print(f"| {n} | {d:.1f} | {p:.1f} | {c:.1f} | {p / d:.1f}x | {c / d:.1f}x | "
              f"{first[n] * 1000:.0f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        sys.exit(1)
