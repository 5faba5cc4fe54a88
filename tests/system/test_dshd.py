"""dshd as a sysadmin runs it: real processes on 127.0.0.x, real UDP and TCP."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from support.cluster_files import BAD_CLUSTER_FILES
from support.dshd import ClusterFactory, ask, free_udp_tcp_port, pid_alive
from support.paths import DSHD
from support.waiting import wait_for

from dsh.core.membership import t_min
from dsh.core.wire import MAX_INCARNATION, State, encode_state

A, B, C = "127.0.0.11", "127.0.0.12", "127.0.0.13"


def run_dshd(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DSHD), *args],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_every_node_lists_every_other(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster([A, B, C])
    started = time.monotonic()
    cluster.start()
    wait_for(cluster.all_up, 10 * cluster.interval + 5, "all nodes up everywhere")
    took = time.monotonic() - started
    text = cluster.nodes[A].status_text()
    lines = text.splitlines()
    assert lines[0].startswith("#")
    assert lines[0].split()[1:10] == [
        "name", "state", "load", "cpus", "freemem", "loadscale", "memscale", "score", "age",
    ]  # fmt: skip
    rows = [line.split() for line in lines if not line.startswith("#")]
    assert [r[0] for r in rows] == [A, B, C]
    for row in rows:
        assert row[1] == "up"
        assert float(row[2]) >= 0 and int(row[3]) == os.cpu_count()
        assert float(row[8]) < cluster.interval * cluster.maxloops
    assert f"# self {A}" in lines
    print(f"all three nodes saw each other {took:.2f}s after start")


def test_burst_of_best_queries_spreads_over_equal_nodes(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster([A, B, C])
    cluster.start()
    wait_for(cluster.all_up, 10, "all up")
    answers = Counter(cluster.nodes[A].best() for _ in range(20))
    assert set(answers) == {A, B, C}, answers
    assert min(answers.values()) >= 3, answers


def test_loadscale_makes_a_node_chosen_less(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster([A, f"{B} 4.0", C])
    cluster.start()
    wait_for(cluster.all_up, 10, "all up")
    answers = Counter(cluster.nodes[A].best() for _ in range(9))
    assert answers[B] < answers[A] and answers[B] < answers[C], answers


def test_drain_and_undrain(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster([A, B])
    cluster.start()
    wait_for(cluster.all_up, 10, "all up")
    out = run_dshd("--drain", "--control", cluster.nodes[B].control)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok drained"
    wait_for(lambda: cluster.nodes[A].state_of(B) == "drained", 5, "B drained at A")
    assert cluster.nodes[B].state_of(B) == "drained"
    for node in (A, B):
        assert {cluster.nodes[node].best() for _ in range(10)} == {A}
    out = run_dshd("--undrain", "--control", cluster.nodes[B].control)
    assert out.returncode == 0, out.stderr
    wait_for(lambda: cluster.nodes[A].state_of(B) == "up", 5, "B undrained at A")
    assert B in {cluster.nodes[A].best() for _ in range(10)}


def test_drain_keyword_in_cluster_file(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster([A, f"{B} 1.0 1.0 drain"])
    cluster.start()
    wait_for(lambda: cluster.nodes[A].state_of(B) == "drained", 5, "B shown drained")
    assert {cluster.nodes[A].best() for _ in range(10)} == {A}


def test_drain_without_daemon_is_a_clear_error(tmp_path: Path) -> None:
    out = run_dshd("--drain", "--control", str(tmp_path / "none.sock"))
    assert out.returncode == 1
    assert "cannot reach the local daemon" in out.stderr


def test_killed_daemon_is_shown_down_in_time_and_comes_back(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster([A, B, C], interval=0.3, maxloops=3)
    cluster.start()
    wait_for(cluster.all_up, 10, "all up")
    rows = {r.split()[0]: r.split() for r in cluster.nodes[A].status_text().splitlines()}
    last_heard = float(rows[C][8])  # seconds since A last heard C, just before the kill
    killed = time.monotonic()
    cluster.nodes[C].stop(signal.SIGKILL)
    wait_for(lambda: cluster.nodes[A].state_of(C) == "down", 10, "C down at A", poll=0.01)
    took = time.monotonic() - killed
    limit = cluster.maxloops * cluster.interval + cluster.interval
    print(f"dead node detected after {took:.3f}s (limit {limit:.2f}s)")
    assert took <= limit
    # Not before it was suspect: (maxloops - 1) intervals at their longest after
    # C's last report, plus the shortest suspicion timeout (README: Membership;
    # a little slack for polling).
    suspect_after = (cluster.maxloops - 1) * cluster.interval * 1.1
    assert took >= suspect_after + t_min(3, cluster.interval) - last_heard - 0.05
    assert cluster.nodes[B].state_of(C) == "down"
    assert C not in {cluster.nodes[A].best() for _ in range(10)}
    cluster.nodes[C].start()
    wait_for(cluster.all_up, 10, "C back up everywhere")


def _send_from(source: str, target: str, port: int, data: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.sendto(data, (target, port))


def _counters(text: str) -> dict[str, int]:
    for line in text.splitlines():
        if line.startswith("# datagrams "):
            return {k: int(v) for k, v in (f.split("=") for f in line.split()[2:])}
    raise AssertionError("no counters line")


def test_foreign_and_garbage_datagrams_change_nothing_and_are_counted(
    make_cluster: ClusterFactory,
) -> None:
    cluster = make_cluster([A, B])
    cluster.start()
    wait_for(cluster.all_up, 10, "all up")
    before = _counters(cluster.nodes[A].status_text())
    forged = encode_state(
        State(B, incarnation=MAX_INCARNATION, seq=1, sent_ms=0, ncpu=64, load=99.0, load1=99.0,
              mem_avail=0, mem_total=1)
    )  # fmt: skip
    _send_from("127.0.0.99", A, cluster.port, forged)  # a valid report, from outside
    _send_from(B, A, cluster.port, b"\x00garbage" * 3)  # garbage from a member
    _send_from(B, A, cluster.port, b"")  # empty
    rng = random.Random(1)
    sent = 2
    for _batch in range(10):
        # In batches, so that the kernel's socket buffer never overflows: the
        # test counts what the daemon saw, and a dropped datagram is not seen.
        for _ in range(20):
            _send_from(B, A, cluster.port, rng.randbytes(rng.randrange(0, 1500)))
        sent += 20

        def counted(sent: int = sent) -> bool:
            now = _counters(cluster.nodes[A].status_text())
            return now["malformed"] - before["malformed"] >= sent

        wait_for(counted, 5, f"{sent} malformed datagrams counted")
    after = _counters(cluster.nodes[A].status_text())
    assert after["not_member"] - before["not_member"] == 1
    assert after["malformed"] - before["malformed"] == sent
    rows = {r.split()[0]: r.split() for r in cluster.nodes[A].status_text().splitlines()}
    assert rows[B][3] != "64" and float(rows[B][2]) < 99
    assert cluster.all_up()


def test_clients_that_never_read_do_not_block_others(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster([A])
    cluster.start()
    idle = []
    try:
        for _ in range(300):
            s = socket.create_connection((A, cluster.port + 1))
            idle.append(s)
        for _ in range(20):
            assert ask(A, cluster.port + 1, timeout=2) == A + "\n"
        assert A in ask(A, cluster.port, timeout=2)
    finally:
        for s in idle:
            s.close()


def test_background_pidfile_and_sigterm(tmp_path: Path) -> None:
    port = free_udp_tcp_port([A])
    (tmp_path / "cluster").write_text(f"{A}\n{B}\n")
    pidfile = tmp_path / "dshd.pid"
    out = run_dshd(
        "-b", "-p", "-f", str(tmp_path / "cluster"), "--name", A, "--listen", A,
        "-u", str(port), "-t", str(port), "-r", str(port + 1),
        "--control", str(tmp_path / "ctl"), "--pidfile", str(pidfile),
        "--log", str(tmp_path / "log"),
    )  # fmt: skip
    try:
        assert out.returncode == 0, out.stderr
        pid = int(out.stdout.strip())
        assert pid_alive(pid)
        assert int(pidfile.read_text()) == pid
        assert ask(A, port + 1) == A + "\n"  # already listening when -b returns
        assert os.getsid(pid) != os.getsid(0)  # a session of its own
        tty_nr = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[4]
        assert tty_nr == "0"  # and no controlling terminal
        assert os.readlink(f"/proc/{pid}/cwd") == "/"
    finally:
        # Also when -b misbehaved: whatever the pidfile names must not outlive the test.
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
    wait_for(lambda: not pid_alive(pid), 10, "daemon gone after SIGTERM")
    assert not pidfile.exists()
    assert not (tmp_path / "ctl").exists()


def test_foreground_sigterm_exits_zero(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster([A])
    cluster.start()
    assert cluster.nodes[A].stop(signal.SIGTERM) == 0
    cluster.nodes[A].start()
    assert cluster.nodes[A].stop(signal.SIGINT) == 0


def test_background_start_failure_is_reported(tmp_path: Path) -> None:
    port = free_udp_tcp_port([A])
    (tmp_path / "cluster").write_text(f"{A}\n")
    with socket.socket() as blocker:
        blocker.bind((A, port + 1))
        blocker.listen()
        out = run_dshd(
            "-b", "-f", str(tmp_path / "cluster"), "--name", A, "--listen", A,
            "-u", str(port), "-t", str(port), "-r", str(port + 1),
            "--control", str(tmp_path / "ctl"),
        )  # fmt: skip
    assert out.returncode == 1
    assert f"cannot listen on {A}:{port + 1}/tcp" in out.stderr


def test_sighup_picks_up_an_added_node(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster([A, B, C])
    cluster.write([A, B])
    cluster.start([A, B])
    wait_for(lambda: cluster.all_up([A, B]), 10, "A and B up")
    assert cluster.nodes[A].state_of(C) is None
    cluster.write([A, B, C])
    cluster.nodes[C].start()
    for name in (A, B):
        cluster.nodes[name].send(signal.SIGHUP)
    wait_for(cluster.all_up, 10, "C known and up everywhere after SIGHUP")
    assert "cluster reloaded: added 127.0.0.13" in cluster.nodes[A].log.read_text()
    # A bad file on SIGHUP is logged and the old cluster kept.
    cluster.write([A, B, "127.0.0.14 zero"])
    cluster.nodes[A].send(signal.SIGHUP)
    wait_for(lambda: "reload failed" in cluster.nodes[A].log.read_text(), 5, "reload error")
    assert "cluster:3: loadscale 'zero' is not a number" in cluster.nodes[A].log.read_text()
    assert cluster.all_up()


@pytest.mark.parametrize(("content", "message"), BAD_CLUSTER_FILES)
def test_bad_cluster_file_stops_start_with_file_and_line(
    tmp_path: Path, content: str, message: str
) -> None:
    (tmp_path / "cluster").write_text(content)
    out = run_dshd("-f", str(tmp_path / "cluster"), "--name", A)
    assert out.returncode == 2
    assert out.stderr.startswith(f"dshd: {tmp_path / message}")
    assert len(out.stderr.splitlines()) == 1


def test_missing_cluster_file_and_env_default(tmp_path: Path) -> None:
    env = {**os.environ, "DSH_CLUSTER": str(tmp_path / "nope")}
    out = subprocess.run([sys.executable, str(DSHD)], capture_output=True, text=True, env=env)
    assert out.returncode == 2
    assert f"{tmp_path / 'nope'}: cannot read: No such file or directory" in out.stderr


def test_no_matching_entry_lists_what_was_tried(tmp_path: Path) -> None:
    (tmp_path / "cluster").write_text("198.51.100.1\n198.51.100.2\n")  # TEST-NET-2
    out = run_dshd("-f", str(tmp_path / "cluster"))
    assert out.returncode == 2
    assert "no cluster entry matches this machine; tried addresses" in out.stderr
    assert "127.0.0.1" in out.stderr and "--name" in out.stderr


def test_unresolvable_node_is_reported_and_skipped(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster([A, B])
    cluster.write([A, B, "no-such-node.invalid"])
    cluster.start()
    wait_for(cluster.all_up, 10, "A and B up")
    assert cluster.nodes[A].state_of("no-such-node.invalid") == "down"
    assert "node no-such-node.invalid does not resolve" in cluster.nodes[A].log.read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_user_drops_privileges_after_binding(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster([A])
    node = cluster.nodes[A]
    node.extra_args = ["--user", "nobody"]
    os.chmod(cluster.directory, 0o777)  # the log file is opened by the test, not the daemon
    node.start()
    assert node.process is not None
    status = Path(f"/proc/{node.process.pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert set(uid_line.split()[1:]) == {"65534"}
    assert node.best() == A
    assert os.stat(node.control).st_uid == 65534  # so the daemon's user may drain it


def test_sighup_takes_each_good_file_and_keeps_the_old_bad_one(
    make_cluster: ClusterFactory, tmp_path: Path
) -> None:
    # A typo in dshd.conf must not keep a node added to the cluster file out,
    # nor the other way round.
    conf = tmp_path / "dshd.conf"
    conf.write_text("[sensor:LoadAvg]\ntime_interval = 1\n")
    cluster = make_cluster([A, B, C])
    cluster.write([A, B])
    a = cluster.nodes[A]
    a.extra_args += ["--config", str(conf)]
    cluster.start([A, B])
    wait_for(lambda: cluster.all_up([A, B]), 10, "A and B up")
    conf.write_text("[sensor:LoadAvg]\ntime_interval = 1\n[sensor:NoSuchSensor]\n")
    cluster.write([A, B, C])
    cluster.nodes[C].start()
    a.send(signal.SIGHUP)
    wait_for(lambda: a.state_of(C) == "up", 10, "C added on A despite the bad config")
    log = a.log.read_text()
    assert "reload failed for the config file" in log
    assert f"{conf}:3: unknown sensor 'NoSuchSensor'" in log
    assert "# sensor LoadAvg up" in a.status_text()  # the old config still runs
    # Mended, with a comment more: the same config (line numbers are no part of it).
    conf.write_text("# load\n[sensor:LoadAvg]\ntime_interval = 1\n")
    a.send(signal.SIGHUP)
    wait_for(lambda: a.log.read_text().count("config reloaded: no changes") == 1, 10,
             "the mended config, the same as before")  # fmt: skip
