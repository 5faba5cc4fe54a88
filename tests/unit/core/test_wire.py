"""The gossip datagram: a lossless round trip, and one exception for every bad input."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsh.core.wire import (
    MAX_DATAGRAM,
    MAX_INCARNATION,
    MAX_NEWS,
    Ask,
    Bid,
    Claim,
    Kind,
    News,
    State,
    Usage,
    decode,
    decode_message,
    encode_message,
    encode_state,
)
from dsh.errors import WireError

# The layout as wire.py's docstring documents it, spelled out here on purpose
# rather than imported, so that a change to the code's layout fails these tests.
DOC_LAYOUT = struct.Struct("!2sBBQIQBHIIQQB")
MAGIC = b"\xd5h"

U32 = 0xFFFFFFFF
U64 = 0xFFFFFFFFFFFFFFFF


def packed(
    name: bytes = b"newton",
    *,
    magic: bytes = MAGIC,
    version: int = 1,
    mtype: int = 1,
    incarnation: int = 1_700_000_000_000,
    seq: int = 7,
    sent_ms: int = 1_700_000_123_456,
    flags: int = 0,
    ncpu: int = 8,
    load: int = 2500,
    load1: int = 1250,
    avail: int = 3 * 2**30,
    total: int = 16 * 2**30,
    namelen: int | None = None,
) -> bytes:
    """A datagram built by hand from the documented layout."""
    return (
        DOC_LAYOUT.pack(
            magic,
            version,
            mtype,
            incarnation,
            seq,
            sent_ms,
            flags,
            ncpu,
            load,
            load1,
            avail,
            total,
            len(name) if namelen is None else namelen,
        )
        + name
    )


def a_state(**changes: object) -> State:
    fields: dict[str, object] = dict(
        name="newton",
        incarnation=1_700_000_000_000,
        seq=7,
        sent_ms=1_700_000_123_456,
        ncpu=8,
        load=2.5,
        load1=1.25,
        mem_avail=3 * 2**30,
        mem_total=16 * 2**30,
        drained=False,
    )
    fields.update(changes)
    return State(**fields)  # type: ignore[arg-type]


def test_hand_packed_datagram_decodes_to_its_fields() -> None:
    state = decode(packed(flags=1))
    assert state == a_state(drained=True)


def test_encode_matches_documented_layout() -> None:
    assert encode_state(a_state()) == packed()
    assert encode_state(a_state(drained=True)) == packed(flags=1)


def test_header_size_and_largest_datagram() -> None:
    # 2+1+1 header, 8+4+8+1+2+4+4+8+8+1 state fields: 52 bytes before the name.
    assert len(encode_state(a_state(name="n"))) == 53
    biggest = encode_state(a_state(name="é" * 127 + "x"))  # 255 UTF-8 bytes
    assert len(biggest) == 52 + 255
    assert len(biggest) < MAX_DATAGRAM
    assert len(biggest) < 1400 // 2  # well under: fits any sane MTU with room to grow


@pytest.mark.parametrize("name", ["é" * 127 + "x", "😀" * 63 + "abc", "x" * 255])
def test_longest_names_round_trip(name: str) -> None:
    assert len(name.encode("utf-8")) == 255
    assert decode(encode_state(a_state(name=name))).name == name


@pytest.mark.parametrize("name", ["", "x" * 256, "é" * 128])
def test_encode_refuses_names_out_of_range(name: str) -> None:
    with pytest.raises(ValueError):
        encode_state(a_state(name=name))


def test_encode_clamps_values_the_wire_cannot_carry() -> None:
    # A sampler bug must not make a datagram the receivers reject.
    state = decode(encode_state(a_state(ncpu=0, load=-1.0, load1=1e12)))
    assert (state.ncpu, state.load, state.load1) == (1, 0.0, U32 / 1000)
    assert decode(encode_state(a_state(ncpu=70000))).ncpu == 0xFFFF


names = (
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=255)
    .map(lambda s: s.encode("utf-8")[:255].decode("utf-8", "ignore"))
    .filter(lambda s: len(s) > 0)
)


@st.composite
def states(draw: st.DrawFn) -> State:
    total = draw(st.integers(0, U64))
    return State(
        name=draw(names),
        incarnation=draw(st.integers(0, MAX_INCARNATION)),
        seq=draw(st.integers(0, U32)),
        sent_ms=draw(st.integers(0, U64)),
        ncpu=draw(st.integers(1, 0xFFFF)),
        # loads travel in thousandths, so only those survive exactly
        load=draw(st.integers(0, U32)) / 1000,
        load1=draw(st.integers(0, U32)) / 1000,
        mem_avail=draw(st.integers(0, total)),
        mem_total=total,
        drained=draw(st.booleans()),
    )


@settings(max_examples=150)
@given(states())
def test_round_trip(state: State) -> None:
    data = encode_state(state)
    assert len(data) == 52 + len(state.name.encode("utf-8"))
    assert decode(data) == state


@settings(max_examples=100)
@given(st.floats(0, U32 / 1000, allow_nan=False))
def test_load_travels_to_a_thousandth(load: float) -> None:
    assert abs(decode(encode_state(a_state(load=load))).load - load) <= 0.0005 + 1e-9


BAD = [
    ("empty", b""),
    ("short header", MAGIC + b"\x01"),
    ("header only", MAGIC + b"\x01\x01"),
    ("one byte short of the fields", packed()[:52]),
    ("truncated name", packed()[:-1]),
    ("trailing byte", packed() + b"\x00"),
    ("namelen says more", packed(namelen=7)),
    ("namelen says less", packed(namelen=5)),
    ("empty name", packed(b"")),
    ("wrong magic", packed(magic=b"\xd5i")),
    ("magic reversed", packed(magic=b"h\xd5")),
    ("version 0", packed(version=0)),
    ("version 2 with a version-1 body", packed(version=2)),
    ("version 3", packed(version=3)),
    ("unknown type 0", packed(mtype=0)),
    ("unknown type 2", packed(mtype=2)),
    ("unknown flag bit 1", packed(flags=0x02)),
    ("unknown flag bit 7", packed(flags=0x81)),
    ("zero CPUs", packed(ncpu=0)),
    ("avail > total", packed(avail=2, total=1)),
    ("name not UTF-8", packed(b"new\xfften")),
    ("name is a lone surrogate", packed(b"\xed\xa0\x80")),
    ("name is overlong UTF-8", packed(b"\xc0\xaf")),
]


@pytest.mark.parametrize("data", [d for _, d in BAD], ids=[i for i, _ in BAD])
def test_strict_decode_rejects(data: bytes) -> None:
    with pytest.raises(WireError):
        decode(data)


def test_limits_are_accepted() -> None:
    # The checks are exact: the values right at each limit decode.
    state = decode(packed(b"x" * 255, ncpu=1, avail=5, total=5, load=U32,
                          incarnation=MAX_INCARNATION, sent_ms=U64))  # fmt: skip
    assert (state.ncpu, state.mem_avail, state.load) == (1, 5, U32 / 1000)
    assert (state.incarnation, state.sent_ms) == (MAX_INCARNATION, U64)
    assert decode(packed(avail=0, total=0)).mem_total == 0


def test_no_version_takes_an_incarnation_version_5_could_not_pass_on() -> None:
    # Nor one that would overflow 48 bits when the node raises it by one to
    # refute a suspicion: ms since the epoch stay below 2^47 until the year 6429.
    assert MAX_INCARNATION + 1 < 2**48
    with pytest.raises(WireError):
        decode(packed(incarnation=MAX_INCARNATION + 1))
    with pytest.raises(WireError):
        decode(packed3(news=DOC_NEWS.pack(ID, MAX_INCARNATION + 1, 1, 2, 0, bytes(8)), count=1))
    too_big = MAX_INCARNATION + 1
    with pytest.raises(WireError):
        decode(packed5(news=DOC_NEWS5.pack(ID, too_big >> 32, too_big & U32, 1, 2 << 14), count=1))
    with pytest.raises(WireError):
        decode(bytes(encode_state(a_state(incarnation=MAX_INCARNATION, usage=USAGE)))[:4]
               + struct.pack("!HI", too_big >> 32, too_big & U32)
               + encode_state(a_state(incarnation=MAX_INCARNATION, usage=USAGE))[10:])  # fmt: skip


def _decodes_or_wire_error(data: bytes) -> None:
    try:
        state = decode(data)
    except WireError:
        return
    # Whatever is accepted is canonical: it encodes back to the very same bytes,
    # so no two datagrams mean the same report and nothing is silently ignored.
    assert encode_state(state, state.version) == data


@settings(max_examples=200)
@given(st.binary(max_size=400))
def test_any_bytes_decode_or_raise_wire_error(data: bytes) -> None:
    _decodes_or_wire_error(data)


@settings(max_examples=200)
@given(st.binary(max_size=320))
def test_any_bytes_after_a_good_header_decode_or_raise_wire_error(tail: bytes) -> None:
    # Random bytes rarely pass the magic; these reach the field checks.
    _decodes_or_wire_error(MAGIC + b"\x01\x01" + tail)


@settings(max_examples=150)
@given(
    states(),
    st.lists(
        st.tuples(st.sampled_from(["flip", "set", "cut", "insert", "append"]), st.integers(0, 400)),
        min_size=1,
        max_size=4,
    ),
    st.integers(0, 255),
)
def test_mutated_datagrams_decode_or_raise_wire_error(
    state: State, edits: list[tuple[str, int]], byte: int
) -> None:
    data = bytearray(encode_state(state))
    for op, where in edits:
        i = where % (len(data) + 1)
        if op == "flip" and i < len(data):
            data[i] ^= 1 << (byte % 8)
        elif op == "set" and i < len(data):
            data[i] = byte
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data.insert(i, byte)
        else:
            data.append(byte)
    _decodes_or_wire_error(bytes(data))


def test_a_flipped_flag_bit_never_slips_through() -> None:
    good = packed()
    flags_at = 4 + 8 + 4 + 8
    for bit in range(1, 8):
        data = bytearray(good)
        data[flags_at] |= 1 << bit
        with pytest.raises(WireError):
            decode(bytes(data))


def test_order_compares_incarnation_before_seq() -> None:
    assert a_state(incarnation=2, seq=0).order > a_state(incarnation=1, seq=U32).order
    assert a_state(incarnation=1, seq=3).order > a_state(incarnation=1, seq=2).order


# -- version 2: the usage between namelen and the name -------------------------

DOC_USAGE = struct.Struct("!HHHHQQQQQQ")
SHARES = (2500, 1250, 6000, 250)  # user, system, idle, iowait in units of 0.01 %
RATES = (4096, 1024, 123_456, 654_321)  # disk read, write; net receive, transmit: bytes/s
USAGE = Usage(0.25, 0.125, 0.6, 0.025, 4096.0, 1024.0, 123_456.0, 654_321.0, 2**20, 2**30)


def packed2(name: bytes = b"newton", shares: tuple[int, ...] = SHARES,
            rates: tuple[int, ...] = RATES, swap: tuple[int, int] = (2**20, 2**30),
            **kw: object) -> bytes:  # fmt: skip
    v1 = packed(name, version=2, **kw)  # type: ignore[arg-type]
    body = v1[: len(v1) - len(name)]
    return body + DOC_USAGE.pack(*shares, *rates, *swap) + name


def test_version_2_hand_packed_decodes_with_its_usage() -> None:
    state = decode(packed2())
    assert state == a_state(usage=USAGE) and state.version == 2
    assert decode(packed()).usage is None and decode(packed()).version == 1


def test_version_2_encodes_as_documented_and_version_1_on_request() -> None:
    assert encode_state(a_state(usage=USAGE), 2) == packed2()
    assert encode_state(a_state(usage=USAGE), 1) == packed()  # for a peer that speaks 1
    with pytest.raises(ValueError):
        encode_state(a_state(), 2)  # version 2 carries usage, or it is not version 2


def test_version_2_sizes() -> None:
    assert len(encode_state(a_state(name="n", usage=USAGE), 2)) == 108 + 1
    biggest = encode_state(a_state(name="x" * 255, usage=USAGE), 2)
    assert len(biggest) == 108 + 255 < 600  # the target, any name the file allows
    assert len(encode_state(a_state(name="node-0042.cluster.example.org", usage=USAGE), 2)) < 150


def test_version_2_shares_are_rounded_down_to_a_whole() -> None:
    # Four shares that each round up must not add up to more than 100 %.
    third = 1 / 3 + 1e-9
    usage = decode(encode_state(a_state(usage=Usage(third, third, third, 0.0, 0, 0, 0, 0, 0, 0))))
    assert usage.usage is not None
    assert sum((usage.usage.cpu_user, usage.usage.cpu_system, usage.usage.cpu_idle)) <= 1.0


BAD2 = [
    ("shares over 100 %", packed2(shares=(5000, 5000, 1, 0))),
    ("swap used > total", packed2(swap=(2, 1))),
    ("truncated usage", packed2()[:60]),
    ("trailing byte", packed2() + b"\x00"),
    ("namelen says more", packed2(namelen=7)),
    ("version 1 with a version-2 body", packed2()[:2] + b"\x01" + packed2()[3:]),
]


@pytest.mark.parametrize("data", [d for _, d in BAD2], ids=[i for i, _ in BAD2])
def test_strict_decode_rejects_version_2(data: bytes) -> None:
    with pytest.raises(WireError):
        decode(data)


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    user, system, idle, iowait = (draw(st.integers(0, 2500)) / 10000 for _ in range(4))
    dread, dwrite, rx, tx = (float(draw(st.integers(0, U64))) for _ in range(4))
    total = draw(st.integers(0, U64))
    used = draw(st.integers(0, total))
    return Usage(user, system, idle, iowait, dread, dwrite, rx, tx, used, total)


@settings(max_examples=150)
@given(states(), usages())
def test_version_2_round_trip(state: State, usage: Usage) -> None:
    full = State(**{**state.__dict__, "usage": usage})
    data = encode_state(full, 2)
    assert len(data) == 108 + len(state.name.encode("utf-8"))
    assert decode(data) == full


@settings(max_examples=150)
@given(st.binary(max_size=400))
def test_any_bytes_after_a_version_2_header_decode_or_raise_wire_error(tail: bytes) -> None:
    _decodes_or_wire_error(MAGIC + b"\x02\x01" + tail)


# -- version 3: the leaving flag and news after the name ----------------------------

DOC_NEWS = struct.Struct("!8sQIBH8s")
ID = bytes(range(1, 9))


def packed3(name: bytes = b"newton", news: bytes = b"", count: int = 0, flags: int = 0) -> bytes:
    v2 = packed2(name, flags=flags)
    return v2[:2] + b"\x03" + v2[3:] + bytes([count]) + news


def test_version_3_hand_packed_decodes_with_its_news() -> None:
    alive = DOC_NEWS.pack(ID, 7, 9, 0, 15, struct.pack("!HHI", 8, 250, 4096))
    suspect = DOC_NEWS.pack(ID, 7, 9, 1, 0, b"suspectr")
    down = DOC_NEWS.pack(ID, 7, 10, 2, 65535, bytes(8))
    state = decode(packed3(news=alive + suspect + down, count=3, flags=2))
    assert state.version == 3 and state.leaving and state.usage == USAGE
    assert state.news == (
        News(ID, 7, 9, Kind.ALIVE, 1.5, 8, 2.5, 4096 * 2**20),
        News(ID, 7, 9, Kind.SUSPECT, 0.0, suspector=b"suspectr"),
        News(ID, 7, 10, Kind.DOWN, 6553.5),
    )
    assert encode_state(state, 3) == packed3(news=alive + suspect + down, count=3, flags=2)
    assert len(packed3(news=alive, count=1)) == 108 + len(b"newton") + 1 + 31


def test_leaving_and_news_exist_from_version_3_only() -> None:
    leaving = State(**{**a_state(usage=USAGE).__dict__, "leaving": True})
    assert not decode(encode_state(leaving, 2)).leaving  # not in the old layout
    with pytest.raises(WireError):
        decode(packed2(flags=2))  # the bit is unknown to version 2


BAD3 = [
    ("news count says more", packed3(count=1)),
    ("trailing byte", packed3() + b"\x00"),
    ("no news count", packed3()[:-1]),
    ("unknown kind", packed3(news=DOC_NEWS.pack(ID, 1, 1, 4, 0, bytes(8)), count=1)),
    ("alive with zero CPUs", packed3(news=DOC_NEWS.pack(ID, 1, 1, 0, 0, bytes(8)), count=1)),
    ("too many entries", packed3(news=DOC_NEWS.pack(ID, 1, 1, 2, 0, bytes(8)) * 31, count=31)),
]


@pytest.mark.parametrize("data", [d for _, d in BAD3], ids=[i for i, _ in BAD3])
def test_strict_decode_rejects_version_3(data: bytes) -> None:
    with pytest.raises(WireError):
        decode(data)


@st.composite
def news_entries(draw: st.DrawFn) -> News:
    kind = Kind(draw(st.integers(0, 3)))
    member = draw(st.binary(min_size=8, max_size=8))
    head = (member, draw(st.integers(0, MAX_INCARNATION)), draw(st.integers(0, U32)), kind,
            draw(st.integers(0, 65535)) / 10)  # fmt: skip
    if kind == Kind.ALIVE:
        return News(*head, draw(st.integers(1, 65535)), draw(st.integers(0, 65535)) / 100,
                    draw(st.integers(0, U32)) * 2**20)  # fmt: skip
    if kind == Kind.SUSPECT:
        return News(*head, suspector=draw(st.binary(min_size=8, max_size=8)))
    return News(*head)


@settings(max_examples=150)
@given(states(), usages(), st.lists(news_entries(), max_size=MAX_NEWS), st.booleans())
def test_version_3_round_trip(state: State, usage: Usage, news: list[News], leaving: bool) -> None:
    full = State(**{**state.__dict__, "usage": usage, "news": tuple(news), "leaving": leaving})
    data = encode_state(full, 3)
    assert len(data) == 108 + len(state.name.encode("utf-8")) + 1 + 31 * len(news)
    assert len(data) <= MAX_DATAGRAM
    back = decode(data)
    assert back == full and back.news == tuple(news) and back.leaving == leaving


@settings(max_examples=150)
@given(st.binary(max_size=1400))
def test_any_bytes_after_a_version_3_header_decode_or_raise_wire_error(tail: bytes) -> None:
    _decodes_or_wire_error(MAGIC + b"\x03\x01" + tail)


# -- version 4: the same state; ASK, BID and CLAIM --------------------------------

DOC_ASK = struct.Struct("!2sBBIQB")
DOC_BID = struct.Struct("!2sBBIQHIIIQB")
DOC_CLAIM = struct.Struct("!2sBBIQIB")


def test_version_4_state_is_version_3_with_another_number() -> None:
    v3 = packed3(flags=4)
    v4 = v3[:2] + b"\x04" + v3[3:]
    state = decode(v4)
    assert state.version == 4 and state.probe
    assert decode(v3) == state
    assert encode_state(state, 4) == v4
    assert decode_message(v4) == state


def test_small_messages_hand_packed_decode_to_their_fields() -> None:
    ask = DOC_ASK.pack(MAGIC, 4, 3, 0xDEADBEEF, 1_700_000_000_123, 6) + b"newton"
    assert decode_message(ask) == Ask("newton", 0xDEADBEEF, 1_700_000_000_123)
    bid = DOC_BID.pack(MAGIC, 4, 4, 7, 99, 8, 2500, 1250, 3000, 8 * 2**30, 4) + b"gali"
    assert decode_message(bid) == Bid("gali", 7, 99, 8, 2.5, 1.25, 3.0, 8 * 2**30)
    claim = DOC_CLAIM.pack(MAGIC, 4, 5, 7, 99, 1000, 2) + b"ke"
    assert decode_message(claim) == Claim("ke", 7, 99, 1.0)
    for message, data in ((Ask("newton", 0xDEADBEEF, 1_700_000_000_123), ask),
                          (Bid("gali", 7, 99, 8, 2.5, 1.25, 3.0, 8 * 2**30), bid),
                          (Claim("ke", 7, 99, 1.0), claim)):  # fmt: skip
        assert encode_message(message) == data
        with pytest.raises(WireError):
            decode(data)  # the state decoder takes states only


BAD_SMALL = [
    ("in version 3", DOC_ASK.pack(MAGIC, 3, 3, 1, 2, 1) + b"n"),
    ("in version 5", DOC_ASK.pack(MAGIC, 5, 3, 1, 2, 1) + b"n"),  # their layout is version 4's
    ("unknown version", DOC_ASK.pack(MAGIC, 9, 3, 1, 2, 1) + b"n"),
    ("bad magic", DOC_ASK.pack(b"xx", 4, 3, 1, 2, 1) + b"n"),
    ("empty name", DOC_ASK.pack(MAGIC, 4, 3, 1, 2, 0)),
    ("name longer than said", DOC_ASK.pack(MAGIC, 4, 3, 1, 2, 1) + b"nn"),
    ("name shorter than said", DOC_ASK.pack(MAGIC, 4, 3, 1, 2, 3) + b"n"),
    ("short", DOC_ASK.pack(MAGIC, 4, 3, 1, 2, 1)[:10]),
    ("zero CPUs", DOC_BID.pack(MAGIC, 4, 4, 1, 2, 0, 0, 0, 0, 0, 1) + b"n"),
    ("not UTF-8", DOC_CLAIM.pack(MAGIC, 4, 5, 1, 2, 3, 1) + b"\xff"),
]


@pytest.mark.parametrize("data", [d for _, d in BAD_SMALL], ids=[w for w, _ in BAD_SMALL])
def test_strict_decode_rejects_small_messages(data: bytes) -> None:
    with pytest.raises(WireError):
        decode_message(data)


@settings(max_examples=300)
@given(st.sampled_from([3, 4, 5]), st.binary(max_size=80))
def test_any_bytes_after_a_small_message_header_decode_or_raise_wire_error(
    mtype: int, tail: bytes
) -> None:
    try:
        decode_message(MAGIC + bytes([4, mtype]) + tail)
    except WireError:
        pass


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**63), st.integers(1, 0xFFFF),
       st.floats(0, 1000), st.floats(0, 1000), st.integers(0, 2**40))  # fmt: skip
def test_bid_round_trip(nonce: int, sent_ms: int, ncpu: int, load: float, promised: float,
                        avail: int) -> None:  # fmt: skip
    got = decode_message(encode_message(Bid("n", nonce, sent_ms, ncpu, load, load, promised,
                                            avail)))  # fmt: skip
    assert isinstance(got, Bid)
    assert (got.nonce, got.sent_ms, got.ncpu, got.mem_avail) == (nonce, sent_ms, ncpu, avail)
    assert abs(got.load - load) <= 0.0005 and abs(got.promised - promised) <= 0.0005


# -- version 5: the same in fewer bytes, and brief datagrams -------------------------

DOC_STATE5 = struct.Struct("!2sBBHIIHIBHIIIIB")
DOC_USAGE5 = struct.Struct("!HHHHffffII")
DOC_NEWS5 = struct.Struct("!8sHIIH")
INCARNATION = 1_700_000_000_000  # ms since the epoch: needs more than 32 bits
MiB = 2**20


def packed5(name: bytes = b"newton", *, flags: int = 0, usage: bytes | None = None,
            news: bytes = b"", count: int = 0, avail: int = 3 * 1024,
            total: int = 16 * 1024, ncpu: int = 8) -> bytes:  # fmt: skip
    """A version-5 datagram built by hand from the documented layout."""
    if usage is None and not flags & 0x08:
        usage = DOC_USAGE5.pack(*SHARES, *map(float, RATES), 1, 1024)
    head = DOC_STATE5.pack(MAGIC, 5, 1, INCARNATION >> 32, INCARNATION & U32, 7,
                           1_700_000_123_456 >> 32, 1_700_000_123_456 & U32, flags, ncpu,
                           2500, 1250, avail, total, len(name))  # fmt: skip
    return head + name + (usage or b"") + bytes([count]) + news


def alive5(incarnation: int = INCARNATION, age: int = 15) -> bytes:
    return DOC_NEWS5.pack(ID, incarnation >> 32, incarnation & U32, 9, 0 << 14 | age) + (
        struct.pack("!HHI", 8, 250, 4096)
    )


def test_version_5_hand_packed_decodes_to_the_same_report() -> None:
    suspect = DOC_NEWS5.pack(ID, 0, 7, 9, 1 << 14) + b"suspectr"
    down = DOC_NEWS5.pack(ID, 0, 7, 10, 2 << 14 | 0x3FFF)
    data = packed5(news=alive5() + suspect + down, count=3, flags=2)
    state = decode(data)
    assert state.version == 5 and state.leaving and not state.brief
    assert state == a_state(incarnation=INCARNATION, usage=USAGE, leaving=True)
    assert state.news == (
        News(ID, INCARNATION, 9, Kind.ALIVE, 1.5, 8, 2.5, 4096 * MiB),
        News(ID, 7, 9, Kind.SUSPECT, 0.0, suspector=b"suspectr"),
        News(ID, 7, 10, Kind.DOWN, 1638.3),
    )
    assert encode_state(state) == data  # the newest by default
    assert decode(encode_state(state, 4)) == state  # and the same report in version 4


def test_version_5_sizes() -> None:
    usage = a_state(name="node00123", incarnation=INCARNATION, usage=USAGE)
    news = (News(ID, INCARNATION, 9, Kind.ALIVE, 1.5, 8, 2.5, 4096 * MiB),) * 6
    report = State(**{**usage.__dict__, "news": news})
    assert (len(encode_state(report, 4)), len(encode_state(report))) == (304, 250)
    probe = State(**{**usage.__dict__, "probe": True, "brief": True})
    assert (len(encode_state(probe, 4)), len(encode_state(probe))) == (118, 50)
    down = State(**{**probe.__dict__, "news": (News(ID, 1, 1, Kind.DOWN, 0.0),)})
    assert len(encode_state(down)) == 50 + 1 * 20  # no tail for a down or left member
    biggest = State(**{**report.__dict__, "name": "x" * 255, "news": news[:1] * MAX_NEWS})
    assert len(encode_state(biggest)) == 4 + 36 + 255 + 32 + 1 + 28 * MAX_NEWS <= MAX_DATAGRAM


def test_a_brief_datagram_has_no_usage_and_older_versions_no_brief() -> None:
    brief = State(**{**a_state(usage=USAGE).__dict__, "brief": True})
    back = decode(encode_state(brief))
    assert back.brief and back.usage is None and back == a_state()
    assert encode_state(brief) == packed5(flags=0x08)
    assert decode(encode_state(brief, 4)).usage == USAGE  # version 4 always carries it
    with pytest.raises(ValueError):
        encode_state(a_state(), 5)  # neither usage nor brief


def test_version_5_rounds_memory_to_mib_and_rates_to_float32() -> None:
    odd = Usage(0.1, 0.2, 0.3, 0.4, 1 / 3, 1e30, float("nan"), -5.0, 3 * MiB + 1, 4 * MiB - 1)
    state = decode(encode_state(a_state(mem_avail=MiB - 1, mem_total=MiB + 1, usage=odd)))
    assert (state.mem_avail, state.mem_total) == (0, MiB)
    assert state.usage is not None
    u = state.usage
    assert abs(u.disk_read - 1 / 3) < 1e-7 and abs(u.disk_write - 1e30) / 1e30 < 1e-7
    assert (u.net_receive, u.net_transmit) == (0.0, 0.0)  # sampler bugs, not rejected datagrams
    assert (u.swap_used, u.swap_total) == (3 * MiB, 3 * MiB)  # used <= total after rounding
    with pytest.raises(ValueError):
        encode_state(a_state(incarnation=2**48, usage=USAGE))


# Its first byte is 0, read as an empty news count when the brief flag says no usage.
NO_RATES = DOC_USAGE5.pack(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
BAD5 = [
    ("unknown flag bit 4", packed5(flags=0x10)),
    ("trailing byte", packed5() + b"\x00"),
    ("no news count", packed5()[:-1]),
    ("truncated usage", packed5()[:60]),
    ("news count says more", packed5(count=1)),
    ("alive without its tail", packed5(news=alive5()[:20], count=1)),
    ("alive with zero CPUs", packed5(news=alive5()[:20] + bytes(8), count=1)),
    ("too many entries", packed5(news=DOC_NEWS5.pack(ID, 0, 1, 1, 2 << 14) * 31, count=31)),
    ("negative rate", packed5(usage=DOC_USAGE5.pack(*SHARES, -1.0, 0.0, 0.0, 0.0, 0, 0))),
    ("negative zero", packed5(usage=DOC_USAGE5.pack(*SHARES, -0.0, 0.0, 0.0, 0.0, 0, 0))),
    ("infinite rate", packed5(usage=DOC_USAGE5.pack(*SHARES, float("inf"), 0.0, 0.0, 0.0, 0, 0))),
    ("NaN rate", packed5(usage=DOC_USAGE5.pack(*SHARES, float("nan"), 0.0, 0.0, 0.0, 0, 0))),
    ("shares over 100 %", packed5(usage=DOC_USAGE5.pack(5000, 5000, 1, 0, 0, 0, 0, 0, 0, 0))),
    ("swap used > total", packed5(usage=DOC_USAGE5.pack(*SHARES, 0, 0, 0, 0, 2, 1))),
    ("avail > total", packed5(avail=2, total=1)),
    ("zero CPUs", packed5(ncpu=0)),
    ("empty name", packed5(b"")),
    ("name not UTF-8", packed5(b"new\xfften")),
]


@pytest.mark.parametrize("data", [d for _, d in BAD5], ids=[i for i, _ in BAD5])
def test_strict_decode_rejects_version_5(data: bytes) -> None:
    with pytest.raises(WireError):
        decode(data)


def test_brief_with_usage_is_rejected_for_its_length() -> None:
    with pytest.raises(WireError, match="length"):
        decode(packed5(flags=0x08, usage=NO_RATES))
    assert decode(packed5(flags=0x08)).brief  # the same without the usage


def test_rates_beyond_float32_encode_as_its_largest_and_read_back_the_same() -> None:
    biggest = struct.unpack("!f", b"\x7f\x7f\xff\xff")[0]
    for rate in (float("inf"), 1e39, biggest, 3.4e38, 1 / 3):
        data = encode_state(a_state(usage=Usage(0.1, 0.2, 0.3, 0.4, rate, 0, 0, 0, 0, 0)))
        back = decode(data)
        assert back.usage is not None
        assert back.usage.disk_read == struct.unpack("!f", struct.pack("!f", min(rate, biggest)))[0]
        assert encode_state(back) == data  # canonical: read back, the same bytes


@st.composite
def usages5(draw: st.DrawFn) -> Usage:
    # what version 5 carries exactly: float32 rates, swap in MiB
    user, system, idle, iowait = (draw(st.integers(0, 2500)) / 10000 for _ in range(4))
    dread, dwrite, rx, tx = (draw(st.floats(0.0, 2.0**127, width=32)) for _ in range(4))
    total = draw(st.integers(0, U32))
    used = draw(st.integers(0, total))
    return Usage(user, system, idle, iowait, dread, dwrite, rx, tx, used * MiB, total * MiB)


@settings(max_examples=150)
@given(states(), usages5(), st.lists(news_entries(), max_size=MAX_NEWS), st.booleans(),
       st.booleans(), st.integers(0, MAX_INCARNATION), st.integers(0, 2**48 - 1))  # fmt: skip
def test_version_5_round_trip(state: State, usage: Usage, news: list[News], leaving: bool,
                              brief: bool, incarnation: int, sent_ms: int) -> None:  # fmt: skip
    total = state.mem_total % 2**32 * MiB
    news5 = tuple(dataclasses.replace(n, age=min(n.age, 1638.3)) for n in news)
    full = dataclasses.replace(state, usage=usage, news=news5, leaving=leaving, brief=brief,
                               incarnation=incarnation, sent_ms=sent_ms, mem_total=total,
                               mem_avail=min(state.mem_avail // MiB * MiB, total))  # fmt: skip
    data = encode_state(full)
    tails = sum(8 for n in news5 if n.kind in (Kind.ALIVE, Kind.SUSPECT))
    name = len(state.name.encode("utf-8"))
    assert len(data) == 4 + 36 + name + (0 if brief else 32) + 1 + 20 * len(news5) + tails
    back = decode(data)
    assert back.news == news5 and back.leaving == leaving and back.brief == brief
    assert back == (dataclasses.replace(full, usage=None) if brief else full)


@settings(max_examples=200)
@given(st.binary(max_size=1400))
def test_any_bytes_after_a_version_5_header_decode_or_raise_wire_error(tail: bytes) -> None:
    _decodes_or_wire_error(MAGIC + b"\x05\x01" + tail)


@settings(max_examples=300)
@given(st.integers(0, 6), st.binary(max_size=200))
def test_any_news_bytes_after_a_good_version_5_report_decode_or_raise_wire_error(
    count: int, tail: bytes
) -> None:
    # Past the fixed part, so that the news decoder and the canonical check run.
    _decodes_or_wire_error(packed5()[:-1] + bytes([count]) + tail)
    _decodes_or_wire_error(packed5(flags=0x08)[:-1] + bytes([count]) + tail)


def test_version_5_mutated_datagrams_decode_or_raise_wire_error() -> None:
    # Every single-byte change of a report with news of every kind: each decodes
    # to something canonical, or is rejected; nothing else escapes.
    suspect = DOC_NEWS5.pack(ID, 0, 7, 9, 1 << 14) + b"suspectr"
    good = packed5(news=alive5() + suspect + DOC_NEWS5.pack(ID, 0, 7, 10, 3 << 14), count=3)
    for i in range(len(good)):
        for value in (0, 1, 0x7F, 0x80, 0xFF, good[i] ^ 0x08):
            data = bytearray(good)
            data[i] = value
            _decodes_or_wire_error(bytes(data))
        _decodes_or_wire_error(good[:i])
