"""``dsh plot --png FILE [--since 10m] [--size WxH] [-H HOST[:PORT]]``.

Reads /api/view and /api/history from the local dshd's HTTP port
(``DSH_HTTP_PORT``, default 8383) and draws the strip charts of its
``[view]`` into one PNG. matplotlib is the optional extra ``dsh[plot]``;
without it, one line and exit 1. A daemon that does not answer, or answers
what is not its API, is one line and exit 1 too. Imported only for
``dsh plot`` (never on dsh's fast path).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import quote

from ... import defaults
from ...errors import EXIT_USAGE, ConfigError
from ..cli import Options
from ..config import config_from, http_address
from ..top.fetch import FetchError, get
from . import data

NEEDS = "dsh plot --png needs matplotlib: pip install 'dsh[plot]'"
EXIT_NO_PLOT = 1  # no PNG: matplotlib missing, no daemon, garbage, an unwritable file
TIMEOUT = 10.0  # seconds for each answer (a day of 100 nodes is a few MB)


class Unanswered(Exception):
    """The daemon did not answer, or not with its API: one line for the user."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dsh plot",
        description="Draw the cluster's strip charts (cstat's: CPU user/sys/idle/wait, disk "
        "read/write, net in/out; a line per node and the cluster's average or sum) from the "
        "local dshd's history. The same charts live: http://HOST:8383/ (dshd's page).",
    )
    p.add_argument("--png", metavar="FILE", help="write the charts to this PNG file")
    p.add_argument("--since", default="10m", metavar="TIME",
                   help="how far back: 90s, 10m, 2h (default %(default)s)")  # fmt: skip
    p.add_argument("--size", default="1200x900", metavar="WxH",
                   help="the PNG's size in pixels (default %(default)s)")  # fmt: skip
    p.add_argument("-H", dest="daemon", metavar="HOST[:PORT]",
                   help="dshd's HTTP port to ask (default: $DSH_DAEMON's host or localhost, "
                   f"port $DSH_HTTP_PORT or {defaults.HTTP_PORT})")  # fmt: skip
    return p


def _get(host: str, port: int, path: str) -> dict[str, object]:
    """A JSON object from dshd's HTTP port, by dsh top's one small HTTP client."""
    try:
        body = get(host, port, path, TIMEOUT)
    except FetchError as exc:
        raise Unanswered(str(exc)) from None
    where = f"dshd at {host}:{port}"
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Unanswered(f"{where} answered {path.split('?')[0]} with what is not JSON") from None
    if not isinstance(value, dict):
        raise Unanswered(f"{where} answered {path.split('?')[0]} with what is not its API")
    return value


def say(text: str) -> None:
    print(f"dsh plot: {text}", file=sys.stderr)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        since = data.seconds(args.since)
        width, height = data.size(args.size)
        config = config_from(Options())
    except (ValueError, ConfigError) as exc:
        say(str(exc))
        return EXIT_USAGE
    if not args.png:
        say("give --png FILE (the live charts are on dshd's page: "
            f"http://{config.daemon_host}:{config.http_port}/)")  # fmt: skip
        return EXIT_USAGE
    if sys.flags.no_site:  # dsh's launcher starts python -S: matplotlib is in site-packages
        import site

        site.main()
    try:
        from .render import render
    except ImportError:
        print(NEEDS, file=sys.stderr)
        return EXIT_NO_PLOT
    host, port = http_address(config, args.daemon)
    try:
        view = _get(host, port, "/api/view")
        try:
            wanted = ",".join(quote(f) for f in data.fields(view))
            interval = data.number(view.get("interval", 1.5), "interval") or 1.5
            step = data.step(since, interval)
            history = _get(host, port, f"/api/history?since={-since:.0f}&step={step:.3f}"
                                       f"&fields={wanted}")  # fmt: skip
            charts = data.prepare(view, history)
            colours = data.as_dict(view.get("colours", {}), "colours")
            order = data.node_order(view, list(data.as_dict(history.get("nodes"), "nodes")))
        except (ValueError, KeyError) as exc:
            raise Unanswered(f"dshd at {host}:{port} answered what is not its API ({exc})"
                             ) from None  # fmt: skip
    except Unanswered as exc:
        say(str(exc))
        return EXIT_NO_PLOT
    nodes = [(n, str(colours.get(n, "#808080"))) for n in order]
    title = f"{len(nodes)} nodes as {view.get('self', host)} saw them, the last {args.since}"
    try:
        render(charts, nodes, Path(args.png), width, height, title, since)
    except OSError as exc:
        say(f"cannot write {args.png}: {exc.strerror or exc}")
        return EXIT_NO_PLOT
    return 0
