"""The mux <-> executor protocol: strict frames, and the hello line found behind .bashrc noise."""

from __future__ import annotations

import pytest

from dsh.node import protocol as ep


def test_executor_frames_are_strict() -> None:
    reader = ep.FrameReader(ep.TO_MUX)
    data = ep.frame(7, ep.STDOUT, b"abc") + ep.frame(7, ep.EXIT, ep.STATUS.pack(3))
    assert reader.feed(data[:5]) == []
    assert reader.feed(data[5:]) == [(7, ep.STDOUT, b"abc"), (7, ep.EXIT, ep.STATUS.pack(3))]
    with pytest.raises(ep.ProtocolError, match="unexpected frame type"):
        ep.FrameReader(ep.TO_MUX).feed(ep.frame(1, ep.OPEN, b"{}"))
    with pytest.raises(ep.ProtocolError, match="limit"):
        ep.FrameReader(ep.TO_EXECUTOR).feed(ep.HEADER.pack(1, ep.STDIN, ep.MAX_PAYLOAD + 1))
    assert ep.parse_hello(b"junk from .bashrc\n" + ep.hello_line(42) + b"rest") == (
        ep.VERSION,
        42,
        b"junk from .bashrc\n",
        b"rest",
    )
    assert ep.parse_hello(ep.HELLO_MAGIC + b"1 4") is None  # not complete yet
    with pytest.raises(ep.ProtocolError):
        ep.parse_hello(ep.HELLO_MAGIC + b"one two\n")
