"""dshd's quik and jobs (GET /quik, /jobs, procstatd's line protocol through nc)
and ``dsh ps``, against real dshd clusters on loopback.

Every dshd of a loopback cluster reads the same /proc: the processes the tests
start show on every node, which is what lets ``dsh ps`` be seen merging three.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.dshd import Cluster, ClusterFactory
from support.paths import DSH, PY
from support.ssh_cluster import LOCAL, SshCluster
from support.waiting import wait_for

NODES = ["127.0.0.71", "127.0.0.72", "127.0.0.73"]
A, B, C = NODES
PROCSTAT_OFFSET = 3  # the procstat port: the cluster's port + 3 (http is + 2)


def get(address: str, port: int, target: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://{address}:{port}{target}", timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def jobs(cluster: Cluster, node: str, query: str = "") -> dict[str, Any]:
    status, body = get(node, cluster.http_port, f"/jobs?format=json{query}")
    assert status == 200, body
    data: dict[str, Any] = json.loads(body)
    return data


def by_pid(data: dict[str, Any]) -> dict[int, dict[str, Any]]:
    processes = data["processes"]
    assert isinstance(processes, list)
    return {p["pid"]: p for p in processes}


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts (each in a process group of its own), killed at teardown."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield procs
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


def start(started: list[subprocess.Popen[bytes]], argv: list[str],
          **kwargs: object) -> subprocess.Popen[bytes]:  # fmt: skip
    proc: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
        argv, start_new_session=True, stdin=subprocess.DEVNULL, **kwargs
    )
    started.append(proc)
    return proc


def make(make_cluster: ClusterFactory, *policies: str) -> Cluster:
    cluster = make_cluster(NODES[: len(policies)], interval=0.2)
    for name, policy in zip(cluster.nodes, policies, strict=True):
        cluster.nodes[name].extra_args = [
            "--jobs",
            policy,
            "--procstat-port",
            str(cluster.port + PROCSTAT_OFFSET),
        ]
    cluster.start()
    return cluster


def test_jobs_shows_a_process_with_its_user_and_command_line_and_own_hides_others(
    make_cluster: ClusterFactory, started: list[subprocess.Popen[bytes]]
) -> None:
    cluster = make(make_cluster, "all", "own", "off")
    marked = {**os.environ, "DSH_JOB": "1"}
    mine = start(started, ["sh", "-c", "sleep 3141.5; :", "a b"])
    placed = start(started, ["sleep", "3141.6"], env=marked)
    nobody = start(started, ["sleep", "3141.7"], user="nobody")
    everyone = by_pid(jobs(cluster, A))
    p = everyone[mine.pid]
    assert p["user"] == "root" and p["argv"] == ["sh", "-c", "sleep 3141.5; :", "a b"]
    assert p["command"] == "sh -c sleep 3141.5; : a b" and p["state"] in ("S", "R")
    assert isinstance(p["rss"], int) and p["rss"] > 0 and 0 <= p["elapsed"] < 60
    assert everyone[nobody.pid]["user"] == "nobody"
    theirs = by_pid(jobs(cluster, A, "&user=nobody"))
    assert nobody.pid in theirs and {p["user"] for p in theirs.values()} == {"nobody"}
    text = get(A, cluster.http_port, "/jobs?user=nobody&top=1000")[1].decode()
    head, columns, *lines = text.splitlines()
    assert head.startswith(f"jobs {A} {len(lines)} policy=all cpu-over=") and "PID" in columns
    line = next(line for line in lines if line.split()[0] == str(nobody.pid))
    assert line.split()[1] == "nobody" and line.endswith(" sleep 3141.7")
    own = by_pid(jobs(cluster, B))
    assert placed.pid in own and mine.pid not in own and nobody.pid not in own
    status, body = get(C, cluster.http_port, "/jobs")
    assert status == 403 and body.decode().startswith("jobs are off on this node")
    # quik answers whatever the policy
    status, body = get(C, cluster.http_port, "/quik?format=json")
    quik = json.loads(body)
    assert status == 200 and quik["node"] == C and quik["tasks"] >= quik["running"] >= 0
    assert quik["mem_total"] >= quik["mem_avail"] > 0


def test_procstat_line_protocol_through_nc(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(NODES, interval=0.2)
    port = str(cluster.port + PROCSTAT_OFFSET)
    for name, extra in zip(NODES, (["--jobs", "all"], ["--jobs", "off"],
                                   ["--allow", "10.9.9.9/32"]), strict=True):  # fmt: skip
        cluster.nodes[name].extra_args = ["--procstat-port", port, *extra]
    cluster.start([A, B])
    # C answers no one here, not even the status port that start() waits on
    cluster.nodes[C].start(wait=False)
    wait_for(lambda: f"node {C}, gossip" in cluster.nodes[C].log.read_text(), 10, "C listening")

    def nc(node: str, line: bytes) -> str:
        done = subprocess.run(["nc", node, port], input=line, capture_output=True, timeout=10)
        return done.stdout.decode()

    quik = nc(A, b"quik\n").splitlines()
    assert len(quik) == 1 and quik[0].startswith(f"quik {A} load ") and " memavail " in quik[0]
    listing = nc(A, b"jobs\n").splitlines()
    count = int(listing[0].split()[2])
    assert listing[0].startswith(f"jobs {A} ") and count == len(listing) - 2 > 0
    assert any(line.split()[-1:] == ["--jobs", "all"] or "dshd" in line for line in listing)
    assert nc(A, b"ps aux\n") == "error: send quik or jobs, one line\n"
    assert nc(B, b"jobs\n").startswith("error jobs are off")
    assert nc(A, b"q" * 100 + b"\n") == "error: send quik or jobs, one line\n"  # too long
    assert nc(C, b"quik\n") == ""  # --allow: closed at once


def test_thousands_of_short_lived_processes_exiting_mid_read(
    make_cluster: ClusterFactory, started: list[subprocess.Popen[bytes]]
) -> None:
    cluster = make(make_cluster, "all")
    # A couple of thousand sleeps at any time, each living 0 to 8 s: many exit
    # while dshd reads /proc, every answer must still be whole.
    churn = "while :; do for i in $(seq 400); do sleep $((RANDOM % 8)).$((RANDOM % 10)) & done; " \
            "sleep 0.5; done"  # fmt: skip
    start(started, ["bash", "-c", churn], stdout=subprocess.DEVNULL)
    wait_for(lambda: len(os.listdir("/proc")) > 1500, 30, "a thousand and more processes")
    counts: list[int] = []
    skipped = 0
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        data = jobs(cluster, A)
        counts.append(data["count"])
        skipped += int(data["skipped"])
        time.sleep(0.3)
    assert min(counts) > 1000
    print(f"answers {len(counts)}, counts {min(counts)}..{max(counts)}, skipped {skipped}")


def test_dsh_ps_merges_three_nodes_and_skips_a_killed_one(
    make_cluster: ClusterFactory, started: list[subprocess.Popen[bytes]]
) -> None:
    cluster = make(make_cluster, "own", "own", "own")
    wait_for(cluster.all_up, 10, "the nodes to see each other")
    placed = start(started, ["sleep", "2718.3"], env={**os.environ, "DSH_JOB": "1"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSH_")}
    env.update(DSH_DAEMON=A, DSH_HTTP_PORT=str(cluster.http_port))

    def ps(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PY, DSH, "ps", *args], capture_output=True, text=True, env=env,
                              timeout=20)  # fmt: skip

    done = ps("--json")
    assert done.returncode == 0, done.stderr
    rows = [r for r in json.loads(done.stdout)["processes"] if r["pid"] == placed.pid]
    assert sorted(r["node"] for r in rows) == NODES and rows[0]["user"] == "root"
    text = ps("--sort", "mem").stdout.splitlines()
    assert text[0].split()[:2] == ["NODE", "PID"]
    assert {line.split()[0] for line in text[1:] if line.split()[1] == str(placed.pid)} == set(
        NODES
    )
    assert ps("-u", "nobody").stdout.splitlines()[1:] == []
    assert [line.split()[0] for line in ps("-w", B).stdout.splitlines()[1:]] == [B]
    cluster.nodes[C].stop(signal.SIGKILL)
    # At once (the gossip may still call it up): C does not answer, named once.
    begun = time.monotonic()
    done = ps()
    assert done.returncode == 0 and done.stderr.count(C) == 1, done.stderr
    assert {line.split()[0] for line in done.stdout.splitlines()[1:]} == {A, B}
    wait_for(lambda: cluster.nodes[A].state_of(C) == "down", 10, "C down in A's view")
    done = ps()
    assert done.stderr == f"dsh ps: skipped, down: {C}\n"
    assert {line.split()[0] for line in done.stdout.splitlines()[1:]} == {A, B}
    print(f"dsh ps with a killed node: {time.monotonic() - begun:.2f}s for both runs")


def test_a_job_dsh_placed_shows_under_own(
    ssh_cluster: SshCluster, dsh_env: dict[str, str], tmp_path: Path
) -> None:
    """The marker is real: a command run by dsh (each path: rexec, the executor)
    shows on the default policy, own, of the session cluster's dshd."""
    env = {**dsh_env, "PWD": str(tmp_path)}
    run = subprocess.Popen([PY, DSH, *ssh_cluster.dsh_args(), "sleep", "1618.03"], cwd=tmp_path,
                           env=env, stdin=subprocess.DEVNULL)  # fmt: skip
    try:

        def seen() -> dict[str, Any] | None:
            status, body = get(LOCAL, ssh_cluster.dshd.http_port, "/jobs?format=json")
            assert status == 200, body
            found = [p for p in json.loads(body)["processes"] if p["argv"] == ["sleep", "1618.03"]]
            return found[0] if found else None

        p = wait_for(seen, 20, "dsh's sleep in /jobs")
        assert p is not None and p["user"] == "root"
    finally:
        run.send_signal(signal.SIGINT)
        try:
            run.wait(10)
        except subprocess.TimeoutExpired:
            run.kill()
            run.wait()


def test_the_config_files_jobs_setting_and_sighup(
    make_cluster: ClusterFactory, tmp_path: Path
) -> None:
    conf = tmp_path / "dshd.conf"
    conf.write_text("[dshd]\njobs = off\n")
    cluster = make_cluster([A], interval=0.2)
    cluster.nodes[A].extra_args = ["--config", str(conf)]
    cluster.start()
    assert get(A, cluster.http_port, "/jobs")[0] == 403
    conf.write_text("[dshd]\njobs = all\n")
    cluster.nodes[A].send(signal.SIGHUP)
    wait_for(lambda: get(A, cluster.http_port, "/jobs")[0] == 200, 10, "jobs on after SIGHUP")
    assert jobs(cluster, A)["policy"] == "all"
