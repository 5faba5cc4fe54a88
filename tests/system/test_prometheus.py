"""GET /metrics on dshd's HTTP port: scraped by a real Prometheus, checked by promtool,
and held up against garbage, slowloris, oversized heads and a connection flood
while the gossip goes on. Real daemons on 127.0.0.x, real Prometheus on 127.0.0.1."""

from __future__ import annotations

import gzip
import http.client
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.dshd import Cluster, ClusterFactory, Node
from support.prometheus import Prometheus
from support.waiting import wait_for

A, B, C = "127.0.0.11", "127.0.0.12", "127.0.0.13"
OUTSIDER = "127.0.0.99"
CLIENT_TIMEOUT = 5.0  # DaemonConfig.client_timeout: dshd has no flag for it
MAX_CLIENTS = 256  # DaemonConfig.max_clients

# Every sensor the checks below read, every second (their defaults are 10-300 s).
SENSORS = ("CPUTimes", "LoadAvg", "VirtualMemory", "SwapMemory", "CPUCount", "NetIOCounters",
           "DiskUsage", "BootTime")  # fmt: skip
MakePrometheus = Callable[[list[str]], Prometheus]


def fast_sensors(cluster: Cluster) -> None:
    conf = cluster.directory / "dshd.conf"
    conf.write_text("".join(f"[sensor:{name}]\ntime_interval = 1\n" for name in SENSORS))
    for node in cluster.nodes.values():
        node.extra_args += ["--config", str(conf)]


def get(address: str, port: int, path: str = "/metrics", method: str = "GET",
        headers: dict[str, str] | None = None, source: str | None = None,
        ) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    bind = (source, 0) if source else None
    connection = http.client.HTTPConnection(address, port, timeout=10, source_address=bind)
    try:
        connection.request(method, path, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        connection.close()


def metrics(node: Node) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, _, body = get(node.name, node.cluster.http_port)
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(body.decode()) for s in f.samples}  # fmt: skip


def http_counters(node: Node) -> dict[str, int]:
    return node.counters()["http"]


# -- scraped by Prometheus ------------------------------------------------------------


def test_prometheus_sees_the_whole_cluster_from_one_target(
    make_cluster: ClusterFactory, make_prometheus: MakePrometheus
) -> None:
    cluster = make_cluster([A, B, C], interval=0.3)
    fast_sensors(cluster)
    cluster.start()
    wait_for(cluster.all_up, 10, "all up")
    ta, tb = (f"{n}:{cluster.http_port}" for n in (A, B))
    prom = make_prometheus([ta, tb])
    wait_for(prom.scraped, 30, f"both targets scraped\n{prom.tail()}")

    # One target shows every member.
    wait_for(lambda: prom.values(f'dsh_node_up{{instance="{ta}"}}', by="node")
             == {A: 1.0, B: 1.0, C: 1.0}, 20, "every member up from A")  # fmt: skip
    cpus = prom.values(f'dsh_node_cpus{{instance="{ta}"}}', by="node")
    assert cpus == {n: float(os.cpu_count() or 0) for n in (A, B, C)}
    ages = prom.values(f'dsh_node_last_report_age_seconds{{instance="{ta}"}}', by="node")
    assert all(0 <= age < cluster.interval * cluster.maxloops for age in ages.values()), ages

    # This node's own sensors, under node_exporter's names.
    sensors = wait_for(lambda: prom.values(f'dsh_sensor_up{{instance="{ta}"}} == 1', by="sensor"),
                       20, "sensors up")  # fmt: skip
    wait_for(lambda: len(prom.values(f'dsh_sensor_up{{instance="{ta}"}} == 1', by="sensor"))
             == len(SENSORS), 20, f"every sensor up (so far {sorted(sensors)})")  # fmt: skip
    available = prom.values("node_memory_MemAvailable_bytes")
    total = prom.values("node_memory_MemTotal_bytes")
    assert set(available) == set(total) == {ta, tb}
    assert all(0 < available[t] <= total[t] for t in (ta, tb)), (available, total)
    assert prom.values('dsh_cpus{kind="logical"}') == {t: float(os.cpu_count() or 0)
                                                        for t in (ta, tb)}  # fmt: skip
    assert prom.query(f'node_filesystem_size_bytes{{instance="{ta}",mountpoint="/"}} > 0')
    assert prom.query(f'node_load1{{instance="{ta}"}} >= 0')
    first = prom.values("sum by (instance) (node_cpu_seconds_total)")
    wait_for(lambda: all(v > first[t] for t, v in
                         prom.values("sum by (instance) (node_cpu_seconds_total)").items()),
             20, "CPU seconds rising")  # fmt: skip
    assert prom.values("dsh_build_info", by="node") == {A: 1.0, B: 1.0}

    # SIGHUP while scraped: the reload neither stops the port nor loses a scrape.
    a = cluster.nodes[A]
    served = prom.values(f'dsh_http_requests_total{{outcome="served",instance="{ta}"}}')[ta]
    for done in range(1, 4):
        a.send(signal.SIGHUP)

        def reloaded(done: int = done) -> bool:
            return a.log.read_text().count("cluster reloaded") == done

        wait_for(reloaded, 5, "reloaded")
    wait_for(lambda: prom.values(f'dsh_http_requests_total{{outcome="served",instance="{ta}"}}')
             .get(ta, 0) >= served + 3, 20, "scrapes after the reloads")  # fmt: skip
    assert prom.values(f'min_over_time(up{{instance="{ta}"}}[10s])') == {ta: 1.0}
    assert http_counters(a)["bad_request"] == 0 and http_counters(a)["timeout"] == 0


def test_promtool_accepts_a_real_metrics_body(make_cluster: ClusterFactory, tmp_path: Path) -> None:
    # contrib/install-deps installs it: a machine without it is not set up, not a pass.
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not on PATH: run contrib/install-deps (Debian package prometheus)"
    cluster = make_cluster([A, B])
    fast_sensors(cluster)
    cluster.start()
    wait_for(cluster.all_up, 10, "all up")
    node = cluster.nodes[A]
    wait_for(lambda: ("node_cpu_seconds_total", (("cpu", "0"), ("mode", "idle"))) in metrics(node),
             10, "a CPUTimes reading")  # fmt: skip
    body = get(A, cluster.http_port)[2]
    done = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                          timeout=30)  # fmt: skip
    problems = (done.stdout + done.stderr).decode().splitlines()
    # node_exporter's own memory names (node_memory_MemTotal_bytes) are camelCase:
    # promtool's linter says so for node_exporter too; nothing else may be wrong.
    other = [p for p in problems
             if not (p.startswith("node_memory_") and "camelCase" in p)]  # fmt: skip
    assert done.returncode in (0, 3) and other == [], problems


# -- the protocol, --allow -------------------------------------------------------------


def test_http_answers_and_refuses(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster([A, B])
    # 127.0.0.1 is where the harness asks the status port from; OUTSIDER may ask too.
    cluster.nodes[A].extra_args = ["--allow", "127.0.0.1/32", "--allow", f"{OUTSIDER}/32"]
    cluster.start()
    port, node = cluster.http_port, cluster.nodes[A]
    status, headers, body = get(A, port, headers={"Accept-Encoding": "gzip"}, source=OUTSIDER)
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    assert b"dsh_node_up" in gzip.decompress(body)
    assert get(A, port, "/", source=OUTSIDER)[0] == 200
    assert get(A, port, "/nothing", source=OUTSIDER)[0] == 404
    assert get(A, port, method="POST", source=OUTSIDER)[0] == 405
    status, headers, body = get(A, port, method="HEAD", source=OUTSIDER)
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0
    # keep-alive: two requests on one connection
    connection = http.client.HTTPConnection(A, port, timeout=10, source_address=(OUTSIDER, 0))
    try:
        for _ in range(2):
            connection.request("GET", "/metrics")
            answer = connection.getresponse()
            assert answer.status == 200 and b"dsh_build_info" in answer.read()
    finally:
        connection.close()
    # a member that --allow does not name is refused at once
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        get(A, port, source=B)
    wait_for(lambda: http_counters(node)["denied"] == 1, 5, "the denial counted")
    counts = http_counters(node)
    assert counts["served"] == 5 and counts["not_found"] == 1
    assert counts["method_not_allowed"] == 1


# -- hardening: the gossip goes on ---------------------------------------------------------


def gossip_flows(a: Node, b: Node) -> None:
    """A hears B (accepted datagrams rise) and B sees A up with a small age."""
    before = a.counters()["datagrams"]["accepted"]
    wait_for(lambda: a.counters()["datagrams"]["accepted"] >= before + 3, 10, "A hears B")
    assert b.state_of(a.name) == "up"
    age = metrics(b)[("dsh_node_last_report_age_seconds", (("node", a.name),))]
    assert age < a.cluster.interval * a.cluster.maxloops, age


def answer_of(s: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := s.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return b"".join(chunks)


@pytest.fixture
def pair(make_cluster: ClusterFactory) -> Cluster:
    cluster = make_cluster([A, B], interval=0.2)
    cluster.start()
    wait_for(cluster.all_up, 10, "all up")
    return cluster


def test_garbage_and_oversized_heads(pair: Cluster) -> None:
    a, b, port = pair.nodes[A], pair.nodes[B], pair.http_port
    rng = random.Random(12)
    for i in range(300):
        with socket.create_connection((A, port), timeout=10) as s:
            garbage = rng.randbytes(rng.randrange(1, 3000))
            s.sendall(garbage + (b"\r\n\r\n" if i % 2 else b""))
            s.shutdown(socket.SHUT_WR)
            answer = answer_of(s)
            assert answer == b"" or answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431")), answer
        if i % 100 == 0:
            gossip_flows(a, b)
    with socket.create_connection((A, port), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 20_000 + b"\r\n\r\n")
        assert answer_of(s).startswith(b"HTTP/1.1 431")
    with socket.create_connection((A, port), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 1000 + b"\r\n")
        assert answer_of(s).startswith(b"HTTP/1.1 431")
    gossip_flows(a, b)
    counts = http_counters(a)
    assert counts["bad_request"] >= 150 and counts["too_large"] >= 2, counts
    assert get(A, port)[0] == 200


def test_slowloris_is_closed_at_the_deadline(pair: Cluster) -> None:
    a, b, port = pair.nodes[A], pair.nodes[B], pair.http_port
    closed_after: list[float] = []
    head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nUser-Agent: slow\r\n\r\n"

    def slow() -> None:
        with socket.create_connection((A, port), timeout=30) as s:
            started = time.monotonic()
            try:
                for byte in head:  # a byte a second: the head would take ~50 s
                    s.sendall(bytes([byte]))
                    s.settimeout(1.0)
                    try:
                        s.recv(1024)  # the 408, or the close
                        break
                    except TimeoutError:
                        continue
            except (ConnectionResetError, BrokenPipeError):
                pass
            closed_after.append(time.monotonic() - started)

    threads = [threading.Thread(target=slow, daemon=True) for _ in range(20)]
    for t in threads:
        t.start()
    try:
        gossip_flows(a, b)
        assert get(A, port)[0] == 200  # a well-behaved client meanwhile
        gossip_flows(a, b)
    finally:
        for t in threads:
            t.join(30)
    assert len(closed_after) == 20
    assert all(CLIENT_TIMEOUT - 1 <= t < CLIENT_TIMEOUT + 5 for t in closed_after), closed_after
    assert http_counters(a)["timeout"] >= 20
    assert get(A, port)[0] == 200


def test_3000_idle_connections(pair: Cluster) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    a, b, port = pair.nodes[A], pair.nodes[B], pair.http_port
    idle: list[socket.socket] = []
    try:
        for _ in range(3000):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect((A, port))
            except BlockingIOError:
                pass
            idle.append(s)
        wait_for(lambda: http_counters(a)["busy"] >= 3000 - MAX_CLIENTS - 50, 20,
                 "the flood beyond max_clients turned away")  # fmt: skip
        gossip_flows(a, b)
        gossip_flows(a, b)
    finally:
        for s in idle:
            s.close()
    wait_for(lambda: get(A, port)[0] == 200, 10, "/metrics answers after the flood")
    gossip_flows(a, b)
    counts = http_counters(a)
    print(f"3000 idle connections: {counts}")


def test_idle_keep_alive_connections_make_room_for_a_scrape(pair: Cluster) -> None:
    # Every client slot held by a connection that was answered and is kept
    # alive, waiting for a next request that does not come: a new scrape must
    # still be answered (the longest idle one is closed for it), not get a 503.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    a = pair.nodes[A]
    kept: list[socket.socket] = []
    try:
        for _ in range(MAX_CLIENTS):
            s = socket.create_connection((A, pair.http_port), timeout=5)
            s.sendall(b"HEAD /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = s.recv(4096)
                assert chunk, "closed before the answer"
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200"), answer[:40]
            kept.append(s)
        busy = http_counters(a)["busy"]
        assert get(A, pair.http_port)[0] == 200
        assert http_counters(a)["busy"] == busy
        # The one that made room was closed by the server: it reads EOF.
        closed = 0
        for s in kept:
            s.settimeout(0.0)
            try:
                closed += s.recv(1) == b""
            except BlockingIOError:
                pass
        assert closed >= 1
    finally:
        for s in kept:
            s.close()
