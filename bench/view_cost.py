#!/usr/bin/env python3
"""What looking at the cluster costs: `dsh top`, /api/history, the live page; 8 and 100 nodes.

    python3 bench/view_cost.py [--runs 30] [--seconds 30] [--loads 5] [--out FILE]

In one run, side by side (so background load hits all alike), two simulated
clusters, one of 8 nodes (127.0.3.1-8) and one of 100 (127.0.4.1-100). Each
is one real dshd (unsealed, --no-key, no sensors, the default 1.5 s
interval) whose cluster file has all N members; the other N - 1 are a feeder
thread of this script that sends, every interval, a real version-2 state
datagram (core/wire.py encode_state, with a Usage whose figures wander) for
each of them from that member's own address (one UDP socket bound per
address), so the daemon's table, history and /api/cluster are those of a
real N-node cluster. Then:

* ``python3 dsh top --once`` (and ``dsh top --once``, the file run as a
  program: sh starts python3 -S) against each dshd, --runs times, all rows
  interleaved round by round, with ``python3 -c pass`` and ``python3 -S -c
  pass`` as the floor: wall time, median and p90.
* The live view: the real ``dsh top`` (curses) in a real tmux pane (150 x
  110, so that every one of 100 rows is drawn) against each dshd, both at
  once, for --seconds: utime + stime of the process from /proc, as % of one
  core and ms per refresh (refreshes = seconds / the daemon's interval, which
  is how often top asks and redraws).
* /api/history for 100 nodes x 1 h, in process: a core/history.History
  filled with 2,400 ticks (an hour at 1.5 s) of 100 nodes' StatusRows, asked
  through daemon/api.Api's page: the on-loop part (parse, History.window) and
  the worker-thread part (Window.series and json.dumps; gzip at http.py's
  level apart), bytes plain and gzip; for since=-3600 with no step, and with
  the step and fields the live page would use for an hour (page.js:
  step = max(interval, span / 300)), and for the page's default 10 minutes.
  Also over real HTTP from the 100-node dshd (with Accept-Encoding: gzip),
  for what history it has by the end of the run.
* The page's first paint: headless Chromium (tests/support/chromium.py)
  loading each dshd's ``/``: ``data-first-paint-ms`` (page.js sets it to
  performance.now() after the first charts and table are drawn; under
  --virtual-time-budget that is Chromium's virtual clock, in which waiting
  for the network takes no time), and a wall-clock figure: Chromium with
  --dump-dom on the page minus the same on about:blank (its own start-up),
  alternating, with a budget (1 s) shorter than the page's refresh so that
  one load is measured. The simulated dshd has only minutes of history, so
  the page is also loaded from a stand-in server of this script: the page's
  files and the 100-node dshd's /api/view and /api/cluster, but /api/history
  from the hour-long in-process History above, through Api as dshd serves
  it; once as the page opens (10 minutes) and once with ``?since=3600``.

Prints a Markdown section; --out also writes it to FILE. Every process
started here is stopped on exit.
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import http.client
import io
import json
import os
import pstats
import random
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
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import cast

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "src")]

from support import chromium  # noqa: E402
from support.dshd import Cluster, Node  # noqa: E402
from support.paths import DSH, PY  # noqa: E402
from support.tmux import Tmux  # noqa: E402
from support.waiting import wait_for  # noqa: E402
from testbed import cpu_seconds, percentile  # noqa: E402

from dsh.core.gossip import GossipNode, StatusRow  # noqa: E402
from dsh.core.history import History  # noqa: E402
from dsh.core.wire import State, Usage, decode, encode_state  # noqa: E402
from dsh.daemon.api import Api  # noqa: E402
from dsh.daemon.config import DaemonConfig  # noqa: E402
from dsh.daemon.http import GZIP_LEVEL, Request  # noqa: E402
from dsh.daemon.view import read_files  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
SIZES = (8, 100)
PREFIX = {8: "127.0.3.", 100: "127.0.4."}
MAX_POINTS = 300  # page.js: a chart's points, from which its step follows
PAGE_SINCE = 600.0  # daemon/view.py SINCE: what the page shows by default
TARGET_ONCE_MS = 150.0
TARGET_LIVE_PCT = 2.0
TARGET_PAINT_MS = 1000.0
GiB = 1 << 30


def met(ok: bool) -> str:
    return "met" if ok else "**missed**"


# -- the simulated cluster -------------------------------------------------------------


class Fake:
    """One simulated member: its figures wander a little every report."""

    def __init__(self, name: str, rng: random.Random) -> None:
        self.name = name
        self.rng = rng
        self.ncpu = rng.choice((4, 8, 16, 32, 64))
        self.load = rng.uniform(0, self.ncpu)
        self.mem_total = rng.choice((16, 32, 64, 128)) * GiB
        self.mem_avail = int(self.mem_total * rng.uniform(0.2, 0.9))
        self.incarnation = int(time.time())
        self.seq = 0

    def datagram(self) -> bytes:
        r = self.rng
        self.seq += 1
        self.load = max(0.0, self.load + r.uniform(-0.5, 0.5))
        self.mem_avail = max(0, min(self.mem_total, self.mem_avail + r.randint(-GiB, GiB) // 8))
        busy = min(1.0, self.load / self.ncpu)
        user = busy * r.uniform(0.6, 0.9)
        system = busy - user
        wait = r.uniform(0, 0.05) * (1 - busy)
        usage = Usage(cpu_user=user, cpu_system=system, cpu_idle=max(0.0, 1 - busy - wait),
                      cpu_iowait=wait, disk_read=r.uniform(0, 5e7), disk_write=r.uniform(0, 5e7),
                      net_receive=r.uniform(0, 1e8), net_transmit=r.uniform(0, 1e8),
                      swap_used=r.randint(0, GiB), swap_total=4 * GiB)  # fmt: skip
        state = State(name=self.name, incarnation=self.incarnation, seq=self.seq,
                      sent_ms=int(time.time() * 1000), ncpu=self.ncpu, load=self.load,
                      load1=self.load, mem_avail=self.mem_avail, mem_total=self.mem_total,
                      usage=usage)  # fmt: skip
        return encode_state(state, 2)


class Feeder:
    """N - 1 members' datagrams to the real dshd, each from its own address, every interval."""

    def __init__(self, names: list[str], target: tuple[str, int], interval: float) -> None:
        rng = random.Random(len(names))
        self.fakes = [Fake(n, rng) for n in names]
        self.target = target
        self.interval = interval
        self.socks = []
        for name in names:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((name, target[1]))  # where the dshd sends its own datagrams to them
            s.setblocking(False)
            self.socks.append(s)
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for fake, s in zip(self.fakes, self.socks, strict=True):
                try:
                    s.sendto(fake.datagram(), self.target)
                    self.sent += 1
                    while s.recv(2048):  # what the dshd sent this member: read, dropped
                        pass
                except BlockingIOError:
                    pass
                except OSError:
                    return
            self._stop.wait(self.interval)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for s in self.socks:
            s.close()


@dataclass
class Sim:
    n: int
    cluster: Cluster
    node: Node
    feeder: Feeder

    @property
    def host(self) -> str:
        return self.node.name

    @property
    def http_port(self) -> int:
        return self.cluster.http_port

    def get(self, path: str, gzipped: bool = False) -> tuple[float, bytes, bytes]:
        """(ms, body as sent, body plain) of one GET on a fresh connection, as a browser's first."""
        conn = http.client.HTTPConnection(self.host, self.http_port, timeout=30)
        try:
            started = time.perf_counter()
            conn.request("GET", path, headers={"Accept-Encoding": "gzip"} if gzipped else {})
            answer = conn.getresponse()
            body = answer.read()
            ms = (time.perf_counter() - started) * 1000
        finally:
            conn.close()
        if answer.status != 200:
            raise SystemExit(f"view_cost: GET {path}: {answer.status}")
        plain = gzip.decompress(body) if answer.getheader("Content-Encoding") == "gzip" else body
        return ms, body, plain

    def api(self, path: str) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.get(path)[2])
        return data

    def all_up(self) -> bool:
        nodes = cast(list[dict[str, object]], self.api("/api/cluster")["nodes"])
        return len(nodes) == self.n and all(n["state"] == "up" for n in nodes)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DSH_")}
        env.update(DSH_DAEMON=self.host, DSH_HTTP_PORT=str(self.http_port))
        env.pop("COLUMNS", None)
        return env


@contextmanager
def simulated(directory: Path, n: int, interval: float) -> Iterator[Sim]:
    directory.mkdir()
    names = [f"{PREFIX[n]}{i}" for i in range(1, n + 1)]
    cluster = Cluster(directory, names, interval=interval, maxloops=DaemonConfig().maxloops)
    (directory / "none.conf").write_text("")
    node = cluster.nodes[names[0]]
    node.verbose = False
    node.extra_args += ["--config", str(directory / "none.conf")]  # no sensors, no /etc/dsh
    feeder = None
    try:
        cluster.start([names[0]])
        feeder = Feeder(names[1:], (names[0], cluster.port), interval)
        sim = Sim(n, cluster, node, feeder)
        wait_for(sim.all_up, 30, f"the {n}-node cluster to be up")
        yield sim
    finally:
        if feeder is not None:
            feeder.close()
        node.stop()


# -- dsh top --once --------------------------------------------------------------------


@dataclass
class Timed:
    label: str
    argv: list[str]
    env: dict[str, str] | None = None
    check: Callable[[str], None] | None = None
    ms: list[float] = field(default_factory=list)

    def once(self) -> None:
        started = time.perf_counter()
        done = subprocess.run(self.argv, env=self.env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True)  # fmt: skip
        self.ms.append((time.perf_counter() - started) * 1000)
        if done.returncode != 0:
            raise SystemExit(f"view_cost: {self.label}: exit {done.returncode}: {done.stderr}")
        if self.check is not None:
            self.check(done.stdout)


def rows_check(sim: Sim) -> Callable[[str], None]:
    def check(out: str) -> None:
        rows = sum(1 for line in out.splitlines() if PREFIX[sim.n] in line)
        if rows < sim.n:
            raise SystemExit(f"view_cost: dsh top --once showed {rows} of {sim.n} nodes")

    return check


def time_once(sims: dict[int, Sim], runs: int) -> list[Timed]:
    timed = [Timed("`python3 -c pass`", [PY, "-c", "pass"]),
             Timed("`python3 -S -c pass`", [PY, "-S", "-c", "pass"])]  # fmt: skip
    for n, sim in sims.items():
        env = {**sim.env(), "COLUMNS": "150"}
        timed.append(Timed(f"`python3 dsh top --once`, {n} nodes", [PY, DSH, "top", "--once"],
                           env, rows_check(sim)))  # fmt: skip
        timed.append(Timed(f"`dsh top --once` (sh, python3 -S), {n} nodes",
                           [DSH, "top", "--once"], {**env, "DSH_PYTHON": PY},
                           rows_check(sim)))  # fmt: skip
    for t in timed:  # warm-up: .pyc files, page cache
        t.once()
        t.ms.clear()
    for i in range(runs):
        for t in timed if i % 2 == 0 else timed[::-1]:
            t.once()
    return timed


# -- the live view ----------------------------------------------------------------------


@dataclass
class Live:
    n: int
    tmux: Tmux
    pid: int = 0
    cpu: float = 0.0
    seconds: float = 0.0
    interval: float = 1.5
    screen: str = ""

    @property
    def refreshes(self) -> float:
        return self.seconds / self.interval


def live_view(sims: dict[int, Sim], seconds: float, stack: ExitStack) -> list[Live]:
    lives = []
    for n, sim in sims.items():
        terminal = Tmux(150, 110)
        stack.callback(terminal.kill)
        env = f"DSH_DAEMON={sim.host} DSH_HTTP_PORT={sim.http_port}"
        terminal.start(f"{env} exec {PY} {DSH} top")
        pid = int(terminal.tmux("display-message", "-p", "-t", "t", "#{pane_pid}").strip())
        live = Live(n, terminal, pid, interval=sim.cluster.interval)
        last = f"{PREFIX[n]}{n} "

        def drawn(t: Tmux = terminal, last: str = last) -> bool:
            return last in t.screen()

        wait_for(drawn, 20, f"dsh top to draw {n} nodes")
        lives.append(live)
    time.sleep(3)  # past the start-up
    cpu0 = [cpu_seconds(live.pid) for live in lives]
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    for live, c0 in zip(lives, cpu0, strict=True):
        live.cpu = cpu_seconds(live.pid) - c0
        live.seconds = elapsed
        live.screen = live.tmux.screen()
        live.tmux.keys("q")
    return lives


# -- /api/history in process ------------------------------------------------------------


def fill_history(n: int, ticks: int, interval: float, end: float) -> History:
    history = History(interval)
    rng = random.Random(7)
    fakes = [Fake(f"{PREFIX[n]}{i}", rng) for i in range(1, n + 1)]
    jobs = {f.name: 0 for f in fakes}
    for k in range(ticks):
        t = end - (ticks - k) * interval
        rows = []
        for f in fakes:
            s = decode(f.datagram())
            jobs[f.name] += rng.random() < 0.05
            rows.append(StatusRow(name=f.name, state="up", load=s.load, ncpu=s.ncpu,
                                  mem_avail=s.mem_avail, loadscale=1.0, memscale=1.0,
                                  score=s.load / s.ncpu, age=0.5, load1=s.load1, extra=0.0,
                                  is_self=f is fakes[0], mem_total=s.mem_total,
                                  usage=s.usage))  # fmt: skip
        history.record(t, rows, jobs)
    return history


@dataclass
class Asked:
    label: str
    query: str
    loop_ms: list[float] = field(default_factory=list)
    worker_ms: list[float] = field(default_factory=list)
    gzip_ms: list[float] = field(default_factory=list)
    points: int = 0
    plain: int = 0
    gzipped: int = 0


def history_in_process(n: int, page_fields: list[str], repeat: int) -> tuple[list[Asked], str, Api]:
    interval = DaemonConfig().interval
    ticks = round(3600 / interval)
    end = time.time()
    started = time.perf_counter()
    history = fill_history(n, ticks, interval, end)
    fill_s = time.perf_counter() - started
    node = cast(GossipNode, SimpleNamespace(name=f"{PREFIX[n]}1"))
    api = Api(node, history, {}, interval, lambda: end, time.monotonic)
    hour_step = round(max(interval, 3600 / MAX_POINTS), 3)
    page_step = round(max(interval, PAGE_SINCE / MAX_POINTS), 3)
    fields = ",".join(page_fields)
    asked = [Asked("since=-3600, no step, every field", "since=-3600"),
             Asked(f"since=-3600, step={hour_step:g} (the page's for 1 h), its fields",
                   f"since=-3600&step={hour_step:g}&fields={fields}"),
             Asked(f"since=-600, step={page_step:g} (the page's default), its fields",
                   f"since=-600&step={page_step:g}&fields={fields}")]  # fmt: skip
    for a in asked:
        request = Request("GET", "/api/history", "HTTP/1.1", {}, a.query)
        for _ in range(repeat):
            t0 = time.perf_counter()
            later = api.history_page(request)
            t1 = time.perf_counter()
            body, _ = later()
            t2 = time.perf_counter()
            packed = gzip.compress(body, GZIP_LEVEL, mtime=0)
            t3 = time.perf_counter()
            a.loop_ms.append((t1 - t0) * 1000)
            a.worker_ms.append((t2 - t1) * 1000)
            a.gzip_ms.append((t3 - t2) * 1000)
        a.plain, a.gzipped = len(body), len(packed)
        a.points = len(json.loads(body)["times"])
    # Where the worker's time goes, for the biggest answer.
    profile = cProfile.Profile()
    later = api.history_page(Request("GET", "/api/history", "HTTP/1.1", {}, asked[0].query))
    profile.runcall(later)
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(6)
    top = [line for line in out.getvalue().splitlines() if re.match(r"\s+\d", line)][:6]
    head = (f"History of {n} nodes x {ticks} ticks ({history.nbytes / 1e6:.1f} MB of points), "
            f"filled in {fill_s:.1f} s.")  # fmt: skip
    return asked, head + "\n\n" + "\n".join(top), api


@dataclass
class OverHttp:
    label: str
    path: str
    ms: list[float] = field(default_factory=list)
    points: int = 0
    sent: int = 0
    plain: int = 0


def history_over_http(sim: Sim, page_fields: list[str], repeat: int) -> list[OverHttp]:
    interval = sim.cluster.interval
    step = round(max(interval, 3600 / MAX_POINTS), 3)
    fields = ",".join(page_fields)
    asked = [OverHttp("since=-3600, no step, every field", "/api/history?since=-3600"),
             OverHttp(f"since=-3600, step={step:g}, the page's fields",
                      f"/api/history?since=-3600&step={step:g}&fields={fields}")]  # fmt: skip
    for a in asked:
        for _ in range(repeat):
            ms, sent, plain = sim.get(a.path, gzipped=True)
            a.ms.append(ms)
        a.sent, a.plain = len(sent), len(plain)
        a.points = len(json.loads(plain)["times"])
    return asked


# -- the page -------------------------------------------------------------------------


_PAINT = re.compile(r'data-first-paint-ms="(\d+)"')


@dataclass
class Painted:
    label: str
    url: str
    virtual_ms: list[float] = field(default_factory=list)
    wall_ms: list[float] = field(default_factory=list)  # --dump-dom of the page
    blank_ms: list[float] = field(default_factory=list)  # the same of about:blank


def page_paint(pages: list[Painted], loads: int, scratch: Path) -> None:
    blank: list[float] = []
    chromium.dump_dom("about:blank", scratch / "warm", budget_ms=500)  # warm the page cache
    for i in range(loads):
        for k, p in enumerate(pages):
            dom = chromium.dump_dom(p.url, scratch / f"v{k}-{i}", budget_ms=3000)
            m = _PAINT.search(dom)
            if m is None:
                raise SystemExit(f"view_cost: {p.label}: no paint in 3 s virtual")
            p.virtual_ms.append(float(m[1]))
            started = time.perf_counter()
            dom = chromium.dump_dom(p.url, scratch / f"w{k}-{i}", budget_ms=1000)
            p.wall_ms.append((time.perf_counter() - started) * 1000)
            if _PAINT.search(dom) is None:
                raise SystemExit(f"view_cost: {p.label}: no paint in 1 s virtual")
            started = time.perf_counter()
            chromium.dump_dom("about:blank", scratch / f"b{k}-{i}", budget_ms=1000)
            blank.append((time.perf_counter() - started) * 1000)
    for p in pages:
        p.blank_ms = blank


@contextmanager
def stand_in(sim: Sim, api: Api, served: list[float]) -> Iterator[str]:
    """The page's own files and /api/view and /api/cluster of the 100-node dshd, but
    /api/history out of the hour-long in-process History, through Api as dshd
    serves it (gzip when asked): what the page meets on a dshd up for an hour."""
    files = read_files()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            if path in files:
                body, kind = files[path]
            elif path == "/api/history":
                started = time.perf_counter()
                request = Request("GET", path, "HTTP/1.1", {}, query)
                body, kind = api.history_page(request)()
                if query.startswith("since=-"):  # a first load's, not an update's
                    served.append((time.perf_counter() - started) * 1000)
            else:
                _, _, body = sim.get(self.path)
                kind = "application/json"
            gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
            if gzipped:
                started = time.perf_counter()
                body = gzip.compress(body, GZIP_LEVEL, mtime=0)
                if path == "/api/history" and query.startswith("since=-"):
                    served[-1] += (time.perf_counter() - started) * 1000
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            if gzipped:
                self.send_header("Content-Encoding", "gzip")
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- the run ---------------------------------------------------------------------------


def commit() -> str:
    done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout.strip() or "?"


def measure(runs: int, seconds: float, loads: int, scratch: Path) -> str:
    if chromium.CHROMIUM is None:
        raise SystemExit("view_cost: chromium is not installed (contrib/install-deps)")
    interval = DaemonConfig().interval
    load0 = os.getloadavg()[0]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with ExitStack() as stack:
        sims = {n: stack.enter_context(simulated(scratch / f"c{n}", n, interval)) for n in SIZES}
        view = sims[100].api("/api/view")
        page_fields = sorted({f for c in cast(list[dict[str, list[str]]], view["charts"])
                              for f in c["fields"]})  # fmt: skip
        timed = time_once(sims, runs)
        lives = live_view(sims, seconds, stack)
        asked, profile, api = history_in_process(100, page_fields, 10)
        served: list[float] = []
        url = stack.enter_context(stand_in(sims[100], api, served))
        painted = [
            Painted(
                f"{n} nodes, the real dshd ({n} nodes' history so far)",
                f"http://{sim.host}:{sim.http_port}/",
            )
            for n, sim in sims.items()
        ]
        painted += [
            Painted("100 nodes, an hour of history (stand-in), the page's 10 min", url),
            Painted("100 nodes, an hour of history (stand-in), `?since=3600`", url + "?since=3600"),
        ]
        page_paint(painted, loads, scratch)
        over_http = history_over_http(sims[100], page_fields, 10)
        sent = {n: sim.feeder.sent for n, sim in sims.items()}
        dshd_cpu = {n: cpu_seconds(sim.node.pid) for n, sim in sims.items()}
    load1 = os.getloadavg()[0]

    w = []
    w.append(f"Measured {when} at commit {commit()}, nproc {os.cpu_count()}, Python "
             f"{sys.version.split()[0]}, 1-minute load average {load0:.2f} at the start, "
             f"{load1:.2f} at the end. Each cluster: one real dshd at the default "
             f"{interval:g} s interval, unsealed, no sensors; the other members a feeder "
             f"thread of version-2 datagrams from their own addresses ({sent[8]} and "
             f"{sent[100]} sent; the dshd used {dshd_cpu[8]:.1f} and {dshd_cpu[100]:.1f} "
             "CPU-s over the whole run).\n")  # fmt: skip
    w.append(f"`dsh top --once`, wall time in ms, {runs} runs each, interleaved:\n")
    w.append("| command | median | p90 | target |")
    w.append("|---|---:|---:|---|")
    for t in timed:
        med = statistics.median(t.ms)
        target = "" if "dsh" not in t.label else (
            f"< {TARGET_ONCE_MS:g} ms: {met(med < TARGET_ONCE_MS)}")  # fmt: skip
        w.append(f"| {t.label} | {med:.1f} | {percentile(t.ms, 0.9):.1f} | {target} |")
    w.append("")
    w.append(
        f"The live view: `python3 dsh top` (curses) in a tmux pane of 150 x 110, both "
        f"at once, for {lives[0].seconds:.0f} s after 3 s of start-up; CPU = utime + "
        f"stime from /proc (ticks of {1000 / TICK:g} ms); a refresh = one interval.\n"
    )
    w.append("| nodes | CPU s | % of one core | refreshes | ms per refresh | target |")
    w.append("|---:|---:|---:|---:|---:|---|")
    for live in lives:
        share = 100 * live.cpu / live.seconds
        w.append(
            f"| {live.n} | {live.cpu:.2f} | {share:.2f} | {live.refreshes:.0f} | "
            f"{1000 * live.cpu / live.refreshes:.1f} | < {TARGET_LIVE_PCT:g} %: "
            f"{met(share < TARGET_LIVE_PCT) if live.n == 100 else '(at 100 nodes)'} |"
        )
    w.append("")
    w.append(
        "/api/history for 100 nodes x 1 h, in process (daemon/api.Api's page on a "
        "core/history.History), ms, median of 10; gzip at http.py's level "
        f"{GZIP_LEVEL}, done in the worker when the client asks for it:\n"
    )
    w.append("| query | points | on the loop | worker: series + JSON | gzip | plain bytes | "
             "gzip bytes |")  # fmt: skip
    w.append("|---|---:|---:|---:|---:|---:|---:|")
    for a in asked:
        w.append(f"| {a.label} | {a.points} | {statistics.median(a.loop_ms):.1f} | "
                 f"{statistics.median(a.worker_ms):.1f} | {statistics.median(a.gzip_ms):.1f} | "
                 f"{a.plain} | {a.gzipped} |")  # fmt: skip
    w.append("")
    w.append("Where the worker's time goes (cProfile of the first row, by own time):\n")
    w.append("```\n" + profile + "\n```\n")
    w.append("The same over real HTTP from the simulated 100-node dshd, at the end of the run "
             "(what history it had), a fresh connection each, `Accept-Encoding: gzip`, "
             "10 each:\n")  # fmt: skip
    w.append("| query | points | median ms | max ms | bytes sent | plain bytes |")
    w.append("|---|---:|---:|---:|---:|---:|")
    for h in over_http:
        w.append(f"| {h.label} | {h.points} | {statistics.median(h.ms):.1f} | {max(h.ms):.1f} "
                 f"| {h.sent} | {h.plain} |")  # fmt: skip
    w.append("")
    w.append(
        f"The page's first paint, headless Chromium on the dshd's `/`, {loads} loads "
        "each. Virtual: `data-first-paint-ms` (performance.now() after the first charts "
        "and table, with --virtual-time-budget=3000: Chromium's virtual clock, not wall "
        "time). Wall: `chromium --dump-dom` of the page minus the same of about:blank "
        "(median of its own runs), both with a 1 s virtual budget, medians in ms:\n"
    )
    w.append("| page | first paint, virtual | page, wall | about:blank, wall | "
             "page less blank | target |")  # fmt: skip
    w.append("|---|---:|---:|---:|---:|---|")
    for p in painted:
        extra = statistics.median(p.wall_ms) - statistics.median(p.blank_ms)
        w.append(
            f"| {p.label} | {statistics.median(p.virtual_ms):.0f} | "
            f"{statistics.median(p.wall_ms):.0f} | {statistics.median(p.blank_ms):.0f} | "
            f"{extra:.0f} | < {TARGET_PAINT_MS:g} ms: "
            f"{met(max(extra, statistics.median(p.virtual_ms)) < TARGET_PAINT_MS)} |"
        )
    w.append("")
    if served:
        w.append(
            f"Of the stand-in's wall time, making and gzipping a first load's /api/history "
            f"(the page's 10 min or 1 h, {len(served)} loads): median "
            f"{statistics.median(served):.0f} ms, max {max(served):.0f} ms; the rest is "
            "Chromium's (parse, the SVG paths, the table) and the other requests.\n"
        )
    w.append("The 100-node live view's last screen, its first lines:\n")
    shown = "\n".join(line.rstrip() for line in lives[1].screen.splitlines()[:6])
    w.append("```\n" + shown + "\n```\n")
    return "\n".join(w)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=30, help="of each `dsh top --once` row")
    p.add_argument("--seconds", type=float, default=30.0, help="of the live view")
    p.add_argument("--loads", type=int, default=5, help="of the page in Chromium, each way")
    p.add_argument("--out", type=Path, help="also write the Markdown section here")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    scratch = Path(tempfile.mkdtemp(prefix="dsh-view-cost-"))
    try:
        text = measure(args.runs, args.seconds, args.loads, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    sys.stdout.write(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
