"""The gossip datagram: encode and decode, strict and versioned, no I/O.

Rules of this file:

* The layout is part of the wire protocol. ``MessageType`` values are
  append-only; a change to a layout is a new ``VERSION``.
* ``decode`` accepts exactly one layout per (version, type) and nothing else:
  short, long or trailing bytes, unknown versions or types, impossible values.
  Every failure is a ``WireError``; nothing else may escape, whatever the bytes.

Layout (network byte order), version 1: 52 bytes plus the name::

    magic    2s  b"\\xd5h"
    version  B   1
    type     B   MessageType.STATE
    incarn   Q   sender's start time, ms since the epoch: a restart moves forward
    seq      I   counts up within one incarnation
    sent_ms  Q   sender's wall clock when sent, ms (freshness checks)
    flags    B   bit 0: the node is drained
    ncpu     H   logical CPUs, >= 1
    load     I   effective load x 1000 (see sampler.py)
    load1    I   1-minute load average x 1000
    avail    Q   available memory, bytes
    total    Q   total memory, bytes
    namelen  B   1..255
    name     *   UTF-8, the sender's name as written in the cluster file

Version 2 (108 bytes plus the name) is version 1 with ``Usage`` between
``namelen`` and ``name``::

    user, system, idle, iowait   4 x H   shares of all CPUs' time x 10000, sum <= 10000
    disk_read, disk_write        2 x Q   bytes/s
    net_receive, net_transmit    2 x Q   bytes/s
    swap_used, swap_total        2 x Q   bytes, used <= total

Version 3 is version 2 with flag bits 1 (the node is leaving: it stopped
cleanly) and 2 (a probe: the receiver should answer at once, SWIM's ping)
and, after the name, news of other members (gossip.py)::

    nnews    B   0..MAX_NEWS entries of 31 bytes each:
      id       8s  member_id(name key) (roster.py)
      incarn   Q   that member's incarnation ...
      seq      I   ... and sequence number the news is about
      kind     B   ALIVE, SUSPECT, DOWN or LEFT (News)
      age      H   how old the news was when sent, 0.1 s, rounded up
      tail     8s  ALIVE: ncpu H, load x 100 H, available memory MiB I;
                   SUSPECT: the suspecting member's id; DOWN, LEFT: zeros

Version 4 sends the same state datagram as version 3. A node that sends it
also answers the best-node question, three small messages (gossip.py, "Asking
before choosing")::

    ASK      nonce I, sent_ms Q, namelen B, name           how loaded are you now?
    BID      nonce I, sent_ms Q, ncpu H, load I, load1 I,  the answer: the last
             promised I, avail Q, namelen B, name          sample, and the jobs
                                                           promised to it since (x 1000)
    CLAIM    nonce I, sent_ms Q, amount I, namelen B, name  a job is on its way to you

``nonce`` ties a BID to its ASK and makes a CLAIM count once; ``name`` is the
sender's. A node of an older release drops them as an unknown type, and is
not asked.

Version 5 says the same in fewer bytes, and may leave the usage out: 250
instead of 304 for a report with six news entries and a 9-byte name, 50
instead of 118 for a probe without news::

    magic 2s, version B (5), type B
    incarn   6   48 bits (H then I): ms since the epoch reach 2^48 in the year 10889
    seq      I
    sent_ms  6   48 bits
    flags    B   bits 0-2 as in version 3; bit 3: brief, no usage in this datagram
    ncpu H, load I, load1 I  as in version 1
    avail    I   available memory, MiB
    total    I   total memory, MiB
    namelen  B, name
    usage    32  unless brief: the four shares as in version 2 (4 x H); disk
                 read, write, net receive, transmit as float32 bytes/s (4 x f);
                 swap used, total in MiB (2 x I)
    nnews    B   0..MAX_NEWS entries:
      id 8s, incarn 6 (48 bits), seq I,
      kind_age H  kind in the top 2 bits, age in 0.1 s in the low 14 (at most
                  1,638.3 s: older news says "at least that old")
      tail     8s ALIVE and SUSPECT only, as in version 3; DOWN and LEFT have none

A brief datagram is what a node sends between its reports (probes, their
answers, urgent news): its usage is the one of its last full report, which
the receiver keeps.

A rolling upgrade: ``decode`` takes every version; a daemon sends each peer
the version that peer last sent (gossip.py), the newest to a peer not heard
yet, so a daemon of an older release, which drops the newer versions, is
answered in its own from its first report on.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from enum import IntEnum

from ..errors import WireError

MAGIC = b"\xd5h"
VERSION = 5  # what this daemon sends unless a peer speaks an older one
VERSIONS = (1, 2, 3, 4, 5)  # what it decodes
NEWS_FROM = 3  # the first version with news of other members
ASKS_FROM = 4  # the first version whose senders answer ASK
COMPACT_FROM = 5  # the first version of the compact layout, with brief datagrams
MAX_DATAGRAM = 1400  # what a receiver reads; a state datagram is at most 1,294 bytes
MAX_NEWS = 30  # news entries a datagram may carry (gossip.py sends at most 6)
# The largest incarnation any version takes (ms since the epoch: the year 6429).
# Version 5 carries 48 bits, and a node raises its own incarnation by one to
# refute a suspicion of it: a larger one from an older release, or relayed
# in its news, would leave this node unable to send it on, or itself unable
# to send at all.
MAX_INCARNATION = 1 << 47


class MessageType(IntEnum):
    """Append-only: these numbers are on the wire."""

    STATE = 1
    SEALED = 2  # a datagram sealed with the cluster key (auth.py)
    ASK = 3  # version 4 on: how loaded are you now? (a best-node question)
    BID = 4  # the answer to an ASK
    CLAIM = 5  # the asker chose this node: a job is on its way


FLAG_DRAINED = 0x01
FLAG_LEAVING = 0x02  # version 3 on: the node is stopping and says so
FLAG_PROBE = 0x04  # version 3 on: the sender has no fresh news of the receiver; answer
FLAG_BRIEF = 0x08  # version 5 on: no usage here; the sender's last full report's stands
_KNOWN_FLAGS = {1: FLAG_DRAINED, 2: FLAG_DRAINED, 3: FLAG_DRAINED | FLAG_LEAVING | FLAG_PROBE}
_KNOWN_FLAGS[4] = _KNOWN_FLAGS[3]
_KNOWN_FLAGS[5] = _KNOWN_FLAGS[3] | FLAG_BRIEF

_HEADER = struct.Struct("!2sBB")
_STATE = struct.Struct("!QIQBHIIQQB")
_USAGE = struct.Struct("!HHHHQQQQQQ")
_NEWS = struct.Struct("!8sQIBH8s")
_ALIVE_TAIL = struct.Struct("!HHI")
_ASK = struct.Struct("!IQB")
_BID = struct.Struct("!IQHIIIQB")
_CLAIM = struct.Struct("!IQIB")
_STATE5 = struct.Struct("!HIIHIBHIIIIB")  # version 5: 48-bit times, memory in MiB
_USAGE5 = struct.Struct("!HHHHffffII")  # version 5: rates as float32, swap in MiB
_NEWS5 = struct.Struct("!8sHIIH")  # version 5, DOWN and LEFT
_NEWS5_TAILED = struct.Struct("!8sHIIH8s")  # version 5, ALIVE and SUSPECT
_TAIL = 8
_AGE_BITS = 14  # version 5 news: the age's bits below the kind's two
_MAX_AGE5 = (1 << _AGE_BITS) - 1
_U32 = 0xFFFFFFFF
_FLOAT32_MAX = struct.unpack("!f", b"\x7f\x7f\xff\xff")[0]  # the largest finite float32
_SHARE = 10000  # CPU shares on the wire: units of 0.01 %
MIB = 1024 * 1024


class Kind(IntEnum):
    """What a news entry says of a member. Append-only: on the wire."""

    ALIVE = 0  # heard at (incarnation, seq), ``age`` ago; with its load
    SUSPECT = 1  # a monitor has had no fresh news of it since (incarnation, seq)
    DOWN = 2  # declared down after the suspicion timeout
    LEFT = 3  # stopped cleanly


_KINDS = tuple(Kind)


@dataclass(frozen=True)
class News:
    """One entry of a version-3 datagram: what the sender knows of another member."""

    member: bytes  # the member's 8-byte id
    incarnation: int
    seq: int
    kind: Kind
    age: float  # seconds, at the sender
    ncpu: int = 0  # ALIVE only: the member's last known load
    load: float = 0.0
    mem_avail: int = 0  # bytes, MiB precision
    suspector: bytes = bytes(8)  # SUSPECT only

    @property
    def order(self) -> tuple[int, int]:
        return (self.incarnation, self.seq)


@dataclass(frozen=True)
class Usage:
    """What a cluster view shows of a node beyond load and memory (datagram version 2).

    Rates and shares are over the sender's last report interval."""

    cpu_user: float  # share of all CPUs' time, 0..1 (user includes nice)
    cpu_system: float  # system, irq and softirq
    cpu_idle: float
    cpu_iowait: float
    disk_read: float  # bytes/s, all disks
    disk_write: float
    net_receive: float  # bytes/s, all interfaces but loopback
    net_transmit: float
    swap_used: int  # bytes
    swap_total: int


@dataclass(frozen=True)
class State:
    """One node's state as its own daemon reports it."""

    name: str
    incarnation: int
    seq: int
    sent_ms: int
    ncpu: int
    load: float
    load1: float
    mem_avail: int
    mem_total: int
    drained: bool = False
    usage: Usage | None = None  # None from a node that sends version 1, or a brief datagram
    leaving: bool = False  # version 3: the node is stopping (SIGTERM)
    probe: bool = field(default=False, compare=False)  # version 3: answer me at once
    # What the sender knows of others (version 3). Not the state's value either.
    news: tuple[News, ...] = field(default=(), compare=False)
    # The datagram's version: what the sender speaks. Not part of the state's
    # value: the same report reads the same in either version.
    version: int = field(default=VERSION, compare=False)
    # Version 5: sent without its usage (``usage`` is None after decoding); the
    # receiver keeps the usage of the sender's last full report (gossip.py).
    brief: bool = field(default=False, compare=False)

    @property
    def order(self) -> tuple[int, int]:
        """Reports compare by (incarnation, seq): later is greater."""
        return (self.incarnation, self.seq)


@dataclass(frozen=True)
class Ask:
    """How loaded are you now? One best-node question to one candidate."""

    name: str  # the asker
    nonce: int
    sent_ms: int


@dataclass(frozen=True)
class Bid:
    """The answer: the bidder's last sample and the jobs promised to it since."""

    name: str  # the bidder
    nonce: int  # the ASK's
    sent_ms: int
    ncpu: int
    load: float
    load1: float
    promised: float  # extra load of jobs claimed since (the extra-load rule)
    mem_avail: int


@dataclass(frozen=True)
class Claim:
    """The asker chose the receiver: a job of ``amount`` load is on its way."""

    name: str  # the asker
    nonce: int  # the question's; a replayed claim counts once
    sent_ms: int
    amount: float


Message = State | Ask | Bid | Claim


def _milli(value: float) -> int:
    return max(0, min(0xFFFFFFFF, round(value * 1000)))


def _share(value: float) -> int:
    return max(0, min(_SHARE, round(value * _SHARE)))


def _rate(value: float) -> int:
    return max(0, min(0xFFFFFFFFFFFFFFFF, round(value)))


def _shares(u: Usage) -> list[int]:
    shares = [_share(v) for v in (u.cpu_user, u.cpu_system, u.cpu_idle, u.cpu_iowait)]
    while sum(shares) > _SHARE:  # rounding four shares may overshoot by a unit or two
        shares[shares.index(max(shares))] -= 1
    return shares


def _encode_usage(u: Usage) -> bytes:
    shares = _shares(u)
    total = _rate(u.swap_total)
    return _USAGE.pack(*shares, _rate(u.disk_read), _rate(u.disk_write), _rate(u.net_receive),
                       _rate(u.net_transmit), min(_rate(u.swap_used), total), total)  # fmt: skip


def _tail(n: News) -> bytes:
    """A news entry's last 8 bytes: its load (ALIVE) or its suspector (SUSPECT)."""
    if n.kind == Kind.ALIVE:
        return _ALIVE_TAIL.pack(
            max(1, min(0xFFFF, n.ncpu)),
            max(0, min(0xFFFF, round(n.load * 100))),
            max(0, min(0xFFFFFFFF, n.mem_avail // MIB)),
        )
    return n.suspector if n.kind == Kind.SUSPECT else bytes(_TAIL)


def _tenths(age: float, most: int) -> int:
    # Rounded up: news relayed from node to node must only ever get older.
    return max(0, min(most, math.ceil(age * 10 - 1e-9)))


def _encode_news(n: News) -> bytes:
    return _NEWS.pack(n.member, n.incarnation, n.seq & 0xFFFFFFFF, n.kind,
                      _tenths(n.age, 0xFFFF), _tail(n))  # fmt: skip


def encode_state(state: State, version: int | None = None) -> bytes:
    """The datagram of ``state`` in ``version`` (version 1 drops the usage,
    versions 1 and 2 the news and the leaving flag).

    Without a version: the newest, or 1 for a state without usage."""
    if version is None:
        version = VERSION if state.usage is not None else 1
    name = state.name.encode("utf-8")
    if not 1 <= len(name) <= 255:
        raise ValueError(f"node name must be 1..255 bytes, got {len(name)}")
    if version not in VERSIONS:
        raise ValueError(f"no datagram version {version}")
    brief = state.brief and version >= COMPACT_FROM
    if version >= 2 and state.usage is None and not brief:
        raise ValueError(f"version {version} needs the usage")
    if len(state.news) > MAX_NEWS:
        raise ValueError(f"at most {MAX_NEWS} news entries, got {len(state.news)}")
    flags = FLAG_DRAINED if state.drained else 0
    if version >= 3 and state.leaving:
        flags |= FLAG_LEAVING
    if version >= 3 and state.probe:
        flags |= FLAG_PROBE
    if brief:
        flags |= FLAG_BRIEF
    if version >= COMPACT_FROM:
        return _encode_compact(state, name, flags, version)
    return (
        _HEADER.pack(MAGIC, version, MessageType.STATE)
        + _STATE.pack(
            state.incarnation,
            state.seq,
            state.sent_ms,
            flags,
            max(1, min(0xFFFF, state.ncpu)),
            _milli(state.load),
            _milli(state.load1),
            state.mem_avail,
            state.mem_total,
            len(name),
        )
        + (_encode_usage(state.usage) if version >= 2 and state.usage is not None else b"")
        + name
        + (
            bytes([len(state.news)]) + b"".join(_encode_news(n) for n in state.news)
            if version >= 3
            else b""
        )
    )


def _split48(value: int, what: str) -> tuple[int, int]:
    if not 0 <= value < 1 << 48:
        raise ValueError(f"{what} {value} does not fit in 48 bits (version 5)")
    return value >> 32, value & _U32


def _mib(value: int) -> int:
    return max(0, min(_U32, value // MIB))


def _float32(value: float) -> float:
    # NaN and negative rates are sampler bugs; a receiver must not reject the datagram
    return max(0.0, min(_FLOAT32_MAX, value)) if value == value else 0.0


def _encode_compact(state: State, name: bytes, flags: int, version: int) -> bytes:
    """Version 5 (the module's docstring)."""
    out = [
        _HEADER.pack(MAGIC, version, MessageType.STATE),
        _STATE5.pack(
            *_split48(state.incarnation, "incarnation"),
            state.seq,
            *_split48(state.sent_ms, "sent_ms"),
            flags,
            max(1, min(0xFFFF, state.ncpu)),
            _milli(state.load),
            _milli(state.load1),
            _mib(state.mem_avail),
            _mib(state.mem_total),
            len(name),
        ),
        name,
    ]
    if not flags & FLAG_BRIEF:
        u = state.usage
        assert u is not None
        total = _mib(u.swap_total)
        out.append(_USAGE5.pack(*_shares(u), _float32(u.disk_read), _float32(u.disk_write),
                                _float32(u.net_receive), _float32(u.net_transmit),
                                min(_mib(u.swap_used), total), total))  # fmt: skip
    out.append(bytes([len(state.news)]))
    for n in state.news:
        head = (n.member, *_split48(n.incarnation, "incarnation"), n.seq & _U32,
                n.kind << _AGE_BITS | _tenths(n.age, _MAX_AGE5))  # fmt: skip
        if n.kind == Kind.DOWN or n.kind == Kind.LEFT:
            out.append(_NEWS5.pack(*head))
        else:
            out.append(_NEWS5_TAILED.pack(*head, _tail(n)))
    return b"".join(out)


def encode_message(message: Ask | Bid | Claim) -> bytes:
    """An ASK, BID or CLAIM datagram (version 4)."""
    name = message.name.encode("utf-8")
    if not 1 <= len(name) <= 255:
        raise ValueError(f"node name must be 1..255 bytes, got {len(name)}")
    if isinstance(message, Ask):
        body = _ASK.pack(message.nonce, message.sent_ms, len(name))
        mtype = MessageType.ASK
    elif isinstance(message, Bid):
        body = _BID.pack(message.nonce, message.sent_ms, max(1, min(0xFFFF, message.ncpu)),
                         _milli(message.load), _milli(message.load1), _milli(message.promised),
                         max(0, message.mem_avail), len(name))  # fmt: skip
        mtype = MessageType.BID
    else:
        body = _CLAIM.pack(message.nonce, message.sent_ms, _milli(message.amount), len(name))
        mtype = MessageType.CLAIM
    return _HEADER.pack(MAGIC, ASKS_FROM, mtype) + body + name


_SMALL_TYPES = frozenset((MessageType.ASK, MessageType.BID, MessageType.CLAIM))


def is_small_message(data: bytes) -> bool:
    """Whether an unsealed datagram is an ASK, BID or CLAIM (a best-node question's)."""
    return len(data) >= _HEADER.size and data[3] in _SMALL_TYPES


def decode_message(data: bytes) -> Message:
    """Decode any datagram (a state, ASK, BID or CLAIM) or raise WireError."""
    if is_small_message(data):
        return _decode_small(data)
    return decode(data)


def _decode_small(data: bytes) -> Ask | Bid | Claim:
    magic, version, mtype = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise WireError("bad magic")
    if version != ASKS_FROM:  # their one layout, whatever the state's version
        raise WireError(f"message type {mtype} in version {version}")
    layout = {MessageType.ASK: _ASK, MessageType.BID: _BID, MessageType.CLAIM: _CLAIM}[mtype]
    if len(data) < _HEADER.size + layout.size:
        raise WireError(f"short message ({len(data)} bytes)")
    fields = layout.unpack_from(data, _HEADER.size)
    namelen = fields[-1]
    if namelen == 0:
        raise WireError("empty name")
    if len(data) != _HEADER.size + layout.size + namelen:
        raise WireError(f"length {len(data)} does not match name length {namelen}")
    try:
        name = data[_HEADER.size + layout.size :].decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("name is not UTF-8") from None
    if mtype == MessageType.ASK:
        nonce, sent_ms, _ = fields
        return Ask(name, nonce, sent_ms)
    if mtype == MessageType.CLAIM:
        nonce, sent_ms, amount, _ = fields
        return Claim(name, nonce, sent_ms, amount / 1000)
    nonce, sent_ms, ncpu, load, load1, promised, avail, _ = fields
    if ncpu == 0:
        raise WireError("zero CPUs")
    return Bid(name, nonce, sent_ms, ncpu, load / 1000, load1 / 1000, promised / 1000, avail)


def decode(data: bytes) -> State:
    """Decode one state datagram or raise WireError saying why not."""
    if len(data) < _HEADER.size:
        raise WireError(f"short datagram ({len(data)} bytes)")
    magic, version, mtype = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise WireError("bad magic")
    if version not in VERSIONS:
        raise WireError(f"unsupported version {version}")
    if mtype == MessageType.SEALED:
        raise WireError("sealed datagram, but no key configured")
    if mtype != MessageType.STATE:
        raise WireError(f"unknown message type {mtype}")
    if version >= COMPACT_FROM:
        return _decode_compact(data, version)
    start = _HEADER.size + _STATE.size + (_USAGE.size if version >= 2 else 0)
    if len(data) < start + 1:
        raise WireError(f"short state message ({len(data)} bytes)")
    (incarn, seq, sent_ms, flags, ncpu, load, load1, avail, total, namelen) = _STATE.unpack_from(
        data, _HEADER.size
    )
    end = start + namelen
    news: tuple[News, ...] = ()
    if version >= 3:
        if len(data) < end + 1:
            raise WireError(f"short state message ({len(data)} bytes)")
        count = data[end]
        if count > MAX_NEWS:
            raise WireError(f"{count} news entries (at most {MAX_NEWS})")
        if len(data) != end + 1 + count * _NEWS.size:
            raise WireError(f"length {len(data)} does not match name length {namelen}"
                            f" and {count} news entries")  # fmt: skip
        news = tuple(_decode_news(data, end + 1 + i * _NEWS.size) for i in range(count))
    elif len(data) != end:
        raise WireError(f"length {len(data)} does not match name length {namelen}")
    _check_state(version, incarn, flags, ncpu, avail, total, namelen)
    usage = _decode_usage(data, _HEADER.size + _STATE.size) if version >= 2 else None
    try:
        name = data[start:end].decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("name is not UTF-8") from None
    return State(
        name=name,
        incarnation=incarn,
        seq=seq,
        sent_ms=sent_ms,
        ncpu=ncpu,
        load=load / 1000,
        load1=load1 / 1000,
        mem_avail=avail,
        mem_total=total,
        drained=bool(flags & FLAG_DRAINED),
        usage=usage,
        leaving=bool(flags & FLAG_LEAVING),
        probe=bool(flags & FLAG_PROBE),
        news=news,
        version=version,
    )


def _check_incarnation(value: int, what: str) -> int:
    if value > MAX_INCARNATION:
        raise WireError(f"{what} {value} beyond {MAX_INCARNATION}")
    return value


def _check_state(version: int, incarnation: int, flags: int, ncpu: int, avail: int, total: int,
                 namelen: int) -> None:  # fmt: skip
    """The checks every version's fixed fields pass (memory in bytes or MiB)."""
    _check_incarnation(incarnation, "incarnation")
    if namelen == 0:
        raise WireError("empty name")
    if flags & ~_KNOWN_FLAGS[version]:
        raise WireError(f"unknown flags {flags:#x}")
    if ncpu == 0:
        raise WireError("zero CPUs")
    if avail > total:
        raise WireError("available memory exceeds total")


def _decode_compact(data: bytes, version: int) -> State:
    """Version 5 (the module's docstring)."""
    at = _HEADER.size + _STATE5.size
    if len(data) < at:
        raise WireError(f"short state message ({len(data)} bytes)")
    (inc_hi, inc_lo, seq, sent_hi, sent_lo, flags, ncpu, load, load1, avail, total,
     namelen) = _STATE5.unpack_from(data, _HEADER.size)  # fmt: skip
    _check_state(version, inc_hi << 32 | inc_lo, flags, ncpu, avail, total, namelen)
    if len(data) < at + namelen + 1:
        raise WireError(f"short state message ({len(data)} bytes)")
    try:
        name = data[at : at + namelen].decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("name is not UTF-8") from None
    at += namelen
    usage = None
    if not flags & FLAG_BRIEF:
        if len(data) < at + _USAGE5.size + 1:
            raise WireError(f"short state message ({len(data)} bytes)")
        usage = _decode_usage_compact(data, at)
        at += _USAGE5.size
    count = data[at]
    at += 1
    if count > MAX_NEWS:
        raise WireError(f"{count} news entries (at most {MAX_NEWS})")
    news = []
    for _ in range(count):
        if len(data) < at + _NEWS5.size:
            raise WireError(f"short news entry ({len(data)} bytes)")
        member, n_hi, n_lo, n_seq, kind_age = _NEWS5.unpack_from(data, at)
        at += _NEWS5.size
        kind = _KINDS[kind_age >> _AGE_BITS]  # two bits: every value is a kind
        age = (kind_age & _MAX_AGE5) / 10
        incarnation = _check_incarnation(n_hi << 32 | n_lo, "news of incarnation")
        if kind == Kind.DOWN or kind == Kind.LEFT:
            news.append(News(member, incarnation, n_seq, kind, age))
            continue
        if len(data) < at + _TAIL:
            raise WireError(f"short news entry ({len(data)} bytes)")
        tail = data[at : at + _TAIL]
        at += _TAIL
        if kind == Kind.SUSPECT:
            news.append(News(member, incarnation, n_seq, kind, age, suspector=tail))
            continue
        n_cpu, n_load, n_avail = _ALIVE_TAIL.unpack(tail)
        if n_cpu == 0:
            raise WireError("news of a member with zero CPUs")
        news.append(News(member, incarnation, n_seq, kind, age, n_cpu, n_load / 100,
                         n_avail * MIB))  # fmt: skip
    if at != len(data):
        raise WireError(f"length {len(data)} does not match its name, usage and news")
    return State(
        name=name,
        incarnation=inc_hi << 32 | inc_lo,
        seq=seq,
        sent_ms=sent_hi << 32 | sent_lo,
        ncpu=ncpu,
        load=load / 1000,
        load1=load1 / 1000,
        mem_avail=avail * MIB,
        mem_total=total * MIB,
        drained=bool(flags & FLAG_DRAINED),
        usage=usage,
        leaving=bool(flags & FLAG_LEAVING),
        probe=bool(flags & FLAG_PROBE),
        news=tuple(news),
        version=version,
        brief=bool(flags & FLAG_BRIEF),
    )


def _decode_usage_compact(data: bytes, offset: int) -> Usage:
    user, system, idle, iowait, dread, dwrite, rx, tx, swap_used, swap_total = _USAGE5.unpack_from(
        data, offset
    )
    if user + system + idle + iowait > _SHARE:
        raise WireError("CPU shares add up to more than 100 %")
    for rate in (dread, dwrite, rx, tx):
        # (copysign: -0.0 too, which would encode back as 0.0: one meaning, one datagram)
        if not (math.isfinite(rate) and math.copysign(1.0, rate) > 0):
            raise WireError("a rate that is negative or not finite")
    if swap_used > swap_total:
        raise WireError("swap used exceeds total")
    shares = (user / _SHARE, system / _SHARE, idle / _SHARE, iowait / _SHARE)
    return Usage(*shares, dread, dwrite, rx, tx, swap_used * MIB, swap_total * MIB)


def _decode_news(data: bytes, offset: int) -> News:
    member, incarn, seq, number, age, tail = _NEWS.unpack_from(data, offset)
    _check_incarnation(incarn, "news of incarnation")
    if number >= len(_KINDS):
        raise WireError(f"unknown news kind {number}")
    kind = _KINDS[number]  # a tuple lookup: Kind(number) costs a microsecond per entry
    if kind == Kind.ALIVE:
        ncpu, load, avail = _ALIVE_TAIL.unpack(tail)
        if ncpu == 0:
            raise WireError("news of a member with zero CPUs")
        return News(member, incarn, seq, kind, age / 10, ncpu, load / 100, avail * MIB)
    if kind == Kind.SUSPECT:
        return News(member, incarn, seq, kind, age / 10, suspector=tail)
    return News(member, incarn, seq, kind, age / 10)


def _decode_usage(data: bytes, offset: int) -> Usage:
    user, system, idle, iowait, dread, dwrite, rx, tx, swap_used, swap_total = _USAGE.unpack_from(
        data, offset
    )
    if user + system + idle + iowait > _SHARE:
        raise WireError("CPU shares add up to more than 100 %")
    if swap_used > swap_total:
        raise WireError("swap used exceeds total")
    shares = (user / _SHARE, system / _SHARE, idle / _SHARE, iowait / _SHARE)
    return Usage(*shares, float(dread), float(dwrite), float(rx), float(tx), swap_used, swap_total)
