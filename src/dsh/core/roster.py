"""The listed members of a cluster: specs by key, 8-byte ids, and the ring. Immutable.

A node's news of other members names them by id (wire.py), and above the
fan-out threshold a node's monitors are its successors on the ring of ids
(gossip.py). A Roster is built once per cluster file; the simulator shares
one among all its nodes, so that 10,000 nodes do not each hold 10,000 specs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from .cluster import NodeSpec


def member_id(key: str) -> bytes:
    """A member's id on the wire: 8 bytes of BLAKE2b of its name key.

    64 bits: the chance that two of 10,000 names collide is about 3 in 10^12."""
    return hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()


class Ring:
    """Keys in the order of their ids; a node's successors are the next ones."""

    def __init__(self, keys: Iterable[str], ids: dict[str, bytes]) -> None:
        self.keys = sorted(keys, key=ids.__getitem__)
        self.index = {k: i for i, k in enumerate(self.keys)}


class Roster:
    def __init__(self, specs: Iterable[NodeSpec]) -> None:
        self.specs: dict[str, NodeSpec] = {s.key: s for s in specs}
        self.ids: dict[str, bytes] = {k: member_id(k) for k in self.specs}
        self.by_id: dict[bytes, str] = {i: k for k, i in self.ids.items()}
        self.ring = Ring(self.specs, self.ids)

    def __len__(self) -> int:
        return len(self.specs)
