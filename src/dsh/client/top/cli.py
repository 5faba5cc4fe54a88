"""``dsh top``: the cluster as the local dshd sees it, live, once, as JSON, or as a log.

dsh's cli.py hands ``dsh top ...`` here (``dsh -- top`` still runs top on a
node); nothing of this package is imported on dsh's fast path.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ... import defaults
from ...errors import EXIT_USAGE, ConfigError
from ..config import config_from, http_address
from .fetch import FetchError, cluster
from .rows import LOG_FORMATS, SORTS, as_record, cluster_row, filter_rows, node_rows, sort_rows

EXIT_NO_DAEMON = 1  # --once / --json: the daemon did not answer, or not with /api/cluster
NOT_A_TTY_WIDTH = 80

EPILOG = f"""\
keys (live view):
  q quit   s sort: name, load, cpu, memory   / filter by name (Enter keeps
  it, Esc clears it)   arrows, PgUp/PgDn, Home/End scroll

environment:
  DSH_DAEMON     its host is the dshd asked (default localhost)
  DSH_HTTP_PORT  that dshd's HTTP port (default {defaults.HTTP_PORT})
  NO_COLOR       set and not empty: no colour (--color overrides it)
  COLUMNS        the width of --once's table (default: the terminal's, or
                 {NOT_A_TTY_WIDTH} when not a terminal)
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dsh top",
        description="Every node of the cluster as the local dshd sees it: state, load, "
        "CPU, memory, disk, network, dsh's jobs; live in the terminal, once, as JSON "
        "or as a log.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-H",
        dest="daemon",
        metavar="HOST[:PORT]",
        help="the dshd to ask and its HTTP port (default $DSH_DAEMON's host, port "
        f"$DSH_HTTP_PORT or {defaults.HTTP_PORT})",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="print one frame and exit")
    mode.add_argument("--json", action="store_true", help="print the same data as JSON")
    mode.add_argument(
        "--log",
        metavar="FILE",
        help="append a line per node per report to FILE (- for standard output) until stopped",
    )
    p.add_argument("--format", choices=LOG_FORMATS, default="csv", help="of --log (default csv)")
    p.add_argument("--sort", choices=SORTS, default="name", help="the order (default name)")
    p.add_argument("--filter", default="", metavar="TEXT", help="only nodes whose name has TEXT")
    p.add_argument("--color", dest="color", action="store_const", const=True, default=None,
                   help="colour even when not on a terminal, or with NO_COLOR")  # fmt: skip
    p.add_argument("--no-color", dest="color", action="store_const", const=False,
                   help="no colour")  # fmt: skip
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="to wait for each answer (default 2)")  # fmt: skip
    return p


def say(text: str) -> None:
    sys.stderr.write(f"dsh: {text}\n")
    sys.stderr.flush()


def terminal_width(environ: dict[str, str] | os._Environ[str]) -> int:
    columns = environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if os.isatty(sys.stdout.fileno()):
            return os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError):
        pass
    return NOT_A_TTY_WIDTH


def wants_color(choice: bool | None, tty: bool, environ: dict[str, str] | os._Environ[str]) -> bool:
    """--color / --no-color, else NO_COLOR (https://no-color.org), else whether a terminal."""
    if choice is not None:
        return choice
    return tty and not environ.get("NO_COLOR")


def as_json(data: dict[str, object], sort: str, filter: str) -> dict[str, object]:
    """What --json prints: the rows the table shows, in its units and order, and the cluster's."""
    everyone = node_rows(data)
    rows = sort_rows(filter_rows(everyone, filter), sort)
    return {
        "self": data.get("self"),
        "time": data.get("time"),
        "interval": data.get("interval"),
        "nodes": [as_record(r) for r in rows],
        "cluster": as_record(cluster_row(everyone)),
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[2:] if argv is None else argv)
    from ..cli import Options

    try:
        config = config_from(Options())
    except ConfigError as exc:
        say(str(exc))
        return EXIT_USAGE
    host, port = http_address(config, args.daemon)
    timeout = config.daemon_timeout if args.timeout is None else max(0.01, args.timeout)

    def fetch() -> dict[str, object]:
        return cluster(host, port, timeout)

    if args.log is not None:
        try:
            from . import log  # csv, datetime, select: only for --log

            fd = log.open_log(args.log)
        except OSError as exc:
            say(f"cannot open {args.log}: {exc.strerror or exc}")
            return EXIT_NO_DAEMON
        return log.run(fetch, fd, args.format, say)
    if args.once or args.json:
        try:
            data = fetch()
        except FetchError as exc:
            say(str(exc))
            return EXIT_NO_DAEMON
        if args.json:
            print(json.dumps(as_json(data, args.sort, args.filter), indent=1))
            return 0
        from .view import render, text

        frame = render(data, terminal_width(os.environ), sort=args.sort, filter=args.filter)
        sys.stdout.write(text(frame, wants_color(args.color, sys.stdout.isatty(), os.environ)))
        return 0
    if not (sys.stdout.isatty() and sys.stdin.isatty()):
        say("dsh top needs a terminal (or --once, --json or --log FILE)")
        return EXIT_USAGE
    from . import screen

    return screen.run(fetch, wants_color(args.color, True, os.environ), args.sort, args.filter)
