#!/usr/bin/env python3
"""The membership tables of issue 15, from the deterministic simulator (src/dsh/sim).

For each cluster size N and each loss rate it runs the real gossip core
(``core.gossip.GossipNode``, one per simulated node) in virtual time on a
seeded network that drops that share of datagrams (each copy on its own, as
inbound nftables loss does) and delays each 0.2-2 ms. After a warm-up it
crashes a random node every few seconds (restarting it later, so N stays
about constant), asks random nodes for the best node (a job is placed on
each answer, and true loads move as a random process), and prints Markdown
tables for BENCHMARKS.md: detection after a crash, false suspicions and
downs of live nodes, traffic per node, the age of load information, and
where best-node answers send jobs. Every number follows from ``--seed``:
the same command prints the same tables (the run-cost table aside).

Definitions (src/dsh/sim/metrics.py):

* detection: per crash, seconds from the crash until the first observer,
  99 % of the observers and all observers show the node ``down`` (looked at
  every 0.1 s); the observers are the running nodes that showed it up or
  suspect just before (one that never heard of a node shows it down
  already), at most 1,000 of them drawn at random; "knew it" is their share
  of the running nodes (median over crashes). Median and p99 over crashes;
  "not seen by all" counts crashes that some observer did not show down
  before the node restarted (25 s later unless ``--restart-after``).
* false suspect / down per node-hour: edges ``up`` -> ``suspect`` and
  anything -> ``down``/``left`` of a running member at an observer, both
  running for at least 20 s, looked at every 0.3 s, over all pairs (N <= 100)
  or a fixed random sample of 10,000 (observer, member) pairs; the count
  per pair-hour times N - 1: what all observers of one node show per hour.
* traffic: datagrams and bytes (UDP payload; add 28 bytes per datagram for
  IPv4 + UDP headers, and 36 for the envelope of a cluster key) sent per
  running node per second, after the warm-up; and of those, the best-node
  questions' (ASK, BID, CLAIM), whose cost follows the job rate
  (``--best-rate``) rather than N, with the gossip's share left without them.
* age of load: for random (observer, member) pairs, seconds since the member
  sampled the freshest load the observer holds of it; "up" only for pairs the
  observer shows ``up`` (the ones placement may use); "chosen": the chosen
  node's age at the asker, for each best-node answer.
* placement: the chosen node's true load before the job, as a percentile of
  the true loads of all running nodes (0 = least loaded; above 1,000 nodes
  against a random 1,000), and how much more load it carried than the node
  at the 10th percentile, in jobs (one job adds 1.0 at first). Questions come
  at 0.05 N a second (at most 50) unless ``--best-rate``.
* ``--reference S``: the same runs with every node's best-node answers
  scored by the true loads of S seconds ago instead of the reports it holds
  (0: the loads of the moment), everything else unchanged: what the d-choices
  rule could do with perfect information of that age. A yardstick; no
  daemon can do it.
* ``--ask-best K``: how many of its candidates a best-node question asks
  for their load now (src/dsh/core/bids.py); 0 answers from the reports
  alone, as dshd did before. The questions' datagrams are in the traffic.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import resource
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "src")]

from dsh.core import auth  # noqa: E402
from dsh.core.bids import ASK_BEST  # noqa: E402
from dsh.sim.cluster import NodeConfig  # noqa: E402
from dsh.sim.metrics import percentile  # noqa: E402
from dsh.sim.scenario import Result, Scenario, run, summary  # noqa: E402

SIZES = (10, 100, 1000, 10_000)
LOSSES = (0, 10, 20, 30)
# Virtual minutes measured per size: the big clusters cost more per virtual second.
MINUTES = {10: 30.0, 100: 20.0, 1000: 5.0, 10_000: 2.0}
HEADERS = 28  # IPv4 + UDP bytes per datagram
# What a cluster key adds to every datagram (core/auth.py): the envelope's
# header and the tag. The simulated nodes send unsealed; the sizes are exact.
SEALED = auth.HEADER_BYTES + auth.TAG_BYTES


def say(text: str) -> None:
    print(f"membership_sim: {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def scenario_for(size: int, loss: int, args: argparse.Namespace) -> Scenario:
    minutes = args.minutes if args.minutes is not None else MINUTES.get(size, 2.0)
    # one crashed node at a time in a small cluster, a steady stream in a big one
    crash_every = args.crash_every or (30.0 if size <= 10 else 10.0)
    return Scenario(
        size=size,
        loss=loss / 100,
        duration=minutes * 60,
        warmup=args.warmup,
        seed=args.seed,
        crash_every=crash_every,
        restart_after=args.restart_after,
        best_rate=args.best_rate or min(50.0, 0.05 * size),
        reference=args.reference,
        config=NodeConfig(ask_best=ASK_BEST if args.ask_best is None else args.ask_best),
    )


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or value != value:
        return "-"
    if value == float("inf"):
        return "never"
    return f"{value:.{digits}f}"


def pair(values: list[float], low: float, high: float, digits: int = 1) -> str:
    return f"{fmt(percentile(values, low), digits)} / {fmt(percentile(values, high), digits)}"


def detection_table(results: list[Result]) -> list[str]:
    lines = [
        "| N | loss | virtual min | crashes | knew it | first down, median / p99 s | 99 % down, "
        "median / p99 s | all down, median / p99 s | not seen by all |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        sc = r.scenario
        first = summary(list(r.first_down))
        most = summary(r.most_down)
        every = summary(r.all_down)
        lines.append(
            f"| {sc.size:,} | {sc.loss:.0%} | {sc.duration / 60:g} | {len(r.all_down)} "
            f"| {percentile(r.knew, 0.5):.0%} "
            f"| {fmt(first[0])} / {fmt(first[1])} | {fmt(most[0])} / {fmt(most[1])} "
            f"| {fmt(every[0])} / {fmt(every[1])} | {every[2]} |"
        )
    return lines


def false_table(results: list[Result]) -> list[str]:
    lines = [
        "| N | loss | pairs watched | pair-hours | false suspect per node-hour (edges) "
        "| false down per node-hour (edges) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        f, sc = r.false, r.scenario
        lines.append(
            f"| {sc.size:,} | {sc.loss:.0%} | {len(f.pairs):,} | {f.pair_seconds / 3600:,.0f} "
            f"| {fmt(r.false_suspects, 2)} ({f.suspect_edges}) "
            f"| {fmt(r.false_downs, 2)} ({f.down_edges}) |"
        )
    return lines


def traffic_table(results: list[Result]) -> list[str]:
    lines = [
        "| N | loss | datagrams sent per node per s | bytes sent per node per s (UDP payload) "
        "| with IPv4 + UDP headers | and sealed with a cluster key "
        "| datagrams received per node per s "
        "| of the sent, best-node questions: datagrams/s, B/s with headers "
        "| gossip alone (without the questions): with headers, sealed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        sc = r.scenario
        wire = r.bytes_per_node_s + HEADERS * r.sent_per_node_s
        sealed = wire + SEALED * r.sent_per_node_s
        asked = r.question_bytes_per_node_s + HEADERS * r.question_sent_per_node_s
        gossip = wire - asked
        gossip_sealed = gossip + SEALED * (r.sent_per_node_s - r.question_sent_per_node_s)
        lines.append(
            f"| {sc.size:,} | {sc.loss:.0%} | {r.sent_per_node_s:.2f} | {r.bytes_per_node_s:,.0f} "
            f"| {wire:,.0f} | {sealed:,.0f} | {r.received_per_node_s:.2f} "
            f"| {r.question_sent_per_node_s:.2f}, {asked:,.0f} "
            f"| {gossip:,.0f}, {gossip_sealed:,.0f} |"
        )
    return lines


def age_table(results: list[Result]) -> list[str]:
    lines = [
        "| N | loss | age of load, all pairs: median / p99 s | pairs shown up: median / p99 s "
        "| chosen node: median / p99 s | pairs holding no load |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        a, sc = r.ages, r.scenario
        none = a.none / a.sampled if a.sampled else float("nan")
        lines.append(
            f"| {sc.size:,} | {sc.loss:.0%} | {pair(a.all, 0.5, 0.99)} "
            f"| {pair(a.placeable, 0.5, 0.99)} | {pair(a.chosen, 0.5, 0.99)} | {none:.1%} |"
        )
    return lines


def placement_table(results: list[Result]) -> list[str]:
    lines = [
        "| N | loss | answers | chosen node's true-load percentile: median / p90 "
        "| chosen in the best 10 % | load above the 10th-percentile node, jobs: median / p90 "
        "| no answer / a stopped node |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        p, sc = r.placement, r.scenario
        best10 = (
            sum(1 for x in p.percentiles if x < 10) / len(p.percentiles) if p.percentiles else 0
        )
        lines.append(
            f"| {sc.size:,} | {sc.loss:.0%} | {p.asked:,} | {pair(p.percentiles, 0.5, 0.9, 0)} "
            f"| {best10:.0%} | {pair(p.excess, 0.5, 0.9, 2)} | {p.no_answer} / {p.dead_answer} |"
        )
    return lines


def cost_table(results: list[Result], costs: list[tuple[float, float]]) -> list[str]:
    lines = [
        "| N | loss | virtual s (warm-up + measured) | wall-clock s | events | peak RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for r, (seconds, rss) in zip(results, costs, strict=True):
        sc = r.scenario
        lines.append(
            f"| {sc.size:,} | {sc.loss:.0%} | {sc.warmup:g} + {sc.duration:g} | {seconds:.0f} "
            f"| {r.events:,} | {rss:.0f} |"
        )
    return lines


def parse_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=parse_list, default=list(SIZES), help="e.g. 10,100")
    p.add_argument("--losses", type=parse_list, default=list(LOSSES), help="percent, e.g. 0,30")
    p.add_argument("--minutes", type=float, help="virtual minutes measured (default by size)")
    p.add_argument("--warmup", type=float, default=60.0, help="virtual seconds before measuring")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--crash-every", type=float, help="virtual s (default 30 at N <= 10, else 10)")
    p.add_argument("--restart-after", type=float, default=25.0, help="virtual s after a crash")
    p.add_argument(
        "--best-rate",
        type=float,
        help="best-node questions per virtual s, whole cluster (default 0.05 N, at most 50)",
    )
    p.add_argument(
        "--reference",
        type=float,
        metavar="SECONDS",
        help="a yardstick, not dshd: answer from every node's true load SECONDS old "
        "instead of the reports (src/dsh/sim/reference.py)",
    )
    p.add_argument(
        "--ask-best",
        type=int,
        metavar="K",
        help=f"candidates each best-node question asks for its load now (default {ASK_BEST};"
        " 0: answer from the reports alone, dshd before bids.py)",
    )
    p.add_argument("--profile", action="store_true", help="print where the time goes (stderr)")
    args = p.parse_args(argv)
    profiler = cProfile.Profile() if args.profile else None
    command = "python3 bench/membership_sim.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    results: list[Result] = []
    costs: list[tuple[float, float]] = []
    for size in args.sizes:
        for loss in args.losses:
            sc = scenario_for(size, loss, args)
            say(f"N={size} loss={loss}% {sc.warmup:g}+{sc.duration:g} virtual s")
            started = time.perf_counter()

            def progress(now: float, cluster: object, started: float = started) -> None:
                say(f"  t={now:.0f} s, {time.perf_counter() - started:.0f} s so far")

            if profiler is not None:
                profiler.enable()
            # Without the cyclic collector: the run makes millions of long-lived
            # records and next to no cycles, and its full collections took 38 %
            # of a 10,000-node run's first 12 virtual seconds, more as they grow.
            gc.disable()
            try:
                result = run(sc, progress if size >= 1000 else None)
            finally:
                gc.enable()
            if profiler is not None:
                profiler.disable()
            seconds = time.perf_counter() - started
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            say(f"  done in {seconds:.0f} s, {result.events:,} events")
            results.append(result)
            costs.append((seconds, rss))
    if profiler is not None:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(30)
    print(f"Reproduce: `{command}` (seed {args.seed}; interval 1.5 s, jitter 10 %, maxloops 3)\n")
    if args.reference is not None:
        print(
            f"**A yardstick, not dshd:** best-node answers scored by true loads "
            f"{args.reference:g} s old instead of the reports the nodes hold.\n"
        )
    for title, table in (
        ("Detection after a crash", detection_table(results)),
        ("False alarms of running nodes", false_table(results)),
        ("Traffic per node", traffic_table(results)),
        ("Age of load information", age_table(results)),
        ("Best-node answers", placement_table(results)),
        ("Cost of the simulation (this machine, not reproducible)", cost_table(results, costs)),
    ):
        print(f"#### {title}\n")
        print("\n".join(table) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
