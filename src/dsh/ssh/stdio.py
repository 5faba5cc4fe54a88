"""The descriptors a command's I/O goes to, and copying to and from them.

Shared by the direct path (ssh/session.py) and the mux (mux/runs.py,
mux/executor_link.py), where the descriptors are those dsh passed over its
Unix socket.
"""

from __future__ import annotations

import os
import select
from dataclasses import dataclass

CHUNK = 32768  # bytes read from a descriptor at a time


@dataclass(frozen=True)
class Stdio:
    """The three descriptors a command's I/O goes to: dsh's own, or those it passed the mux."""

    stdin: int = 0
    stdout: int = 1
    stderr: int = 2
    term: str = "vt100"  # for -t: $TERM and the window size of dsh's terminal
    columns: int = 80
    lines: int = 24

    def close(self, stdin: bool = True) -> None:
        """The mux's copies of dsh's descriptors: a pipe's reader sees EOF only
        once they are shut. ``stdin=False`` while a thread may still use it:
        closing an fd another thread uses could hand its number to someone else."""
        for fd in [self.stdout, self.stderr] + ([self.stdin] if stdin else []):
            try:
                os.close(fd)
            except OSError:
                pass


def write_all(fd: int, data: bytes) -> bool:
    """Write it all (blocking); False when the reader has gone away."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BrokenPipeError:
            return False  # discard: the command goes on, as it would under ssh
        except OSError:
            return False
        view = view[written:]
    return True


def read_input(fd: int, stop_fd: int, size: int = CHUNK) -> bytes | None:
    """Read what ``fd`` has (b"" at EOF), or None once ``stop_fd`` is readable.

    Waiting in poll, not in read, lets the reader be stopped: an fd passed by
    dsh to the mux may stay open and silent for ever (a terminal, a pipe from
    a process that never writes), and a thread blocked in read on it would
    keep it open after the command ended.
    """
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    poller.register(stop_fd, select.POLLIN)
    while True:
        events = dict(poller.poll())
        if stop_fd in events:
            return None
        if fd in events:
            try:
                return os.read(fd, size)
            except BlockingIOError:
                continue
            except OSError:
                return b""
