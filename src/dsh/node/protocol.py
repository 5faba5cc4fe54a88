"""The frames between the mux and a node's resident executor: bytes in, frames out.

Rules of this file: standard library only, no I/O, nothing imported from
dsh. The mux sends this file's text to the node ahead of executor.py's (see
``executor_source``), so both ends run the very same definitions.

The executor's first output is one line, ``HELLO_MAGIC VERSION PID``; the mux
discards anything before it (a ``~/.bashrc`` that prints). After that both
directions carry frames: a 9-byte header -- command id (u32), type (u8),
payload length (u32) -- then the payload. Command id 0 is the executor
itself. The type numbers are part of the wire protocol: append only.

A command's life, mux -> executor on the left::

    OPEN request          ->
                          <-  READY (cwd entered, sync file seen)  or  FAILED text
    GO                    ->  (the mux has committed: never run it elsewhere)
                          <-  SPAWNED pid, STDOUT/STDERR data ..., EXIT status
    STDIN data, STDIN_EOF ->  <-  IN_ACK n (stdin bytes taken)
    OUT_ACK n             ->  (output bytes written out: more may come)
    SIGNAL n, KILL        ->

The executor runs nothing before GO, so a command the mux never committed
never ran; READY without GO is dropped with KILL. Output is flow-controlled
per command: at most OUT_WINDOW bytes unacknowledged, so one slow reader
never stalls the other commands on the channel; stdin likewise with IN_WINDOW.
"""

from __future__ import annotations

import struct

VERSION = 1
HELLO_MAGIC = b"\x00dsh-executor:"
MAX_PREAMBLE = 65536  # bytes a login shell may print before the hello line
HEADER = struct.Struct("!IBI")
COUNT = struct.Struct("!I")
STATUS = struct.Struct("!i")
MAX_PAYLOAD = 8 << 20  # an OPEN carries argv and environment (ARG_MAX is 2 MiB), in base64
CHUNK = 65536  # largest data payload either side sends
OUT_WINDOW = 1 << 20  # stdout+stderr bytes of one command in flight to the mux
IN_WINDOW = 1 << 19  # stdin bytes of one command in flight to the executor

# mux -> executor
OPEN = 1  # JSON request (request.Request.to_json)
GO = 2  # start it now
STDIN = 3  # data for the command's stdin
STDIN_EOF = 4  # end of its stdin
SIGNAL = 5  # one byte: signal number, for the command's process group
OUT_ACK = 6  # COUNT: output bytes the mux has written out
KILL = 7  # its dsh is gone: SIGHUP the group, SIGKILL after a grace period

# executor -> mux
READY = 64  # ready to start on GO
FAILED = 65  # text "KIND MESSAGE": not started and never will be
SPAWNED = 66  # COUNT: the command's pid (= its process group)
STDOUT = 67
STDERR = 68
IN_ACK = 69  # COUNT: stdin bytes taken
EXIT = 70  # STATUS: 0-255, or 128+N when killed by signal N
NOTICE = 71  # text for the mux's log (command id 0: about the executor)

TO_EXECUTOR = frozenset({OPEN, GO, STDIN, STDIN_EOF, SIGNAL, OUT_ACK, KILL})
TO_MUX = frozenset({READY, FAILED, SPAWNED, STDOUT, STDERR, IN_ACK, EXIT, NOTICE})


class ProtocolError(Exception):
    """A frame that is not well formed, or of a type the receiver does not take."""


def frame(cid: int, kind: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(cid, kind, len(payload)) + payload


def hello_line(pid: int) -> bytes:
    return HELLO_MAGIC + f"{VERSION} {pid}\n".encode()


def parse_hello(buffer: bytes) -> tuple[int, int, bytes, bytes] | None:
    """(version, pid, what came before, what came after) once the line is complete."""
    index = buffer.find(HELLO_MAGIC)
    if index < 0:
        return None
    end = buffer.find(b"\n", index)
    if end < 0:
        return None
    fields = buffer[index + len(HELLO_MAGIC) : end].split()
    if len(fields) != 2 or not all(f.isdigit() for f in fields):
        raise ProtocolError(f"bad hello line {buffer[index:end]!r}")
    return int(fields[0]), int(fields[1]), buffer[:index], buffer[end + 1 :]


class FrameReader:
    """Bytes in, complete frames out; rejects types this side does not take."""

    def __init__(self, accepted: frozenset[int]) -> None:
        self._accepted = accepted
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= HEADER.size:
            cid, kind, length = HEADER.unpack_from(self._buffer)
            if kind not in self._accepted:
                raise ProtocolError(f"unexpected frame type {kind}")
            if length > MAX_PAYLOAD:
                raise ProtocolError(f"frame of {length} bytes (limit {MAX_PAYLOAD})")
            end = HEADER.size + length
            if len(self._buffer) < end:
                break
            frames.append((cid, kind, bytes(self._buffer[HEADER.size : end])))
            del self._buffer[:end]
        return frames

    def pending(self) -> int:
        return len(self._buffer)
