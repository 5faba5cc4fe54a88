"""Running one command on a node over an SSH channel: the local end of rexec.py.

The remote command line is fixed (the helper's source and one base64
argument), so quoting is never the remote shell's business: every argument
arrives byte for byte. The channel then carries:

* stdout and stderr of the command, copied to ours as they come;
* on stderr, before anything of the command's, one ``rexec.MARK`` line that
  says whether the command started; until it has, the run may be retried
  on another node, and stdin has not been touched;
* stdin in frames (rexec.FRAME), plus end-of-input and signal frames;
* the exit status.
"""

from __future__ import annotations

import base64
import contextlib
import os
import select
import shlex
import signal
import threading
import time
from collections.abc import Callable

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST

from ..errors import ChannelRefused, ConnectionLost, NodeFailure
from ..node import rexec
from ..node.source import rexec_source
from ..request import Request
from . import connect as ssh
from .stdio import CHUNK, Stdio, read_input, write_all

MAX_PREAMBLE = 65536  # stderr bytes read while looking for the start mark


def command_line(request: Request, python: str) -> str:
    """What the node's shell runs: the helper's text and the request, each one word."""
    encoded = base64.b64encode(request.to_json()).decode("ascii")
    return f"exec {shlex.quote(python)} -c {shlex.quote(rexec_source())} {encoded}"


def _frame(kind: bytes, data: bytes = b"") -> bytes:
    """One frame of the helper's stdin (see rexec.py)."""
    return rexec.FRAME.pack(kind, len(data)) + data


def _send_signal_request(channel: paramiko.Channel, signum: int) -> None:
    """RFC 4254 "signal" request; paramiko has no public call for it.

    OpenSSH's sshd delivers it to the session's process (our helper, which
    relays it to the command's group). The in-band signal frame covers
    servers that ignore it.
    """
    name = signal.Signals(signum).name.removeprefix("SIG")
    message = paramiko.Message()
    message.add_byte(cMSG_CHANNEL_REQUEST)
    message.add_int(channel.remote_chanid)
    message.add_string("signal")
    message.add_boolean(False)
    message.add_string(name)
    try:
        channel.transport._send_user_message(message)  # type: ignore[union-attr]
    except Exception:  # best effort: the frame below is the guaranteed path
        pass


class Session:
    """One command on one node. ``start`` may fail with NodeFailure; ``finish`` may not."""

    def __init__(
        self,
        client: paramiko.SSHClient,
        node: str,
        wakeup_fd: int,
        forward_stdin: bool,
        tty: bool,
        stdio: Stdio | None = None,
    ) -> None:
        self.client = client
        self.node = node
        self.wakeup_fd = wakeup_fd  # readable when a signal is to be relayed (see finish)
        self.forward_stdin = forward_stdin
        self.tty = tty
        self.stdio = stdio or Stdio()
        self.channel: paramiko.Channel | None = None
        self._send_lock = threading.Lock()
        self._preamble: tuple[int, bytes] = (self.stdio.stderr, b"")
        self._stop_r = self._stop_w = -1  # a pipe that stops the stdin pump (see finish)
        self._pump: threading.Thread | None = None
        self._sent_input = False  # stdin data has gone to the helper (see relay_signal)
        self.signals_sent = 0
        self.aborted_by: int | None = None  # the signal for which the channel was closed
        self.helper_pid: int | None = None  # rexec's PID on the node, from its start mark
        self.helper_rtmin: int | None = None  # and the node's SIGRTMIN (see rexec.py)

    # -- start -----------------------------------------------------------------

    def start(self, request: Request, python: str, start_grace: float) -> None:
        """Start it; return once the helper said it runs (NodeFailure if not,
        or if it has not said within ``start_grace`` beyond the sync-file wait)."""
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise NodeFailure(self.node, "connection closed")
        try:
            channel = transport.open_session(timeout=ssh.CHANNEL_TIMEOUT)
            if self.tty:
                io = self.stdio
                channel.get_pty(term=io.term, width=io.columns, height=io.lines)
            channel.exec_command(command_line(request, python))
        except paramiko.ChannelException as exc:
            raise ChannelRefused(self.node, f"cannot start a session: {exc}") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise NodeFailure(self.node, f"cannot start a session: {exc}") from None
        self.channel = channel
        # A node that never answers (a hung NFS mount under chdir, a node
        # that froze) must not stall the build: it is a transport failure.
        self._await_mark(channel, time.monotonic() + request.sync_timeout + start_grace)

    def _await_mark(self, channel: paramiko.Channel, deadline: float) -> None:
        """Read until the helper says whether the command started.

        The mark comes on stderr, or on stdout in a pseudo-terminal, which
        merges the two (and ends lines with CR LF).
        """
        out, err = self.stdio.stdout, self.stdio.stderr
        recv_mark, recv_other, mark_fd, other_fd = (
            (channel.recv, channel.recv_stderr, out, err)
            if self.tty
            else (channel.recv_stderr, channel.recv, err, out)
        )
        buffer = b""
        while True:
            select.select([channel.fileno()], [], [], 1.0)
            got = False
            while channel.recv_stderr_ready() if other_fd == err else channel.recv_ready():
                write_all(other_fd, recv_other(CHUNK))
                got = True
            if channel.recv_ready() if mark_fd == out else channel.recv_stderr_ready():
                got = True
                buffer += recv_mark(CHUNK)
                index = buffer.find(rexec.MARK)
                if index >= 0 and b"\n" in buffer[index:]:
                    end = buffer.index(b"\n", index)
                    before, rest = buffer[:index], buffer[end + 1 :]
                    line = buffer[index + len(rexec.MARK) : end].rstrip(b"\r")
                    write_all(mark_fd, before)  # e.g. what the shell's start-up files printed
                    text = line.decode("utf-8", "replace")
                    if text.split(" ", 1)[0] == "run":
                        self._preamble = (mark_fd, rest)
                        pid, _, rtmin = text.partition(" ")[2].partition(" ")
                        self.helper_pid = int(pid) if pid.isdigit() else None
                        self.helper_rtmin = int(rtmin) if rtmin.isdigit() else None
                        return
                    kind, _, message = text.partition(" ")[2].partition(" ")
                    channel.close()
                    raise NodeFailure(self.node, message or kind, transport=False)
                if len(buffer) > MAX_PREAMBLE:
                    channel.close()
                    raise NodeFailure(
                        self.node, "the remote helper did not answer", transport=False
                    )
            if got:
                continue
            if time.monotonic() > deadline:
                channel.close()
                raise NodeFailure(
                    self.node, "no answer from the node before the command could start"
                )
            if channel.closed and not channel.exit_status_ready():
                raise NodeFailure(self.node, "connection lost before the command started")
            if channel.exit_status_ready():
                status = channel.recv_exit_status()
                detail = buffer.decode("utf-8", "replace").strip().splitlines()
                raise NodeFailure(
                    self.node,
                    f"cannot start the remote helper (exit {status})"
                    + (f": {detail[-1]}" if detail else ""),
                    transport=False,
                )

    # -- run -------------------------------------------------------------------

    def _send_frame(self, kind: bytes, data: bytes = b"", block: bool = True) -> bool:
        assert self.channel is not None
        if not self._send_lock.acquire(timeout=-1 if block else 0.2):
            return False
        frame = _frame(kind, data)
        if kind == b"D":
            self._sent_input = True  # under the lock: relay_signal reads it there
        try:
            if not block and self.channel.out_window_size < len(frame):
                # The window is full (the command does not read its stdin):
                # sendall would block until it does, perhaps for ever.
                return False
            self.channel.sendall(frame)
            return True
        except (OSError, EOFError, paramiko.SSHException):
            return False
        finally:
            self._send_lock.release()

    def _copy_stdin(self, send: Callable[[bytes], bool], end: Callable[[], object]) -> None:
        """dsh's stdin to the channel until its EOF (then ``end``) or finish's stop."""
        try:
            while True:
                data = read_input(self.stdio.stdin, self._stop_r)
                if data is None:
                    return
                if not data:
                    end()
                    return
                if not send(data):
                    return
        finally:
            os.close(self._stop_r)

    def _pump_stdin(self) -> None:
        """In frames, so that signals and end of input travel in band (see rexec.py)."""
        self._copy_stdin(lambda data: self._send_frame(b"D", data), lambda: self._send_frame(b"E"))

    def _pump_tty(self) -> None:
        """Raw into sshd's pseudo-terminal: keys, ^C and ^D are the terminal's."""
        channel = self.channel
        assert channel is not None

        def send(data: bytes) -> bool:
            try:
                channel.sendall(data)
                return True
            except (OSError, EOFError, paramiko.SSHException):
                return False

        self._copy_stdin(send, channel.shutdown_write)

    def relay_signal(self, signum: int) -> None:
        assert self.channel is not None
        self.signals_sent += 1
        if self.tty and signum in (signal.SIGINT, signal.SIGQUIT):
            # In a terminal, ^C and the quit key travel as keystrokes, and the
            # helper leaves SIGINT and SIGQUIT to the terminal. Other signals
            # to a terminal's command go by kill(1) alone, below.
            _send_signal_request(self.channel, signum)
            return
        # Either the "signal" request and an S frame together, or kill(1)
        # alone: the helper counts each way apart and relays every signal once
        # (see rexec.py). sshd may refuse the request (it does for root); a
        # frame would queue behind input already sent, which a command that
        # does not read it never lets the helper reach.
        if not self.tty and self._send_lock.acquire(timeout=0.2):  # else input is going
            try:
                frame = _frame(b"S", bytes([signum]))
                if not self._sent_input and self.channel.out_window_size >= len(frame):
                    _send_signal_request(self.channel, signum)
                    with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                        self.channel.sendall(frame)  # fits the window: does not block
                    return
            finally:
                self._send_lock.release()
        threading.Thread(target=self._kill_over_channel, args=(signum,), daemon=True).start()

    def _kill_over_channel(self, signum: int) -> None:
        transport = self.client.get_transport()
        number = signum if self.helper_rtmin is None else self.helper_rtmin + signum
        try:
            if self.helper_pid is None or transport is None:
                raise OSError("no helper PID")
            channel = transport.open_session(timeout=ssh.CHANNEL_TIMEOUT)
            channel.exec_command(f"kill -{int(number)} {int(self.helper_pid)}")
            if channel.recv_exit_status() == 0:
                return
        except (OSError, EOFError, paramiko.SSHException):
            pass
        # No second channel (sshd's MaxSessions), or the helper has just ended.
        if self.channel is None or self.channel.exit_status_ready():
            return
        if not self.tty and self._send_frame(b"S", bytes([signum]), block=False):
            return  # counted as a frame; it may yet get through
        # Last resort: closing the channel makes the helper kill the group.
        self.aborted_by = signum
        self.abort()

    def pump_alive(self) -> bool:
        """Whether the stdin pump is still (stuck) in a send: then stdin is still in use."""
        return self._pump is not None and self._pump.is_alive()

    def abort(self) -> None:
        """Nobody waits for the command any more: closing the channel makes the
        helper kill its whole process group (see rexec.py)."""
        if self.channel is not None:
            self.channel.close()

    def _reader_gone(self) -> int:
        """Our stdout or stderr reader went away (``dsh yes | head -1``): a
        local command would die of SIGPIPE, so the remote one is stopped too."""
        self.abort()
        return 128 + signal.SIGPIPE

    def finish(self, on_signal: Callable[[Session], None]) -> int:
        """Copy I/O until the command ends; its exit status (128+N if signalled)."""
        channel = self.channel
        assert channel is not None
        out, err = self.stdio.stdout, self.stdio.stderr
        write_all(*self._preamble)
        self._stop_r, self._stop_w = os.pipe()
        pump = None
        if self.tty:
            pump = threading.Thread(target=self._pump_tty, daemon=True)
        elif self.forward_stdin:
            pump = threading.Thread(target=self._pump_stdin, daemon=True)
        else:
            os.close(self._stop_r)
            self._send_frame(b"E")
        if pump is not None:
            pump.start()
        self._pump = pump
        try:
            while True:
                # The exit status does not wake select: poll for it twice a second.
                readable, _, _ = select.select([channel.fileno(), self.wakeup_fd], [], [], 0.5)
                if self.wakeup_fd in readable:
                    on_signal(self)
                got = False
                while channel.recv_ready():
                    if not write_all(out, channel.recv(CHUNK)):
                        return self._reader_gone()
                    got = True
                while channel.recv_stderr_ready():
                    if not write_all(err, channel.recv_stderr(CHUNK)):
                        return self._reader_gone()
                    got = True
                if not got:
                    if channel.exit_status_ready() or channel.closed:
                        break
                    if channel.eof_received:
                        # Both streams are at EOF (the poll pipe stays readable):
                        # only the exit status is still to come.
                        channel.status_event.wait(0.05)
        finally:
            try:
                os.write(self._stop_w, b"x")  # the stdin pump ends and closes its end
            except BrokenPipeError:
                pass  # it has ended already
            if pump is not None:
                pump.join(5.0)
            os.close(self._stop_w)
        # (A closed channel counts as "ready", with status -1.)
        status = channel.recv_exit_status() if channel.exit_status_ready() else None
        if status is not None and status >= 0:
            return status  # the command's own, even if dsh aborted after it came
        if self.aborted_by is not None:
            return 128 + self.aborted_by
        # If the liveness check closed a silent connection, say so: the user
        # learns that the node stopped answering.
        why = ssh.closed_because(self.client) or (
            "connection lost while the command ran"
            if status is None
            else "the remote helper ended without a status"
        )
        raise ConnectionLost(f"node {self.node}: {why}")
