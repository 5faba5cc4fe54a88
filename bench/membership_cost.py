#!/usr/bin/env python3
"""What membership costs a node as the cluster grows: real dshd, and serf beside it.

    python3 bench/membership_cost.py [--nodes 200] [--small 8] [--seconds 180]
        [--wave 20] [--no-serf] [--out FILE]

Runs, one after the other in one invocation, N real daemons on loopback
addresses (127.0.x.y, one each) at their default intervals: dshd at --small
nodes and at --nodes, then Debian's serf agent (SWIM + Lifeguard, the
reference) at the same two sizes. Each phase runs in a network namespace of
its own that has only a loopback interface, so that

* what the kernel counts there (/proc/net/snmp's Udp InDatagrams and
  OutDatagrams, and an nftables counter of UDP bytes on the output hook) is
  that phase's daemons' traffic and nothing else's (on loopback every
  datagram sent is received once);
* the addresses and ports collide with nothing else on this machine (the
  system tests, the other benchmarks).

Each dshd has its own --control path, no HTTP port and no sensors (an empty
--config: the gossip alone is measured; the sensors cost the same at every
N, see bench/agent_cost.py). They start in waves of --wave, because 200
Python start-ups at once saturate two cores. Once every node shows every
other up (or serf's members are all alive everywhere), a warm-up, then a
window of --seconds: per-node CPU (utime + stime from /proc/PID/stat over the
window, % of one core), VmRSS and VmHWM at its end, datagrams and UDP bytes
per node per second, and false downs (no daemon is stopped in the window, so
every "down" is false): dshd's own event counters (status footer) and its
status tables polled every --sweep seconds; serf's EventMemberFailed log
lines and `serf members` at each sweep. A sweep also reads the `age` column
(seconds since the freshest news of a node) of every live row.

Prints Markdown tables for BENCHMARKS.md; --out also writes them to FILE.
Every process started is stopped and every namespace removed on exit, also
after a failure or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "src"), str(REPO / "bench")]

from support.dshd import Cluster, Node  # noqa: E402
from support.netns import parse_table  # noqa: E402
from support.waiting import wait_for  # noqa: E402
from testbed import cpu_seconds, kib_to_mib, percentile, proc_status  # noqa: E402

from dsh.daemon.config import DaemonConfig  # noqa: E402

SERF = "/usr/bin/serf"
DSHD_PORT = 18181
SERF_PORT, SERF_RPC = 7946, 7373
WARMUP = 15.0  # s after everyone is up, before the window: the start-up's last news settles
NFT_TABLE = "membench"

Result = dict[str, Any]


def address(i: int) -> str:
    """The i-th loopback address (0-based): 127.0.1.1 ... 127.0.1.250, 127.0.2.1, ..."""
    return f"127.0.{1 + i // 250}.{1 + i % 250}"


# -- what the kernel counts in this namespace --------------------------------------------


def snmp_udp() -> dict[str, int]:
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    names, values = [fields for fields in lines if fields[0] == "Udp:"][:2]
    return {n: int(v) for n, v in zip(names[1:], values[1:], strict=True)}


def nft(*args: str) -> str:
    return subprocess.run(["nft", *args], capture_output=True, text=True, check=True).stdout


def count_udp_bytes() -> None:
    """An nftables counter of every UDP datagram sent in this namespace (and, for
    serf, of its TCP on the gossip port: memberlist's push-pull and fallback)."""
    nft("add", "table", "inet", NFT_TABLE)
    nft("add", "chain", "inet", NFT_TABLE, "out", "{ type filter hook output priority 0; }")
    nft("add", "rule", "inet", NFT_TABLE, "out", "meta", "l4proto", "udp", "counter")
    nft("add", "rule", "inet", NFT_TABLE, "out", "tcp", "dport", str(SERF_PORT), "counter")
    nft("add", "rule", "inet", NFT_TABLE, "out", "tcp", "sport", str(SERF_PORT), "counter")


def nft_counters() -> tuple[int, int, int, int]:
    """(UDP packets, UDP bytes, TCP packets, TCP bytes) on the gossip port, so far."""
    found = [tuple(map(int, m)) for m in
             re.findall(r"counter packets (\d+) bytes (\d+)", nft("list", "table", "inet",
                                                                 NFT_TABLE))]  # fmt: skip
    udp, tcp_in, tcp_out = found
    return udp[0], udp[1], tcp_in[0] + tcp_out[0], tcp_in[1] + tcp_out[1]


# -- one phase, run inside its namespace ---------------------------------------------------


class Phase:
    """The daemons of one kind at one size: start, settle, measure, stop."""

    kind = ""

    def __init__(self, n: int, directory: Path, wave: int) -> None:
        self.n, self.dir, self.wave = n, directory, wave
        self.names = [address(i) for i in range(n)]

    def pids(self) -> list[int]:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def settled(self) -> bool:
        raise NotImplementedError

    def mark(self) -> None:
        """Note where the window starts (counters, log offsets)."""

    def sweep(self, into: Result) -> None:
        """One look at every member's view; adds to ``into``."""

    def finish(self, into: Result) -> None:
        """The event counts of the window into ``into``."""

    def stop(self) -> None:
        raise NotImplementedError


class DshdPhase(Phase):
    kind = "dshd"

    def __init__(self, n: int, directory: Path, wave: int) -> None:
        super().__init__(n, directory, wave)
        d = DaemonConfig()
        self.cluster = Cluster(directory, self.names, interval=d.interval, maxloops=d.maxloops,
                               port=DSHD_PORT)  # fmt: skip
        (directory / "none.conf").write_text("")  # no sensors: the gossip alone
        for node in self.cluster.nodes.values():
            node.verbose = False
            node.http = False
            node.extra_args += ["--config", str(directory / "none.conf")]
        self.before: dict[str, Counter[str]] = {}

    def pids(self) -> list[int]:
        return [node.pid for node in self.cluster.nodes.values()]

    def start(self) -> None:
        nodes = list(self.cluster.nodes.values())
        for k in range(0, len(nodes), self.wave):
            batch = nodes[k : k + self.wave]
            for node in batch:
                node.start(wait=False)
            for node in batch:
                wait_for(node._answering, 120, f"dshd {node.name} to answer", poll=0.1)

    def settled(self) -> bool:
        return all(self.view(node)[0] == {"up": self.n} for node in self.cluster.nodes.values())

    def view(self, node: Node) -> tuple[Counter[str], list[float], Counter[str]]:
        """(states of all rows, ages of the live ones, the footer's counters summed by name)."""
        text = node.status_text()
        states: Counter[str] = Counter()
        ages: list[float] = []
        counters: Counter[str] = Counter()
        for line in text.splitlines():
            fields = line.split()
            # the footer's counter lines: "# datagrams accepted=5 ...", "# membership ..."
            if len(fields) > 2 and fields[0] == "#" and all("=" in f for f in fields[2:]):
                for f in fields[2:]:
                    k, _, v = f.partition("=")
                    with contextlib.suppress(ValueError):
                        counters[f"{fields[1]}.{k}"] += int(v)
        for name, row in parse_table(text).items():
            states[row["state"]] += 1
            if name != node.name and row["state"] in ("up", "drained", "suspect"):
                with contextlib.suppress(ValueError):
                    ages.append(float(row["age"]))
        return states, ages, counters

    def mark(self) -> None:
        self.before = {n.name: self.view(n)[2] for n in self.cluster.nodes.values()}

    def sweep(self, into: Result) -> None:
        states: Counter[str] = Counter(into.get("states", {}))
        ages: list[float] = into.setdefault("ages", [])
        for node in self.cluster.nodes.values():
            seen, node_ages, _ = self.view(node)
            seen["up"] -= 1  # itself
            states.update(seen)
            ages.extend(node_ages)
        into["states"] = dict(states)
        into["sweeps"] = into.get("sweeps", 0) + 1

    def finish(self, into: Result) -> None:
        delta: Counter[str] = Counter()
        for node in self.cluster.nodes.values():
            after = self.view(node)[2]
            for k, v in after.items():
                delta[k] += v - self.before[node.name].get(k, 0)
        into["events"] = dict(delta)

    def stop(self) -> None:
        # All at once: one by one, 200 orderly shutdowns take minutes.
        for node in self.cluster.nodes.values():
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        self.cluster.stop()  # waits for each (and kills one that hangs)


class SerfPhase(Phase):
    kind = "serf"

    def __init__(self, n: int, directory: Path, wave: int) -> None:
        super().__init__(n, directory, wave)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.offsets: list[int] = []

    def log(self, i: int) -> Path:
        return self.dir / f"serf-{i}.log"

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def start(self) -> None:
        # The seed alone first: the others join it, and a refused join ends an agent.
        for k, end in [
            (0, 1),
            *((k, min(self.n, k + self.wave)) for k in range(1, self.n, self.wave)),
        ]:
            for i in range(k, end):
                a = self.names[i]
                argv = [SERF, "agent", "-node", a, "-bind", f"{a}:{SERF_PORT}",
                        "-rpc-addr", f"{a}:{SERF_RPC}", "-log-level", "info"]  # fmt: skip
                if i:
                    argv += ["-join", f"{self.names[0]}:{SERF_PORT}"]
                with open(self.log(i), "ab") as out:
                    self.processes.append(subprocess.Popen(
                        argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
                    ))  # fmt: skip
            for i in range(k, end):
                wait_for(partial(self.answers, i), 60, f"serf {i} to answer", poll=0.1)

    def answers(self, i: int) -> bool:
        return self.members(i) is not None

    def members(self, i: int) -> Counter[str] | None:
        if self.processes[i].poll() is not None:
            raise SystemExit(f"membership_cost: serf {i} exited:\n{self.log(i).read_text()}")
        proc = subprocess.run(
            [SERF, "members", "-rpc-addr", f"{self.names[i]}:{SERF_RPC}", "-format", "json"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if proc.returncode != 0:
            return None
        return Counter(m["status"] for m in json.loads(proc.stdout)["members"])

    def settled(self) -> bool:
        return all(self.members(i) == {"alive": self.n} for i in range(self.n))

    def mark(self) -> None:
        self.offsets = [self.log(i).stat().st_size for i in range(self.n)]

    def sweep(self, into: Result) -> None:
        states: Counter[str] = Counter(into.get("states", {}))
        for i in range(self.n):
            seen = self.members(i) or Counter({"no answer": 1})
            seen["alive"] -= 1  # itself
            states.update(seen)
        into["states"] = dict(states)
        into["sweeps"] = into.get("sweeps", 0) + 1

    def finish(self, into: Result) -> None:
        events: Counter[str] = Counter()
        for i in range(self.n):
            with open(self.log(i), "rb") as f:
                f.seek(self.offsets[i])
                text = f.read().decode(errors="replace")
            events["EventMemberFailed"] += text.count("EventMemberFailed")
            events["EventMemberJoin"] += text.count("EventMemberJoin")
            events["suspect"] += len(re.findall(r"memberlist: Suspect", text))
        into["events"] = dict(events)

    def stop(self) -> None:
        for p in self.processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.processes:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def cpu_by_process(exclude: set[int]) -> dict[int, tuple[str, float]]:
    """pid -> (command line, CPU seconds so far) of every other process: what
    else ran during the window."""
    out = {}
    for proc in psutil.process_iter(["cmdline", "cpu_times", "name"]):
        if proc.pid in exclude or proc.info["cpu_times"] is None:
            continue
        t = proc.info["cpu_times"]
        command = " ".join(proc.info["cmdline"] or []) or f"[{proc.info['name']}]"  # a kernel's
        out[proc.pid] = (command[:80], t.user + t.system)
    return out


def others(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
           window: float) -> list[tuple[float, str]]:  # fmt: skip
    """(% of a core, command) of the other processes that used the most CPU in the window."""
    used = [(100 * (cpu - before[pid][1]) / window, cmd) for pid, (cmd, cpu) in after.items()
            if pid in before]  # fmt: skip
    return sorted((u for u in used if u[0] >= 1.0), reverse=True)[:4]


def run_phase(kind: str, n: int, seconds: float, wave: int, sweep_every: float) -> Result:
    """Inside the phase's namespace: everything, and the figures as a dict."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    count_udp_bytes()
    directory = Path(tempfile.mkdtemp(prefix=f"dsh-membership-{kind}-{n}-"))
    phase: Phase = (DshdPhase if kind == "dshd" else SerfPhase)(n, directory, wave)
    result: Result = {"kind": kind, "n": n}
    try:
        t0 = time.monotonic()
        phase.start()
        result["start_s"] = time.monotonic() - t0
        wait_for(phase.settled, 600, f"{n} {kind} to see each other all up", poll=2.0)
        result["settle_s"] = time.monotonic() - t0
        time.sleep(WARMUP)
        pids = phase.pids()
        phase.mark()
        cpu0 = [cpu_seconds(p) for p in pids]
        snmp0, nft0 = snmp_udp(), nft_counters()
        ours = {os.getpid(), *pids}
        others0, me0 = cpu_by_process(ours), cpu_seconds(os.getpid())
        started = time.monotonic()
        load0 = os.getloadavg()[0]
        next_sweep = started + sweep_every
        while (left := started + seconds - time.monotonic()) > 0:
            if time.monotonic() >= next_sweep:
                phase.sweep(result)
                next_sweep += sweep_every
            time.sleep(min(left, 1.0))
        window = time.monotonic() - started
        cpu = [cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True)]
        snmp1, nft1 = snmp_udp(), nft_counters()
        result["others"] = others(others0, cpu_by_process(ours), window)
        result["sweep_cpu"] = 100 * (cpu_seconds(os.getpid()) - me0) / window
        statuses = [proc_status(p) for p in pids]
        phase.sweep(result)  # the last look, at the window's end
        phase.finish(result)
        result.update(
            window=window,
            load=(load0, os.getloadavg()[0]),
            cpu_pct=[100 * c / window for c in cpu],
            rss=[kib_to_mib(s["VmRSS"]) for s in statuses],
            hwm=[kib_to_mib(s["VmHWM"]) for s in statuses],
            out_dgrams=(snmp1["OutDatagrams"] - snmp0["OutDatagrams"]) / window / n,
            in_dgrams=(snmp1["InDatagrams"] - snmp0["InDatagrams"]) / window / n,
            in_errors=snmp1["InErrors"] - snmp0["InErrors"],
            rcvbuf_errors=snmp1["RcvbufErrors"] - snmp0["RcvbufErrors"],
            udp_bytes=(nft1[1] - nft0[1]) / window / n,
            tcp_segments=(nft1[2] - nft0[2]) / window / n,
            tcp_bytes=(nft1[3] - nft0[3]) / window / n,
        )
        return result
    finally:
        phase.stop()
        shutil.rmtree(directory, ignore_errors=True)


# -- the parent: namespaces, phases, tables ------------------------------------------------


def in_namespace(kind: str, n: int, args: argparse.Namespace) -> Result:
    ns = f"dshbench{secrets.token_hex(2)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    out = Path(tempfile.mkstemp(prefix="dsh-membership-", suffix=".json")[1])
    try:
        argv = ["ip", "netns", "exec", ns, sys.executable, __file__, "--phase", kind,
                "--nodes", str(n), "--seconds", str(args.seconds), "--wave", str(args.wave),
                "--sweep", str(args.sweep), "--out", str(out)]  # fmt: skip
        print(f"membership_cost: {kind} x {n} in namespace {ns} ...", file=sys.stderr, flush=True)
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, timeout=args.seconds + 1800)
        if proc.returncode != 0:
            raise SystemExit(f"membership_cost: the {kind} x {n} phase failed ({proc.returncode})")
        result: Result = json.loads(out.read_text())
        return result
    finally:
        for pid in subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                                  text=True).stdout.split():  # fmt: skip
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        out.unlink(missing_ok=True)


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def false_downs(r: Result) -> tuple[int, str]:
    """The window's down declarations (every one false) and where they were read."""
    events = r.get("events", {})
    if r["kind"] == "serf":
        return events.get("EventMemberFailed", 0), "EventMemberFailed log lines"
    keys = [k for k in events if k.endswith(".declared_down")]
    if keys:
        return sum(events[k] for k in keys), "footer declared_down"
    return r.get("states", {}).get("down", 0), "down rows in the sweeps"


def report(results: list[Result], args: argparse.Namespace, commit: str) -> str:
    serf_version = ""
    if any(r["kind"] == "serf" for r in results):
        serf_version = subprocess.run([SERF, "version"], capture_output=True,
                                      text=True).stdout.splitlines()[0]  # fmt: skip
    d = DaemonConfig()
    lines = [
        f"## Membership at {args.nodes} nodes: real dshd beside serf"
        " (bench/membership_cost.py, issue 15)",
        "",
        f"Each row one phase of one run, one after the other, each in a network namespace of"
        f" its own with only loopback (127.0.x.y, one address per daemon), {args.seconds:g} s"
        f" window after all were up and {WARMUP:g} s of warm-up; {os.cpu_count()} cores,"
        f" commit {commit}. dshd: default interval {d.interval:g} s, maxloops {d.maxloops},"
        " no sensors, no HTTP. serf: "
        f"{serf_version or '-'}, `serf agent` with its defaults (LAN profile), every agent"
        " joined to the first. CPU = utime + stime from /proc/PID/stat over the window;"
        " RSS at its end. Datagrams: /proc/net/snmp Udp OutDatagrams / InDatagrams of the"
        " namespace over the window / N; bytes: an nftables counter of UDP on the output"
        " hook (IP + UDP headers included) / N.",
        "",
        "| daemon | N | CPU % of a core, median (max) | VmRSS MiB, median (max) | VmHWM MiB"
        " median | datagrams/s sent per node | received per node | UDP B/s per node |"
        " TCP gossip B/s per node | false downs in the window | per node-hour |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        downs, _ = false_downs(r)
        node_hours = r["n"] * r["window"] / 3600
        tcp = f"{r['tcp_bytes']:.0f}" if r["kind"] == "serf" else "-"
        lines.append(
            f"| {r['kind']} | {r['n']} | {med(r['cpu_pct']):.3f} ({max(r['cpu_pct']):.3f}) |"
            f" {med(r['rss']):.1f} ({max(r['rss']):.1f}) | {med(r['hwm']):.1f} |"
            f" {r['out_dgrams']:.2f} | {r['in_dgrams']:.2f} | {r['udp_bytes']:.0f} | {tcp} |"
            f" {downs} | {downs / node_hours:.2f} |"
        )
    lines += ["", "| daemon | N | start s | all up after s | load avg (start, end) |"
              " sweeps | non-live observations | age of live rows s, median / p99 / max |"
              " events in the window | rcvbuf errors |",
              "|---|--:|--:|--:|--:|--:|--:|--:|---|--:|"]  # fmt: skip
    for r in results:
        states = dict(r.get("states", {}))
        live = ("up", "alive", "drained", "suspect")
        odd = {k: v for k, v in states.items() if k not in live and v}
        ages = sorted(r.get("ages", []))
        age = (f"{med(ages):.1f} / {percentile(ages, 0.99):.1f} / {ages[-1]:.1f}" if ages
               else "-")  # fmt: skip
        events = ", ".join(f"{k}={v}" for k, v in sorted(r.get("events", {}).items())
                           if v and not k.startswith(("tcp.", "http."))) or "-"  # fmt: skip
        suspect = states.get("suspect", 0)
        lines.append(
            f"| {r['kind']} | {r['n']} | {r['start_s']:.0f} | {r['settle_s']:.0f} |"
            f" {r['load'][0]:.2f}, {r['load'][1]:.2f} | {r.get('sweeps', 0)} |"
            f" {json.dumps(odd) if odd else 0}{f' (suspect {suspect})' if suspect else ''} |"
            f" {age} | {events} | {r['rcvbuf_errors']} |"
        )
    lines += ["", "Other processes that used at least 1 % of a core in a window (this"
              " script's sweeps and the daemons excluded):", ""]  # fmt: skip
    for r in results:
        busy = "; ".join(f"{pct:.0f} % `{cmd}`" for pct, cmd in r.get("others", [])) or "none"
        lines.append(
            f"* {r['kind']} x {r['n']}: {busy} (this script's sweeps: {r['sweep_cpu']:.1f} %)"
        )
    by = {(r["kind"], r["n"]): r for r in results}
    small, big = by.get(("dshd", args.small)), by.get(("dshd", args.nodes))
    if small and big:
        ratio = med(big["rss"]) / med(small["rss"])
        met = "met" if abs(ratio - 1) <= 0.10 else "NOT met"
        lines += ["", f"dshd RSS at {args.nodes} / at {args.small}: {ratio:.3f}"
                  f" (target: within 10 %, {met})."]  # fmt: skip
    lines += [
        "",
        "Reproduce (root: namespaces and nftables; `apt-get install serf`, which"
        " contrib/install-deps --bench installs):",
        "",
        "    env -u PYTHONDONTWRITEBYTECODE .venv/bin/python bench/membership_cost.py"
        f" --nodes {args.nodes} --small {args.small} --seconds {args.seconds:g}",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--nodes", type=int, default=200, help="the big cluster's size")
    p.add_argument("--small", type=int, default=8, help="the small cluster's size (RSS baseline)")
    p.add_argument("--seconds", type=float, default=180.0, help="length of each window")
    p.add_argument("--wave", type=int, default=20, help="daemons started at once")
    p.add_argument("--sweep", type=float, default=30.0, help="seconds between status sweeps")
    p.add_argument("--no-serf", action="store_true", help="dshd only")
    p.add_argument("--out", type=Path, help="also write the Markdown here")
    p.add_argument("--phase", choices=["dshd", "serf"], help=argparse.SUPPRESS)  # internal
    args = p.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: every process started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.phase:
        result = run_phase(args.phase, args.nodes, args.seconds, args.wave, args.sweep)
        args.out.write_text(json.dumps(result))
        return 0
    if os.geteuid() != 0 or shutil.which("nft") is None:
        raise SystemExit("membership_cost: needs root and nftables (namespaces, counters)")
    if not args.no_serf and not Path(SERF).exists():
        raise SystemExit(f"membership_cost: {SERF} not found (apt-get install serf)")
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    kinds = ["dshd"] + ([] if args.no_serf else ["serf"])
    results = [in_namespace(kind, n, args) for kind in kinds for n in (args.small, args.nodes)]
    text = report(results, args, commit)
    sys.stdout.write(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
