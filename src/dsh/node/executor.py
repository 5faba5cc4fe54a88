"""The resident executor: one process per node that runs many commands for the mux.

The mux starts it once per node through the user's login shell (``exec
PYTHON -c SOURCE dsh-executor`` on an SSH session channel), so every command
it starts sees the environment a plain ``ssh node cmd`` gives (PATH from
``~/.bashrc``, modules, conda), without paying that shell's start-up again.
SOURCE is request.py, launch.py and protocol.py followed by this file
(node/source.py); it must stay standard library only.

Rules of this file: one thread, one selector loop, nothing blocks. stdin and
stdout are the SSH channel (framed, see node/protocol.py); each command has
its own pipes, process group and flow-control windows. Per command, exactly
what rexec.py does for one: chdir, sync-file wait, start mark, umask, PWD
and forwarded variables, signals to the whole group, SIGHUP for what is left
of it at the end, 128+N for a signal, 126/127 as a shell. Nothing is
started before the mux says GO.

Cleanup: a command whose dsh went away (KILL) gets SIGHUP on its group and
SIGKILL KILL_GRACE seconds later; when the channel closes (mux gone,
connection lost) every command gets the same, then the executor exits. If
the executor itself is killed, the mux kills the groups it was told about
(SPAWNED) over the still-open connection.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from typing import IO

# dsh:strip-begin (node/source.py sends request.py, launch.py and protocol.py ahead of this text)
from ..request import Request, RequestError
from .launch import (
    KILL_GRACE,
    command_env,
    exit_status,
    killpg,
    prepare,
    remove_sync,
    spawn,
    spawn_failure,
    waitfile_problem,
)
from .protocol import (
    CHUNK,
    COUNT,
    EXIT,
    FAILED,
    GO,
    IN_ACK,
    KILL,
    NOTICE,
    OPEN,
    OUT_ACK,
    OUT_WINDOW,
    READY,
    SIGNAL,
    SPAWNED,
    STATUS,
    STDERR,
    STDIN,
    STDIN_EOF,
    STDOUT,
    TO_EXECUTOR,
    FrameReader,
    ProtocolError,
    frame,
    hello_line,
)

# dsh:strip-end


class Command:
    """One command's state in the executor."""

    def __init__(self, cid: int, request: Request) -> None:
        self.cid = cid
        self.request = request
        self.waiter: subprocess.Popen[bytes] | None = None  # waitfile, before READY
        self.ready = False
        self.proc: subprocess.Popen[bytes] | None = None
        self.pgid = 0
        self.window = OUT_WINDOW
        self.outputs: dict[int, tuple[IO[bytes], int]] = {}  # fd -> (pipe, STDOUT/STDERR)
        self.stdin_fd: int | None = None  # our write end of its stdin
        self.stdin_buffer = bytearray()
        self.stdin_eof = False
        self.status: int | None = None  # set when the process has been reaped
        self.relayed = False
        self.abandoned = False
        self.kill_at: float | None = None


class Executor:
    def __init__(self, rfd: int = 0, wfd: int = 1) -> None:
        self.rfd, self.wfd = rfd, wfd
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        self.sel = selectors.DefaultSelector()
        self.reader = FrameReader(TO_EXECUTOR)
        self.out = bytearray()
        self.commands: dict[int, Command] = {}
        self.registered: dict[int, int] = {}  # fd -> selector events
        self.closing_deadline: float | None = None
        self.base_env = dict(os.environb)
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        self.stop_requested = False
        self._watch(self.rfd, selectors.EVENT_READ)
        self._watch(self.wake_r, selectors.EVENT_READ)

    # -- plumbing --------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: object) -> None:
        if signum != signal.SIGCHLD:
            self.stop_requested = True

    def _watch(self, fd: int, events: int) -> None:
        old = self.registered.get(fd, 0)
        if events == old:
            return
        if not events:
            self.sel.unregister(fd)
            del self.registered[fd]
        elif not old:
            self.sel.register(fd, events)
            self.registered[fd] = events
        else:
            self.sel.modify(fd, events)
            self.registered[fd] = events

    def send(self, cid: int, kind: int, payload: bytes = b"") -> None:
        self.out += frame(cid, kind, payload)

    def _flush(self) -> None:
        while self.out:
            try:
                written = os.write(self.wfd, self.out)
            except BlockingIOError:
                break
            except OSError:  # the channel is gone
                self.out.clear()
                self._close_channel()
                break
            del self.out[:written]
        self._watch(self.wfd, selectors.EVENT_WRITE if self.out else 0)

    def _close_channel(self) -> None:
        """The mux is gone: stop every command, then exit (see run)."""
        if self.closing_deadline is not None:
            return
        self.closing_deadline = time.monotonic() + KILL_GRACE
        self._watch(self.rfd, 0)
        for command in list(self.commands.values()):
            self._abandon(command)

    # -- the loop ------------------------------------------------------------

    def run(self) -> int:
        self.out += hello_line(os.getpid())
        self._flush()
        while True:
            if self.stop_requested:
                self._close_channel()
            if self.closing_deadline is not None:
                if not self.commands:
                    return 0
                if time.monotonic() >= self.closing_deadline:
                    for command in self.commands.values():
                        if command.pgid:
                            killpg(command.pgid, signal.SIGKILL)
                    return 0
            for key, _events in self.sel.select(self._timeout()):
                fd = key.fd
                if fd == self.rfd:
                    self._read_channel()
                elif fd == self.wake_r:
                    self._reap()
                elif fd == self.wfd:
                    pass  # _flush below
                else:
                    self._io(fd)
            self._timers()
            for command in list(self.commands.values()):
                if command.status is not None:
                    self._drain(command)
            self._flush()

    def _timeout(self) -> float | None:
        deadlines = [c.kill_at for c in self.commands.values() if c.kill_at is not None]
        if self.closing_deadline is not None:
            deadlines.append(self.closing_deadline)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def _timers(self) -> None:
        now = time.monotonic()
        for command in self.commands.values():
            if command.kill_at is not None and now >= command.kill_at:
                command.kill_at = None
                killpg(command.pgid, signal.SIGKILL)

    def _read_channel(self) -> None:
        try:
            data = os.read(self.rfd, CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close_channel()
            return
        try:
            frames = self.reader.feed(data)
        except ProtocolError as exc:
            self.send(0, NOTICE, f"protocol error: {exc}; stopping".encode())
            self._close_channel()
            return
        for cid, kind, payload in frames:
            self._handle(cid, kind, payload)

    def _handle(self, cid: int, kind: int, payload: bytes) -> None:
        if kind == OPEN:
            if cid in self.commands or cid == 0:
                self.send(cid, FAILED, b"protocol duplicate command id")
                return
            try:
                new = Command(cid, Request.from_json(payload))
            except RequestError as exc:
                self.send(cid, FAILED, f"protocol bad request: {exc}".encode())
                return
            self.commands[cid] = new
            self._prepare(new)
            return
        command = self.commands.get(cid)
        if command is None:
            if kind == STDIN:  # it has finished: the data goes nowhere, but is taken
                self.send(cid, IN_ACK, COUNT.pack(len(payload)))
            return
        if kind == GO:
            self._spawn(command)
        elif kind == STDIN:
            if command.stdin_fd is None:
                self.send(cid, IN_ACK, COUNT.pack(len(payload)))
            else:
                command.stdin_buffer += payload
                self._watch(command.stdin_fd, selectors.EVENT_WRITE)
        elif kind == STDIN_EOF:
            command.stdin_eof = True
            if command.stdin_fd is not None and not command.stdin_buffer:
                self._close_stdin(command)
        elif kind == SIGNAL:
            if command.pgid and payload:
                command.relayed = True
                killpg(command.pgid, payload[0])
            elif not command.pgid:
                self._abandon(command)
        elif kind == OUT_ACK:
            (count,) = COUNT.unpack(payload)
            command.window += count
            for fd in command.outputs:
                self._watch(fd, selectors.EVENT_READ)
        elif kind == KILL:
            self._abandon(command)

    # -- one command -------------------------------------------------------------

    def _fail(self, command: Command, text: str) -> None:
        self.send(command.cid, FAILED, text.encode("utf-8", "replace"))
        self.commands.pop(command.cid, None)

    def _prepare(self, command: Command) -> None:
        """Enter the directory and wait for the sync file: what may fail before the start."""
        waiter, problem = prepare(command.request)
        if problem is not None:
            self._fail(command, problem)
        elif waiter is not None:
            command.waiter = waiter  # READY or FAILED when it exits (_reap)
        else:
            self._ready(command)

    def _ready(self, command: Command) -> None:
        command.ready = True
        self.send(command.cid, READY)

    def _spawn(self, command: Command) -> None:
        if not command.ready or command.proc is not None:
            return
        req = command.request
        try:
            proc = spawn(req, command_env(self.base_env, req), pipes=True, new_session=True)
        except OSError as exc:
            message, status = spawn_failure(req, exc)
            self.send(command.cid, STDERR, message)
            remove_sync(req)
            self.send(command.cid, EXIT, STATUS.pack(status))
            del self.commands[command.cid]
            return
        command.proc = proc
        command.pgid = proc.pid
        self.send(command.cid, SPAWNED, COUNT.pack(proc.pid))
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        command.stdin_fd = proc.stdin.fileno()
        for pipe, kind in ((proc.stdout, STDOUT), (proc.stderr, STDERR)):
            os.set_blocking(pipe.fileno(), False)
            command.outputs[pipe.fileno()] = (pipe, kind)
            self._watch(pipe.fileno(), selectors.EVENT_READ)
        os.set_blocking(command.stdin_fd, False)
        if command.stdin_eof and not command.stdin_buffer:
            self._close_stdin(command)
        elif command.stdin_buffer:
            self._watch(command.stdin_fd, selectors.EVENT_WRITE)

    def _owner(self, fd: int) -> Command | None:
        for command in self.commands.values():
            if fd == command.stdin_fd or fd in command.outputs:
                return command
        return None

    def _io(self, fd: int) -> None:
        command = self._owner(fd)
        if command is None:
            self._watch(fd, 0)
        elif fd == command.stdin_fd:
            self._write_stdin(command)
        else:
            self._read_output(command, fd)

    def _read_output(self, command: Command, fd: int) -> None:
        if command.window <= 0:
            self._watch(fd, 0)  # until OUT_ACK
            return
        try:
            data = os.read(fd, min(CHUNK, command.window))
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._pass_output(command, fd, data)
        else:
            self._close_output(command, fd)

    def _pass_output(self, command: Command, fd: int, data: bytes) -> None:
        if not command.abandoned:  # nobody reads it: dropped, and costs no window
            command.window -= len(data)
            self.send(command.cid, command.outputs[fd][1], data)

    def _close_output(self, command: Command, fd: int) -> None:
        self._watch(fd, 0)
        pipe, _kind = command.outputs.pop(fd)
        pipe.close()

    def _write_stdin(self, command: Command) -> None:
        fd = command.stdin_fd
        assert fd is not None
        try:
            written = os.write(fd, command.stdin_buffer)
        except BlockingIOError:
            return
        except OSError:  # it closed its stdin: what it did not take goes nowhere
            written = len(command.stdin_buffer)
            self._close_stdin(command)
        del command.stdin_buffer[:written]
        self.send(command.cid, IN_ACK, COUNT.pack(written))
        if command.stdin_fd is not None and not command.stdin_buffer:
            self._watch(command.stdin_fd, 0)
            if command.stdin_eof:
                self._close_stdin(command)

    def _close_stdin(self, command: Command) -> None:
        fd = command.stdin_fd
        if fd is None:
            return
        self._watch(fd, 0)
        command.stdin_fd = None
        if command.proc is not None and command.proc.stdin is not None:
            try:
                command.proc.stdin.close()
            except OSError:
                pass
        if command.stdin_buffer:
            self.send(command.cid, IN_ACK, COUNT.pack(len(command.stdin_buffer)))
            command.stdin_buffer.clear()

    def _abandon(self, command: Command) -> None:
        """Its dsh is gone (or the mux): nobody will read its output."""
        if command.waiter is not None:
            command.waiter.kill()
        if not command.pgid:
            self.commands.pop(command.cid, None)
            if command.waiter is not None:
                command.waiter.wait()
            remove_sync(command.request)
            return
        if command.abandoned:
            return
        command.abandoned = True
        killpg(command.pgid, signal.SIGHUP)
        command.kill_at = time.monotonic() + KILL_GRACE

    def _reap(self) -> None:
        try:
            while os.read(self.wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        for command in list(self.commands.values()):
            waiter = command.waiter
            if waiter is not None and waiter.poll() is not None:
                command.waiter = None
                problem = waitfile_problem(waiter)
                if problem is None:
                    self._ready(command)
                else:
                    self._fail(command, problem)
            proc = command.proc
            if proc is not None and command.status is None and proc.poll() is not None:
                command.status = exit_status(proc.returncode)
                if command.relayed or command.abandoned:
                    # Whatever the command left behind in its group goes with it.
                    killpg(command.pgid, signal.SIGKILL)
                    command.kill_at = None
                else:
                    # Background processes it left get the hang-up of a logout
                    # (as with rexec.py; nohup'ed ones survive it).
                    killpg(command.pgid, signal.SIGHUP)

    def _drain(self, command: Command) -> None:
        """The process has exited: pass on what its pipes hold now, then the status.

        Data the command wrote before it exited is in the pipe already; a pipe
        that is empty but not at EOF is held by a background child, which is
        not waited for (as with ssh, whose session ends with its process).
        """
        for fd in list(command.outputs):
            for _ in range(16):  # bounded: a busy background writer waits its turn
                if command.window <= 0:
                    break
                try:
                    data = os.read(fd, min(CHUNK, command.window))
                except BlockingIOError:
                    data = b""
                except OSError:
                    data = b""
                if not data:
                    self._close_output(command, fd)
                    break
                self._pass_output(command, fd, data)
        if command.outputs:
            return  # window exhausted (waiting for OUT_ACK) or more to read
        self._close_stdin(command)
        remove_sync(command.request)
        assert command.status is not None
        self.send(command.cid, EXIT, STATUS.pack(command.status))
        del self.commands[command.cid]


def main() -> int:
    return Executor(0, 1).run()


if __name__ == "__main__":
    sys.exit(main())
