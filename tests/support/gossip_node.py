"""A real GossipNode for unit tests: by default on loopback names that need no DNS."""

from __future__ import annotations

import random

from dsh.core.cluster import parse_cluster
from dsh.core.gossip import GossipNode
from dsh.core.score import score_load

SELF, PEER = "127.0.0.1", "127.0.0.2"


def make_node(
    cluster: str = f"{SELF}\n{PEER}\n",
    name: str = SELF,
    addresses: dict[str, str] | None = None,
    seed: int = 1,
    incarnation: int = 1,
) -> GossipNode:
    """A node of ``cluster`` (cluster-file text) named ``name``; members get the
    ``addresses`` given (by default: every member its own name, an IP address)."""
    specs = parse_cluster(cluster)
    node = GossipNode(
        specs,
        name,
        score_load,
        interval=1.5,
        suspect_after=3.3,
        extraload=1.0,
        extra_reports=2,
        extra_ttl=5.0,
        incarnation=incarnation,
        rng=random.Random(seed),
    )
    if addresses is None:
        addresses = {spec.name: spec.name for spec in specs}
    for member, address in addresses.items():
        node.set_addresses(member, (address,))
    return node
