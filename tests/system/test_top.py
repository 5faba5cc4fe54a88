"""``dsh top`` against a real 3-node loopback cluster: live in a real terminal
(tmux), ``--once``, ``--json``, and the log mode stopped by SIGTERM."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.dshd import Cluster, ClusterFactory
from support.paths import DSH, PY
from support.tmux import Tmux
from support.waiting import wait_for

NODES = ["127.0.0.61", "127.0.0.62 2.0", "127.0.0.63 1 1 drain"]
A, B, C = (line.split()[0] for line in NODES)
SGR = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def cluster(make_cluster: ClusterFactory) -> Cluster:
    cluster = make_cluster(NODES, interval=0.2)
    cluster.start()
    wait_for(cluster.all_up, 10, "the nodes to see each other")
    return cluster


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    terminal = Tmux(120, 30)
    try:
        yield terminal
    finally:
        terminal.kill()


def env_for(cluster: Cluster) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSH_")}
    env.pop("NO_COLOR", None)
    env.pop("COLUMNS", None)
    env.update(DSH_DAEMON=A, DSH_HTTP_PORT=str(cluster.http_port))
    return env


def api(cluster: Cluster) -> dict[str, object]:
    with urllib.request.urlopen(f"http://{A}:{cluster.http_port}/api/cluster", timeout=5) as r:
        data: dict[str, object] = json.load(r)
    return data


def row_cells(screen: str) -> dict[str, list[str]]:
    """The table's rows by their first cell (node name or 'cluster')."""
    rows = {}
    for line in screen.splitlines():
        cells = line.replace("|", " ").split()
        if cells and (cells[0].startswith("127.0.0.") or cells[0] == "cluster"):
            rows[cells[0]] = cells
    return rows


def header(screen: str) -> list[str]:
    line = next(x for x in screen.splitlines() if x.startswith("node "))
    return line.replace("|", " ").split()


def column(screen: str, name: str, title: str) -> str:
    return row_cells(screen)[name][header(screen).index(title)]


def until(tmux: Tmux, test: Callable[[str], object], what: str, timeout: float = 5) -> str:
    """The screen once ``test`` holds for it."""

    def check() -> str | None:
        screen = tmux.screen()
        return screen if test(screen) else None

    screen = wait_for(check, timeout, what)
    assert screen is not None
    return screen


def test_the_live_view_in_a_real_terminal(cluster: Cluster, tmux: Tmux) -> None:
    env = " ".join(f"{k}={v}" for k, v in env_for(cluster).items() if k.startswith("DSH_"))
    tmux.start(f"env {env} {PY} {DSH} top; echo EXIT=$?; sleep 60")

    def every_row(screen: str) -> bool:
        # Every node's usage, too: a node heard only in brief datagrams (probes,
        # their answers) so far shows '-' until its next full report.
        if not {A, B, C, "cluster"} <= row_cells(screen).keys():
            return False
        return all(column(screen, name, "usr").isdigit() for name in (A, B, C))

    screen = until(tmux, every_row, "dsh top to show three nodes' usage and the cluster row", 10)
    assert "3 nodes, 2 up, 1 drained" in screen
    assert row_cells(screen)[C][1] == "drain"
    assert all(len(line) <= 120 for line in screen.splitlines())

    # The cluster row: CPUs, memory and jobs as /api/cluster has them (summed),
    # percentages the mean of the rows above it.
    nodes = api(cluster)["nodes"]
    assert isinstance(nodes, list)
    assert column(screen, "cluster", "cpus") == str(sum(n["cpus"] for n in nodes))
    assert column(screen, "cluster", "all") == str(sum(n["jobs"] for n in nodes))
    assert column(screen, "cluster", "state") == "3/3"
    for title in ("usr", "sys", "idl", "wai"):
        shown = [int(column(screen, name, title)) for name in (A, B, C)]
        assert abs(int(column(screen, "cluster", title)) - sum(shown) / 3) <= 1, title

    # s: load, cpu, memory, name
    def sorted_by(key: str) -> str:
        return until(tmux, lambda s: f"sort {key}" in s, key)

    tmux.keys("s")
    screen = sorted_by("load")
    loads = [float(cells[2]) for name, cells in row_cells(screen).items() if name != "cluster"]
    assert loads == sorted(loads, reverse=True)
    tmux.keys("s")
    screen = sorted_by("cpu")
    idle = [int(cells[header(screen).index("idl")])
            for name, cells in row_cells(screen).items() if name != "cluster"]  # fmt: skip
    assert idle == sorted(idle)
    tmux.keys("s")
    sorted_by("memory")
    tmux.keys("s")
    screen = sorted_by("name")
    assert [n for n in row_cells(screen) if n != "cluster"] == [A, B, C]

    # / filters by name; the node it shows is killed: dim, its age growing.
    tmux.keys("/", B[-2:], "Enter")
    screen = until(tmux, lambda s: "(1 of 3)" in s, "the filter")
    assert list(row_cells(screen)) == [B, "cluster"]
    cluster.nodes[B].stop(signal.SIGKILL)

    def down_age() -> int | None:
        for line in tmux.screen(escapes=True).splitlines():
            if B in line and "down" in line:
                assert "\x1b[2m" in line or ";2m" in line, repr(line)  # dim
                found = re.search(r"down (\d+)s", SGR.sub("", line))
                return int(found.group(1)) if found else None
        return None

    first = wait_for(lambda: (age := down_age()) is not None and age + 1, 10, "B down") - 1
    wait_for(lambda: (age := down_age()) is not None and age >= first + 2, 10, "a growing age")
    assert "1 down" in tmux.screen()
    tmux.keys("Escape")
    until(tmux, lambda s: len(row_cells(s)) == 4, "the filter cleared")

    # It follows the terminal: 80x24 drops columns, 300 columns shows them all.
    tmux.resize(80, 24)

    def at_width(s: str, columns: int, rows: int) -> bool:
        lines = s.splitlines()
        fits = len(lines) == rows and all(len(x) <= columns for x in lines)
        return fits and "cluster" in s and any(x.startswith("node ") for x in lines)

    screen = until(tmux, lambda s: at_width(s, 80, 24), "the 80x24 layout")
    assert "avail" in header(screen) and "total" not in header(screen)
    assert screen.splitlines()[-1].startswith("q quit")
    assert screen.splitlines()[-2].startswith("cluster")
    tmux.resize(300, 30)
    screen = until(tmux, lambda s: at_width(s, 300, 30) and "total" in s, "300 columns")
    assert {"total", "all", "score", "1m"} <= set(header(screen))

    tmux.keys("q")
    until(tmux, lambda s: "EXIT=0" in s, "dsh top to exit 0 on q")


def run_top(cluster: Cluster, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, DSH, "top", *args], env={**env_for(cluster), **env},
                          capture_output=True, text=True, timeout=20)  # fmt: skip


def test_once_and_json(cluster: Cluster) -> None:
    done = run_top(cluster, "--once")
    assert done.returncode == 0 and done.stderr == ""
    lines = done.stdout.splitlines()
    assert "\x1b" not in done.stdout and all(len(x) <= 80 for x in lines)  # not a tty: 80
    assert set(row_cells(done.stdout)) == {A, B, C, "cluster"}
    assert len(lines) == 3 + 3 + 1  # title, two header lines, the nodes, the cluster
    wide = run_top(cluster, "--once", "--color", COLUMNS="300")
    assert "\x1b[" in wide.stdout and "total" in header(SGR.sub("", wide.stdout))
    no_color = run_top(cluster, "--once", "--sort", "load", NO_COLOR="1")
    assert "\x1b" not in no_color.stdout and "sort load" in no_color.stdout

    data = json.loads(run_top(cluster, "--json").stdout)
    assert [n["name"] for n in data["nodes"]] == [A, B, C]
    assert data["cluster"]["cpus"] == sum(n["cpus"] for n in data["nodes"])
    assert data["nodes"][2]["state"] == "drained" and data["interval"] == 0.2
    filtered = json.loads(run_top(cluster, "--json", "--filter", C[-2:]).stdout)
    assert [n["name"] for n in filtered["nodes"]] == [C]


def test_once_without_a_daemon_is_one_line_and_exit_1(cluster: Cluster) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind((A, 0))
        port = s.getsockname()[1]
    done = run_top(cluster, "--once", "-H", f"{A}:{port}")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("dsh: no answer from dshd")

    # A server that answers, but not JSON: one line as well.
    with socket.socket() as server:
        server.bind((A, 0))
        server.listen()

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 8\r\n\r\nnot json")

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        done = run_top(cluster, "--once", "-H", f"{A}:{server.getsockname()[1]}")
        thread.join(5)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "not JSON" in done.stderr


def log_until_stopped(
    cluster: Cluster, path: str, seconds: float, *args: str, sig: int = signal.SIGTERM
) -> tuple[subprocess.Popen[str], str, float]:
    process = subprocess.Popen(
        [PY, DSH, "top", "--log", path, *args], env=env_for(cluster),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    started = time.monotonic()
    try:
        time.sleep(seconds)  # the span logged (the test counts its lines)
        process.send_signal(sig)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    return process, out, time.monotonic() - started


def test_the_log_has_one_line_per_node_per_interval_and_loses_none(
    cluster: Cluster, tmp_path: Path
) -> None:
    path = tmp_path / "top.csv"
    _, _, elapsed = log_until_stopped(cluster, str(path), 2.0)
    text = path.read_text()
    assert text.endswith("\n")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert all(None not in r and len(r) == len(rows[0]) for r in rows)  # every line whole
    intervals = elapsed / cluster.interval
    for name in (A, B, C):
        times = [r["time"] for r in rows if r["name"] == name]
        assert len(times) == len(set(times))  # no report twice
        assert 0.6 * intervals - 2 <= len(times) <= intervals + 2, (name, len(times), intervals)
    assert {r["state"] for r in rows if r["name"] == C} == {"drained"}

    # Again onto the same file: appended, no second header; SIGINT as good as TERM.
    before = len(text.splitlines())
    log_until_stopped(cluster, str(path), 0.6, sig=signal.SIGINT)
    lines = path.read_text().splitlines()
    assert len(lines) > before and sum(x.startswith("time,") for x in lines) == 1

    # JSON lines on standard output, stopped at once: whatever came is whole.
    _, out, _ = log_until_stopped(cluster, "-", 0.5, "--format", "jsonl")
    records = [json.loads(line) for line in out.splitlines()]
    assert records and {r["name"] for r in records} == {A, B, C}
    assert out.endswith("\n") and all("T" in r["time"] for r in records)
