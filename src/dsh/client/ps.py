"""``dsh ps``: one process list across the cluster, from every live node's dshd.

dsh's cli.py hands ``dsh ps ...`` here (``dsh -- ps`` still runs ps on a
node). The local dshd's /api/cluster says which nodes are up; each of those
nodes' dshd is asked for ``/jobs?format=json`` in parallel (at most FAN_OUT
at once, each within the timeout); the answers are merged and sorted, the
node first on each line. Live nodes are asked (up, drained and suspect: a
suspect one is most likely fine); a node that is down or left, or does not
answer, is named once on stderr and skipped. What each node shows is its dshd's ``--jobs``
policy: by default only the processes dsh placed there.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

from .. import defaults
from ..core.status import LIVE, STATES
from ..errors import EXIT_USAGE, ConfigError
from .config import config_from, http_address
from .top.fetch import FetchError, cluster, get

EXIT_NO_DAEMON = 1  # the local dshd did not answer, or no node answered
FAN_OUT = 32  # nodes asked at once
SORTS = ("cpu", "mem", "time")
DEFAULT_TIMEOUT = 2.0  # seconds per node


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dsh ps",
        description="The processes on every live node of the cluster (as each node's dshd "
        "--jobs policy allows: by default those dsh placed there), merged, the node first.",
        epilog=f"environment: DSH_DAEMON's host is the dshd asked which nodes are up; "
        f"DSH_HTTP_PORT is every dshd's HTTP port (default {defaults.HTTP_PORT}).",
    )
    who = p.add_mutually_exclusive_group()
    who.add_argument("-u", dest="user", metavar="USER", help="USER's processes (default yours)")
    who.add_argument("--all", action="store_true", help="every user's processes")
    p.add_argument("-w", dest="nodes", metavar="NODES",
                   help="only these nodes: a node set as pdsh writes it (node[01-16,20], "
                   "@up, @drained)")  # fmt: skip
    p.add_argument("-x", dest="exclude", metavar="NODES", help="but not these nodes")
    p.add_argument("--sort", choices=SORTS, default="cpu",
                   help="busiest, largest or oldest first (default cpu)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="the merged list as JSON")
    p.add_argument(
        "-H",
        dest="daemon",
        metavar="HOST[:PORT]",
        help="the dshd to ask which nodes are up (default $DSH_DAEMON's host)",
    )
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help="to wait for each node (default %(default)s)")  # fmt: skip
    return p


def _me() -> str:
    """The caller's user name, from the uid (not $USER, which anyone can set)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def say(text: str) -> None:
    sys.stderr.write(f"dsh ps: {text}\n")
    sys.stderr.flush()


def live_nodes(
    data: dict[str, object], wanted: list[str] | None
) -> tuple[list[str], list[str], list[str]]:
    """(nodes to ask, nodes down, nodes left) of an /api/cluster answer, only
    ``wanted`` if given. A state this release does not know counts as down."""
    up: list[str] = []
    down: list[str] = []
    left: list[str] = []
    names: list[str] = []
    nodes = data.get("nodes")
    for node in nodes if isinstance(nodes, list) else []:
        if isinstance(node, dict) and isinstance(node.get("name"), str):
            names.append(node["name"])
            state = node.get("state")
            (up if state in LIVE else left if state == "left" else down).append(node["name"])
    if wanted is not None:
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise ValueError(f"not in the cluster: {', '.join(unknown)}")
        up, down, left = ([n for n in group if n in wanted] for group in (up, down, left))
    return up, down, left


def wanted_nodes(data: dict[str, object], nodes: str | None,
                 exclude: str | None) -> list[str] | None:  # fmt: skip
    """-w and -x as node sets (core/nodeset.py), with @all and a group per
    state (@up, @drained, @suspect, @down, @left) from the /api/cluster
    answer; None: every node."""
    if nodes is None and exclude is None:
        return None
    from ..core.nodeset import expand

    rows = data.get("nodes")
    states = {r["name"]: str(r.get("state")) for r in rows if isinstance(r, dict)
              and isinstance(r.get("name"), str)} if isinstance(rows, list) else {}  # fmt: skip
    groups = {"all": list(states)}
    for state in STATES:
        groups[state] = [n for n, s in states.items() if s == state]
    chosen = expand(nodes, groups) if nodes is not None else list(states)
    excluded = set(expand(exclude, groups)) if exclude is not None else set()
    return [n for n in chosen if n not in excluded]


def ask(node: str, port: int, target: str, timeout: float) -> list[dict[str, object]]:
    """A node's processes; FetchError if it does not answer with /jobs's JSON."""
    body = get(node, port, target, timeout)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise FetchError(f"dshd on {node} answered something not JSON") from None
    procs = data.get("processes") if isinstance(data, dict) else None
    if not isinstance(procs, list):
        raise FetchError(f"dshd on {node} answered JSON without processes")
    return [{**p, "node": node} for p in procs if isinstance(p, dict)]  # the node is ours


def merged(answers: list[list[dict[str, object]]], sort: str) -> list[dict[str, object]]:
    rows = [row for answer in answers for row in answer]
    key = {"cpu": "cpu", "mem": "rss", "time": "elapsed"}[sort]

    def order(row: dict[str, object]) -> tuple[float, str, int]:
        value = row.get(key)
        pid = row.get("pid")
        return (-float(value) if isinstance(value, (int, float)) else 0.0, str(row["node"]),
                pid if isinstance(pid, int) else 0)  # fmt: skip

    return sorted(rows, key=order)


def table(rows: list[dict[str, object]]) -> str:
    from ..core.procs import duration, kib

    width = max([4, *(len(str(r["node"])) for r in rows)])
    lines = [f"{'NODE':<{width}} {'PID':>7} {'USER':<10} S {'%CPU':>5} {'RSS':>8} "
             f"{'ELAPSED':>11} COMMAND"]  # fmt: skip
    for r in rows:
        cpu, rss, age = r.get("cpu"), r.get("rss"), r.get("elapsed")
        lines.append(
            f"{r['node']!s:<{width}} {r.get('pid')!s:>7} {str(r.get('user'))[:10]:<10} "
            f"{r.get('state')!s:1} {float(cpu) if isinstance(cpu, (int, float)) else 0:>5.1f} "
            f"{kib(rss) if isinstance(rss, int) else '-':>8} "
            f"{duration(age) if isinstance(age, (int, float)) else '-':>11} {r.get('command')}"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C: what came is not a list; no traceback
        return 128 + signal.SIGINT


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[2:] if argv is None else argv)
    from .cli import Options

    try:
        config = config_from(Options())
    except ConfigError as exc:
        say(str(exc))
        return EXIT_USAGE
    host, port = http_address(config, args.daemon)
    timeout = max(0.01, args.timeout)
    try:
        data = cluster(host, port, timeout)
    except FetchError as exc:
        say(str(exc))
        return EXIT_NO_DAEMON
    try:
        up, down, left = live_nodes(data, wanted_nodes(data, args.nodes, args.exclude))
    except (ValueError, ConfigError) as exc:  # (a NodeSetError is a ConfigError)
        say(str(exc))
        return EXIT_USAGE
    user = None if args.all else (args.user or _me())
    target = "/jobs?format=json" + ("" if user is None else f"&user={quote(user)}")
    answers: list[list[dict[str, object]]] = []
    failed: list[str] = []
    if up:
        with ThreadPoolExecutor(min(FAN_OUT, len(up))) as pool:
            futures = {n: pool.submit(ask, n, config.http_port, target, timeout) for n in up}
            for node, future in futures.items():
                try:
                    answers.append(future.result())
                except FetchError as exc:
                    failed.append(node)
                    say(str(exc))
    if down:
        say(f"skipped, down: {', '.join(down)}")
    if left:
        say(f"skipped, left: {', '.join(left)}")
    if args.json:
        print(json.dumps({"user": user, "down": down, "left": left, "failed": failed,
                          "processes": merged(answers, args.sort)}, indent=1))  # fmt: skip
    else:
        sys.stdout.write(table(merged(answers, args.sort)))
    # README: 1 when no node answered (all failed, or none was up to ask)
    return EXIT_NO_DAEMON if len(failed) == len(up) and (up or down or left) else 0
