"""Three real hosts: dshd in network namespaces on a bridge, found by its own address.

Needs root (namespaces, a bridge, nftables). The subnet 10.251.0.0/24
exists only on the bridge this test creates (tests/support/netns.py);
everything is removed after.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.netns import Hosts, root_reason
from support.waiting import wait_for

pytestmark = pytest.mark.skipif(root_reason() is not None, reason=str(root_reason()))


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    bed = Hosts(tmp_path, 3, net="10.251.0")
    try:
        bed.open()
        cluster = tmp_path / "cluster"
        cluster.write_text("".join(f"{bed.address(i)}\n" for i in bed.numbers))
        for i in bed.numbers:
            bed.run_dshd(i, "-f", str(cluster), "--interval", "0.2", "--no-key", "-v")
        yield bed
    finally:
        bed.close()


def test_hosts_find_themselves_gossip_survive_loss_and_partition(hosts: Hosts) -> None:
    a1, a2, a3 = (hosts.address(i) for i in (1, 2, 3))
    wait_for(lambda: hosts.all_see([1, 2, 3]), 20, "three namespaced hosts up everywhere")
    # Each daemon found its own entry by its interface address (no --name).
    for i in (1, 2, 3):
        assert f"# self {hosts.address(i)}" in hosts.status_text(i)
    # 30% of incoming gossip lost on host 3: it still sees its peers nearly always.
    hosts.rule(3, "input", f"udp dport {hosts.port} numgen random mod 100 '<' 30 drop")
    samples = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        seen = hosts.states(3)
        samples.append(seen[a1] == "up" and seen[a2] == "up")
        time.sleep(0.1)  # the sampling period over 5 s, not a wait for anything
    print(f"with 30% loss, host 3 saw both peers up in {sum(samples)}/{len(samples)} samples")
    assert sum(samples) >= 0.75 * len(samples)  # expected ~95%: 3 losses in a row
    # A partition: host 3 neither hears nor is heard.
    hosts.clear(3)
    hosts.partition(3)
    wait_for(lambda: hosts.states(1)[a3] == "down", 5, "host 3 down at host 1")
    wait_for(lambda: hosts.states(3)[a1] == "down", 5, "host 1 down at host 3")
    assert hosts.best(1) in (a1, a2)
    hosts.clear(3)
    wait_for(lambda: hosts.all_see([1, 2, 3]), 10, "healed")
