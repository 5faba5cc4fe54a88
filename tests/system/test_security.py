"""dshd under attack: sealed gossip, replay, forgery, floods, key rotation, --allow/--listen.

Real daemons on loopback addresses; the attacker is this test, sending from
member and non-member source addresses. Figures printed with -s go into
BENCHMARKS.md (bench/flood.py measures them on their own).
"""

from __future__ import annotations

import os
import random
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.dshd import Cluster, ClusterFactory, Node, ask
from support.paths import DSHD
from support.waiting import wait_for

from dsh.core.auth import Sealer
from dsh.core.wire import MAX_INCARNATION, State, encode_state
from dsh.daemon.keys import load_keys

A, B, C, SPY = "127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.19"
OUTSIDER = "127.0.0.99"


def gen_key(path: Path) -> Path:
    out = subprocess.run([sys.executable, str(DSHD), "--gen-key", str(path)],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return path


def sender(source: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0))
    return s


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def keyed_cluster(
    make_cluster: ClusterFactory, tmp_path: Path, names: list[str], key: Path, interval: float = 0.2
) -> Cluster:
    cluster = make_cluster(names, interval=interval)
    for node in cluster.nodes.values():
        node.key_file = key
    return cluster


# -- keys -------------------------------------------------------------------------


def test_gen_key_writes_a_private_file_and_never_overwrites(tmp_path: Path) -> None:
    key = gen_key(tmp_path / "key")
    assert key.stat().st_mode & 0o777 == 0o600
    assert len(load_keys(str(key))) == 1
    again = subprocess.run([sys.executable, str(DSHD), "--gen-key", str(key)],
                           capture_output=True, text=True)  # fmt: skip
    assert again.returncode == 2 and "exists; not overwriting" in again.stderr


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    key = gen_key(tmp_path / "key")
    key.chmod(0o644)
    (tmp_path / "cluster").write_text(f"{A}\n")
    out = subprocess.run(
        [sys.executable, str(DSHD), "-f", str(tmp_path / "cluster"), "--name", A,
         "--key-file", str(key)], capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"dshd: key file {key} is accessible by others (mode 0644); run: chmod 600 {key}"
    )


def test_without_a_key_the_daemon_says_so_once(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster([A])
    cluster.start()
    log = cluster.nodes[A].log.read_text()
    assert log.count("gossip is not authenticated") == 1


# -- sealed gossip, forgery and replay ----------------------------------------------


def test_sealed_cluster_gossips_and_forgeries_change_nothing(
    make_cluster: ClusterFactory, tmp_path: Path
) -> None:
    key = gen_key(tmp_path / "key")
    # SPY is a member no daemon runs on: the test listens there and so
    # captures the real sealed datagrams the daemons send to it.
    cluster = keyed_cluster(make_cluster, tmp_path, [A, B, SPY], key, interval=0.2)
    spy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    spy.bind((SPY, cluster.port))
    spy.settimeout(5)
    try:
        cluster.start([A, B])
        wait_for(lambda: cluster.all_up([A, B]), 10, "A and B up")
        captured: list[bytes] = []
        while len(captured) < 3:
            data, source = spy.recvfrom(2048)
            if source[0] == B:
                captured.append(data)
        captured_at = time.time()  # the reports' sent_ms are at most this (same clock)
        node = cluster.nodes[A]
        before = node.counters()["datagrams"]
        plain = encode_state(
            State(B, MAX_INCARNATION, 1, int(time.time() * 1000), 64, 99.0, 99.0, 0, 1)
        )
        wrong = Sealer([os.urandom(32)]).seal(plain, os.urandom(12))
        with sender(B) as s:
            s.sendto(plain, (A, cluster.port))  # right format, no key: forged
            s.sendto(wrong, (A, cluster.port))  # sealed with another key
            s.sendto(captured[-1][:-1] + bytes([captured[-1][-1] ^ 1]), (A, cluster.port))
            for data in captured:  # replayed at once: A has seen them or newer
                s.sendto(data, (A, cluster.port))

        def counted() -> dict[str, int]:
            now = node.counters()["datagrams"]
            done = now["bad_auth"] - before["bad_auth"] == 3
            return now if done and now["stale"] - before["stale"] >= 3 else {}

        after = wait_for(counted, 5, "forgeries counted")
        assert after["stale"] - before["stale"] == 3
        assert after["not_member"] == before["not_member"]
        rows = {line.split()[0]: line.split() for line in node.status_text().splitlines()}
        assert rows[B][3] != "64" and float(rows[B][2]) < 99

        # B dies; replaying its captured reports must not bring it back.
        cluster.nodes[B].stop(signal.SIGKILL)
        wait_for(lambda: node.state_of(B) == "down", 10, "B down")
        before = node.counters()["datagrams"]
        with sender(B) as s:
            for data in captured:
                s.sendto(data, (A, cluster.port))

        def judged() -> bool:  # every replay counted, whatever as: A has decided
            seen = sum(node.counters()["datagrams"].values()) - sum(before.values())
            return seen >= len(captured)

        wait_for(judged, 5, "replays counted")
        assert node.state_of(B) == "down"

        # A restarted daemon has forgotten B's sequence numbers; the replay
        # window (here 1 s) still rejects the old captures.
        node.stop()
        node.extra_args = ["--replay-window", "1"]
        node.start()
        # The captures must be older than the 1 s window, and only time makes
        # them so: what the restart has not used of 1.2 s is waited out.
        time.sleep(max(0.0, captured_at + 1.2 - time.time()))
        before = node.counters()["datagrams"]
        with sender(B) as s:
            for data in captured:
                s.sendto(data, (A, cluster.port))
        wait_for(lambda: node.counters()["datagrams"]["replayed"] - before["replayed"] == 3,
                 5, "replays counted")  # fmt: skip
        assert node.state_of(B) == "down"
    finally:
        spy.close()


def test_a_node_with_the_wrong_key_is_not_heard(
    make_cluster: ClusterFactory, tmp_path: Path
) -> None:
    good, other = gen_key(tmp_path / "good"), gen_key(tmp_path / "other")
    cluster = keyed_cluster(make_cluster, tmp_path, [A, B], good)
    cluster.nodes[B].key_file = other
    cluster.start()
    wait_for(lambda: cluster.nodes[A].counters()["datagrams"]["bad_auth"] >= 3, 10, "bad_auth")
    assert cluster.nodes[A].state_of(B) == "down"
    assert cluster.nodes[B].state_of(A) == "down"


# -- floods -------------------------------------------------------------------------


def test_100k_hostile_datagrams_leave_the_daemon_up_bounded_and_counting(
    make_cluster: ClusterFactory, tmp_path: Path
) -> None:
    key = gen_key(tmp_path / "key")
    cluster = keyed_cluster(make_cluster, tmp_path, [A, B, C], key, interval=0.3)
    cluster.start()
    wait_for(cluster.all_up, 10, "all up")
    node = cluster.nodes[A]
    rng = random.Random(7)
    real = Sealer(load_keys(str(key)))
    wrong = Sealer([os.urandom(32)])
    old_ms = int(time.time() * 1000) - 60_000

    def stale() -> bytes:  # fresh by the clock, but older than B's real reports
        return real.seal(encode_state(State(B, 1, 1, int(time.time() * 1000), 2, 0, 0, 0, 1)),
                         os.urandom(12))  # fmt: skip

    old_report = encode_state(State(B, MAX_INCARNATION, 1, old_ms, 2, 0, 0, 0, 1))
    replayed = real.seal(old_report, os.urandom(12))
    sealed = real.seal(old_report, os.urandom(12))
    wrong_key = encode_state(State(B, MAX_INCARNATION, 9, old_ms, 2, 0, 0, 0, 1))
    kinds: dict[str, tuple[str, Callable[[], bytes], str]] = {
        # kind: (source, make datagram, the reason it must be counted under)
        "random": (B, lambda: rng.randbytes(rng.randrange(0, 300)), "bad_auth"),
        "truncated": (B, lambda: sealed[: rng.randrange(0, len(sealed))], "bad_auth"),
        "oversized": (B, lambda: sealed + rng.randbytes(rng.randrange(1, 9000)), "bad_auth"),
        "wrong key": (B, lambda: wrong.seal(wrong_key, os.urandom(12)), "bad_auth"),
        "replayed": (B, lambda: replayed, "replayed"),
        "stale": (B, stale, "stale"),
        "outsider": (OUTSIDER, lambda: rng.randbytes(64), "not_member"),
    }  # fmt: skip
    rss_before = rss_kib(node.pid)
    start_counts = node.counters()["datagrams"]
    expected = {reason: 0 for _, _, reason in kinds.values()}
    sockets = {src: sender(src) for src in (B, OUTSIDER)}
    total, batch = 0, 500
    started = time.monotonic()
    try:
        while total < 100_000:
            names = rng.choices(list(kinds), k=batch)
            for name in names:
                source, make, reason = kinds[name]
                sockets[source].sendto(make(), (A, cluster.port))
                expected[reason] += 1
            total += batch

            # Paced so the kernel never drops (the test counts what the
            # daemon saw); the peers must stay up all along.
            def caught_up(expected: dict[str, int] = expected) -> bool:
                now = node.counters()["datagrams"]
                return all(now[r] - start_counts[r] >= n for r, n in expected.items())

            try:
                wait_for(caught_up, 30, f"daemon caught up at {total}")
            except AssertionError:
                now = node.counters()["datagrams"]
                seen = {r: now[r] - start_counts[r] for r in expected}
                raise AssertionError(f"expected {expected}, daemon counted {seen}") from None
            if total % 5000 == 0:
                assert node.state_of(B) == "up" and node.state_of(C) == "up"
    finally:
        for s in sockets.values():
            s.close()
    took = time.monotonic() - started
    now = node.counters()["datagrams"]
    for reason, count in expected.items():
        got = now[reason] - start_counts[reason]
        assert got == count, (reason, got, count)
    assert cluster.all_up()
    rss_after = rss_kib(node.pid)
    print(f"100k hostile datagrams in {took:.1f}s ({total / took:.0f}/s paced); "
          f"RSS {rss_before / 1024:.1f} -> {rss_after / 1024:.1f} MiB")  # fmt: skip
    assert rss_after - rss_before < 20 * 1024


def _latency(address: str, port: int) -> float:
    started = time.perf_counter()
    answer = ask(address, port, timeout=5)
    assert answer.strip() in (A, B)
    return time.perf_counter() - started


def test_tcp_flood_does_not_stop_answers_or_gossip(make_cluster: ClusterFactory) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    cluster = make_cluster([A, B], interval=0.2)
    cluster.start()
    wait_for(cluster.all_up, 10, "all up")
    best = cluster.port + 1
    idle = sorted(_latency(A, best) for _ in range(50))
    idle_conns: list[socket.socket] = []
    stop = threading.Event()

    def slow_reader() -> None:
        while not stop.is_set():
            try:
                with socket.create_connection((A, cluster.port), timeout=5) as s:
                    while not stop.is_set() and s.recv(1):
                        time.sleep(0.05)  # slow on purpose: a reader of 20 bytes a second
            except OSError:
                pass

    readers = [threading.Thread(target=slow_reader, daemon=True) for _ in range(20)]
    try:
        for t in readers:
            t.start()
        for _ in range(3000):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect((A, best if len(idle_conns) % 2 else cluster.port))
            except BlockingIOError:
                pass
            idle_conns.append(s)
        try:
            flooded = sorted(_latency(A, best) for _ in range(50))
        except AssertionError:
            raise AssertionError(
                f"{cluster.nodes[A].counters()}\n{cluster.nodes[A].tail()}"
            ) from None
        assert cluster.all_up()
    finally:
        stop.set()
        for s in idle_conns:
            s.close()
        for t in readers:
            t.join(10)

    def median(xs: list[float]) -> float:
        return xs[len(xs) // 2] * 1000

    print(f"best-node latency: idle {median(idle):.2f} ms, under flood {median(flooded):.2f} ms")
    assert cluster.nodes[A].counters()["tcp"]["served"] >= 100


# -- rotation ------------------------------------------------------------------------


def test_key_rotation_with_no_node_ever_down(make_cluster: ClusterFactory, tmp_path: Path) -> None:
    k1 = load_keys(str(gen_key(tmp_path / "k1")))[0].hex()
    k2 = load_keys(str(gen_key(tmp_path / "k2")))[0].hex()
    keyfile = tmp_path / "cluster.key"  # one file shared by the three daemons
    keyfile.write_text(k1 + "\n")
    keyfile.chmod(0o600)
    cluster = keyed_cluster(make_cluster, tmp_path, [A, B, C], keyfile, interval=0.2)
    cluster.start()
    wait_for(cluster.all_up, 10, "all up")
    downs: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for node in cluster.nodes.values():
                for line in node.status().nodes:
                    if line.state != "up":
                        downs.append(f"{line.name} {line.state} at {node.name}")
            time.sleep(0.02)  # the sampling period of the watch, not a wait for anything

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        for done, step in enumerate(([k1, k2], [k2, k1], [k2]), start=1):  # add, switch, retire
            keyfile.write_text("".join(k + "\n" for k in step))
            for node in cluster.nodes.values():
                node.send(signal.SIGHUP)

                def reloaded(node: Node = node, done: int = done) -> bool:
                    return node.log.read_text().count("keys reloaded") == done

                wait_for(reloaded, 5, f"{node.name} reloaded its keys")
                # Nodes reload one after another, as a sysadmin's loop does: for
                # an interval this node has the new keys and the next the old
                # ones, a mixed cluster that must stay up (it is what is tested).
                time.sleep(cluster.interval)
            # Staying up is what is tested: a node that could not open another's
            # reports would show it down after maxloops intervals; watch twice that.
            time.sleep(cluster.interval * cluster.maxloops * 2)
    finally:
        stop.set()
        watcher.join(10)
    assert downs == []
    for node in cluster.nodes.values():
        assert node.counters()["datagrams"]["bad_auth"] == 0
        assert "keys reloaded: 1 key(s)" in node.log.read_text()


# -- who may ask ---------------------------------------------------------------------


def _refused_or_empty(source: str, target: str, port: int) -> bool:
    with socket.socket() as s:
        s.bind((source, 0))
        s.settimeout(5)
        try:
            s.connect((target, port))
            return s.recv(100) == b""
        except (ConnectionResetError, ConnectionRefusedError):
            return True


def test_allow_limits_who_is_answered(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster([A, B])
    node = cluster.nodes[A]
    # 127.0.0.1 is where the harness asks from (the source Linux picks on lo).
    node.extra_args = ["--allow", "127.0.0.5", "--allow", "members", "--allow", "127.0.0.1/32"]
    cluster.start()
    best = cluster.port + 1
    with socket.socket() as s:
        s.bind(("127.0.0.5", 0))
        s.connect((A, best))
        assert s.recv(100).strip() in (A.encode(), B.encode())
    with socket.socket() as s:
        s.bind((B, 0))  # a member
        s.connect((A, best))
        assert s.recv(100).strip() in (A.encode(), B.encode())
    assert _refused_or_empty("127.0.0.6", A, best)
    assert _refused_or_empty(OUTSIDER, A, cluster.port)
    wait_for(lambda: node.counters()["tcp"]["denied"] == 2, 5, "denials counted")


def test_listen_chooses_the_addresses(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster([A])
    cluster.start()  # the harness passes --listen 127.0.0.11
    assert ask(A, cluster.port + 1).strip() == A
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", cluster.port + 1), timeout=5)


def test_bad_allow_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "cluster").write_text(f"{A}\n")
    out = subprocess.run(
        [sys.executable, str(DSHD), "-f", str(tmp_path / "cluster"), "--name", A, "--no-key",
         "--allow", "10.0.0.0/33"], capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip() == "dshd: --allow 10.0.0.0/33: not a CIDR, 'loopback' or 'members'"
