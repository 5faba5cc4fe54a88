"""A real GossipNode for the daemon's unit tests, on loopback names that need no DNS."""

from __future__ import annotations

import random

from dsh.core.cluster import parse_cluster
from dsh.core.gossip import GossipNode
from dsh.core.score import score_load

SELF, PEER = "127.0.0.1", "127.0.0.2"


def make_node() -> GossipNode:
    node = GossipNode(
        parse_cluster(f"{SELF}\n{PEER}\n"),
        SELF,
        score_load,
        dead_after=4.5,
        extraload=1.0,
        extra_reports=2,
        extra_ttl=5.0,
        incarnation=1,
        rng=random.Random(1),
    )
    for name in (SELF, PEER):
        node.set_addresses(name, (name,))
    return node
