"""Three real hosts: dshd in network namespaces on a bridge, found by its own address.

Needs root (namespaces, a bridge, nftables). The subnet 10.251.0.0/24
exists only on the bridge this test creates; everything is removed after.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.dshd import ask
from support.paths import DSHD
from support.waiting import wait_for

from dsh.core.status import parse_status

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="nftables (nft) is not installed"),
]

NET = "10.251.0"
BRIDGE = "dshtbr0"
NAMESPACES = ["dsht1", "dsht2", "dsht3"]
PORT = 18181


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=check)


def teardown() -> None:
    for ns in NAMESPACES:
        sh("ip", "netns", "del", ns, check=False)
    sh("ip", "link", "del", BRIDGE, check=False)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Path]:
    teardown()  # leftovers of an interrupted run
    processes: list[subprocess.Popen[bytes]] = []
    try:
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", f"{NET}.254/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        for i, ns in enumerate(NAMESPACES, start=1):
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", f"dshtv{i}", "type", "veth", "peer", "name", "eth0",
               "netns", ns)  # fmt: skip
            sh("ip", "link", "set", f"dshtv{i}", "master", BRIDGE, "up")
            sh("ip", "-n", ns, "addr", "add", f"{NET}.{i}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        cluster = tmp_path / "cluster"
        cluster.write_text("".join(f"{NET}.{i}\n" for i in range(1, 4)))
        for ns in NAMESPACES:
            with open(tmp_path / f"{ns}.log", "wb") as log:
                processes.append(subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, str(DSHD), "-f", str(cluster),
                 "-u", str(PORT), "-t", str(PORT), "-r", str(PORT + 1), "--interval", "0.2",
                 "--control", str(tmp_path / f"{ns}.ctl"), "--no-key",
                 "--allow", f"{NET}.0/24", "-v"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                ))  # fmt: skip
        yield tmp_path
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        teardown()


def states(i: int) -> dict[str, str]:
    return {n.name: n.state for n in parse_status(ask(f"{NET}.{i}", PORT)).nodes}


def all_up() -> bool:
    return all(set(states(i).values()) == {"up"} for i in (1, 2, 3))


def nft(ns: str, *rules: str) -> None:
    sh("ip", "netns", "exec", ns, "nft", "add", "table", "inet", "dsht")
    for hook in ("input", "output"):
        sh("ip", "netns", "exec", ns, "nft", "add", "chain", "inet", "dsht", hook,
           f"{{ type filter hook {hook} priority 0; }}")  # fmt: skip
    for rule in rules:
        sh("ip", "netns", "exec", ns, "sh", "-c", f"nft add rule inet dsht {rule}")


def test_hosts_find_themselves_gossip_survive_loss_and_partition(hosts: Path) -> None:
    wait_for(all_up, 20, "three namespaced hosts up everywhere")
    # Each daemon found its own entry by its interface address (no --name).
    for i in (1, 2, 3):
        text = ask(f"{NET}.{i}", PORT)
        assert f"# self {NET}.{i}" in text
    # 30% of incoming gossip lost on host 3: it still sees its peers nearly always.
    nft("dsht3", f"input udp dport {PORT} numgen random mod 100 '<' 30 drop")
    samples = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        seen = states(3)
        samples.append(seen[f"{NET}.1"] == "up" and seen[f"{NET}.2"] == "up")
        time.sleep(0.1)  # the sampling period over 5 s, not a wait for anything
    print(f"with 30% loss, host 3 saw both peers up in {sum(samples)}/{len(samples)} samples")
    assert sum(samples) >= 0.75 * len(samples)  # expected ~95%: 3 losses in a row
    # A partition: host 3 neither hears nor is heard.
    sh("ip", "netns", "exec", "dsht3", "nft", "delete", "table", "inet", "dsht")
    nft("dsht3", f"input udp dport {PORT} drop", f"output udp dport {PORT} drop")
    wait_for(lambda: states(1)[f"{NET}.3"] == "down", 5, "host 3 down at host 1")
    wait_for(lambda: states(3)[f"{NET}.1"] == "down", 5, "host 1 down at host 3")
    assert ask(f"{NET}.1", PORT + 1).strip() in (f"{NET}.1", f"{NET}.2")
    sh("ip", "netns", "exec", "dsht3", "nft", "delete", "table", "inet", "dsht")
    wait_for(all_up, 10, "healed")
