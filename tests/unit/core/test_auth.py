"""Sealed gossip: the pure parts of issue 4's defences.

Key files are in tests/unit/daemon/test_keys.py, --allow rules in test_access.py."""

from __future__ import annotations

import os
import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsh.core.auth import Sealer, is_sealed, key_id
from dsh.core.cluster import parse_cluster
from dsh.core.gossip import (
    ACCEPTED,
    BAD_AUTH,
    MALFORMED,
    REPLAYED,
    STALE,
    GossipNode,
)
from dsh.core.score import score_load
from dsh.core.wire import State, Usage, decode, encode_state
from dsh.errors import AuthError, WireError

K1, K2 = bytes(range(32)), bytes(range(1, 33))
NOW_MS = 1_800_000_000_000


def state(name: str = "b", seq: int = 1, sent_ms: int = NOW_MS, incarnation: int = 5) -> State:
    return State(name, incarnation, seq, sent_ms, 2, 0.5, 0.5, 1 << 30, 1 << 31)


def test_seal_and_open_round_trip_and_hide_the_state() -> None:
    plain = encode_state(state())
    sealed = Sealer([K1]).seal(plain, b"\x01" * 12)
    assert is_sealed(sealed) and not is_sealed(plain)
    assert plain[4:] not in sealed  # encrypted, not only signed
    assert Sealer([K1]).open(sealed) == plain
    assert decode(Sealer([K2, K1]).open(sealed)) == state()  # any configured key is accepted


@pytest.mark.parametrize("tamper", range(0, 80, 7))
def test_any_changed_byte_is_rejected(tamper: int) -> None:
    sealed = bytearray(Sealer([K1]).seal(encode_state(state()), b"\x02" * 12))
    sealed[tamper % len(sealed)] ^= 0x40
    with pytest.raises(WireError):
        Sealer([K1]).open(bytes(sealed))


def test_wrong_key_plain_and_short_are_auth_errors() -> None:
    sealed = Sealer([K2]).seal(encode_state(state()), b"\x03" * 12)
    for bad in (sealed, encode_state(state()), sealed[:25], b""):
        with pytest.raises(AuthError):
            Sealer([K1]).open(bad)
    assert key_id(K1) != key_id(K2)


@settings(max_examples=300)
@given(data=st.binary(max_size=400))
def test_opening_random_bytes_only_raises_auth_error(data: bytes) -> None:
    with pytest.raises(AuthError):
        Sealer([K1]).open(data)


def node(sealer_keys: list[bytes] | None, window_ms: int = 10_000) -> GossipNode:
    n = GossipNode(
        parse_cluster("a\nb\n"), "a", score_load, interval=1.0, suspect_after=2.2, extraload=1.0,
        extra_reports=2, extra_ttl=4.0, incarnation=1, rng=random.Random(0),
        sealer=Sealer(sealer_keys) if sealer_keys else None, replay_window_ms=window_ms,
    )  # fmt: skip
    n.set_addresses("b", ("10.0.0.2",))
    return n


def test_sealed_node_drops_everything_but_fresh_sealed_reports() -> None:
    n = node([K1])
    seal = Sealer([K1]).seal
    assert n.receive(encode_state(state()), "10.0.0.2", 0.0, NOW_MS) == BAD_AUTH
    assert n.receive(Sealer([K2]).seal(encode_state(state()), os.urandom(12)), "10.0.0.2", 0.0,
                     NOW_MS) == BAD_AUTH  # fmt: skip
    assert n.receive(seal(b"garbage", os.urandom(12)), "10.0.0.2", 0.0, NOW_MS) == MALFORMED
    fresh = seal(encode_state(state(seq=2)), os.urandom(12))
    assert n.receive(fresh, "10.0.0.2", 0.0, NOW_MS + 9_000) == ACCEPTED
    assert n.receive(fresh, "10.0.0.2", 0.1, NOW_MS + 9_000) == STALE  # replayed at once
    old = seal(encode_state(state(seq=3, sent_ms=NOW_MS - 20_000)), os.urandom(12))
    assert n.receive(old, "10.0.0.2", 0.2, NOW_MS) == REPLAYED
    future = seal(encode_state(state(seq=4, sent_ms=NOW_MS + 20_000)), os.urandom(12))
    assert n.receive(future, "10.0.0.2", 0.2, NOW_MS) == REPLAYED


def test_replay_cannot_revive_a_dead_node_even_after_our_restart() -> None:
    seal = Sealer([K1]).seal
    capture = seal(encode_state(state(seq=7, sent_ms=NOW_MS)), os.urandom(12))
    n = node([K1])
    assert n.receive(capture, "10.0.0.2", 0.0, NOW_MS) == ACCEPTED
    # b dies: the capture replayed later is stale (and out of the window).
    assert n.receive(capture, "10.0.0.2", 10.0, NOW_MS + 10_000) == STALE
    # We restart and remember nothing: the window alone rejects it.
    fresh_daemon = node([K1])
    assert fresh_daemon.receive(capture, "10.0.0.2", 0.0, NOW_MS + 10_001) == REPLAYED
    b = fresh_daemon.table.get("b")
    assert b is None or b.state is None


def test_unsealed_node_drops_sealed_datagrams_as_bad_auth() -> None:
    n = node(None)
    sealed = Sealer([K1]).seal(encode_state(state()), os.urandom(12))
    assert n.receive(sealed, "10.0.0.2", 0.0, NOW_MS) == BAD_AUTH
    assert n.receive(encode_state(state(sent_ms=0)), "10.0.0.2", 0.0, NOW_MS) == ACCEPTED


def test_sealed_tick_sends_datagrams_peers_can_open() -> None:
    from dsh.core.gossip import Sample

    n = node([K1])
    ((datagram, address),) = n.tick(Sample(2, 0.1, 0.1, 1 << 30, 1 << 31), 0.0, NOW_MS)
    assert address == "10.0.0.2" and is_sealed(datagram)
    assert decode(Sealer([K1]).open(datagram)).name == "a"


def test_the_envelope_stays_version_1_whatever_it_seals() -> None:
    # A daemon of the previous release (datagrams of version 1 only) must open
    # what a new one seals for it: the envelope's version byte is not the
    # datagram's, and a version-1 datagram comes out as it went in.
    sealer = Sealer([K1])
    usage = Usage(0.5, 0.25, 0.25, 0.0, 1.0, 2.0, 3.0, 4.0, 5, 6)
    for version in (1, 2):
        plain = encode_state(replace(state(), usage=usage), version)
        sealed = sealer.seal(plain, b"\x01" * 12)
        assert sealed[2] == 1 and is_sealed(sealed)
        assert sealer.open(sealed) == plain
