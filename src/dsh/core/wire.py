"""The gossip datagram: encode and decode, strict and versioned, no I/O.

Rules of this file:

* The layout is part of the wire protocol. ``MessageType`` values are
  append-only; a change to a layout is a new ``VERSION``.
* ``decode`` accepts exactly one layout per (version, type) and nothing else:
  short, long or trailing bytes, unknown versions or types, impossible values.
  Every failure is a ``WireError``; nothing else may escape, whatever the bytes.

Layout (network byte order), 52 bytes plus the name::

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
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from ..errors import WireError

MAGIC = b"\xd5h"
VERSION = 1
MAX_DATAGRAM = 1400  # what a receiver reads; a state datagram is at most 307 bytes


class MessageType(IntEnum):
    """Append-only: these numbers are on the wire."""

    STATE = 1
    SEALED = 2  # a STATE datagram sealed with the cluster key (auth.py)


FLAG_DRAINED = 0x01
_KNOWN_FLAGS = FLAG_DRAINED

_HEADER = struct.Struct("!2sBB")
_STATE = struct.Struct("!QIQBHIIQQB")
_STATE_MIN = _HEADER.size + _STATE.size + 1


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
    usage: Usage | None = None  # None from a node that sends version 1

    @property
    def order(self) -> tuple[int, int]:
        """Reports compare by (incarnation, seq): later is greater."""
        return (self.incarnation, self.seq)


def _milli(value: float) -> int:
    return max(0, min(0xFFFFFFFF, round(value * 1000)))


def encode_state(state: State) -> bytes:
    name = state.name.encode("utf-8")
    if not 1 <= len(name) <= 255:
        raise ValueError(f"node name must be 1..255 bytes, got {len(name)}")
    return (
        _HEADER.pack(MAGIC, VERSION, MessageType.STATE)
        + _STATE.pack(
            state.incarnation,
            state.seq,
            state.sent_ms,
            FLAG_DRAINED if state.drained else 0,
            max(1, min(0xFFFF, state.ncpu)),
            _milli(state.load),
            _milli(state.load1),
            state.mem_avail,
            state.mem_total,
            len(name),
        )
        + name
    )


def decode(data: bytes) -> State:
    """Decode one datagram or raise WireError saying why not."""
    if len(data) < _HEADER.size:
        raise WireError(f"short datagram ({len(data)} bytes)")
    magic, version, mtype = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise WireError("bad magic")
    if version != VERSION:
        raise WireError(f"unsupported version {version}")
    if mtype == MessageType.SEALED:
        raise WireError("sealed datagram, but no key configured")
    if mtype != MessageType.STATE:
        raise WireError(f"unknown message type {mtype}")
    if len(data) < _STATE_MIN:
        raise WireError(f"short state message ({len(data)} bytes)")
    (incarn, seq, sent_ms, flags, ncpu, load, load1, avail, total, namelen) = _STATE.unpack_from(
        data, _HEADER.size
    )
    start = _HEADER.size + _STATE.size
    if len(data) != start + namelen:
        raise WireError(f"length {len(data)} does not match name length {namelen}")
    if namelen == 0:
        raise WireError("empty name")
    if flags & ~_KNOWN_FLAGS:
        raise WireError(f"unknown flags {flags:#x}")
    if ncpu == 0:
        raise WireError("zero CPUs")
    if avail > total:
        raise WireError("available memory exceeds total")
    try:
        name = data[start:].decode("utf-8")
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
    )
