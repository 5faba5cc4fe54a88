"""A node's resident executor as the mux sees it: one SSH channel, many commands.

``ExecutorLink`` starts executor.py on a node through the user's login shell
and owns the channel: one reader thread takes every frame off it and hands
it to the command it belongs to (``ExecRun``). Writes to the channel come
from several threads (a command's start, its stdin, its output
acknowledgements, signals) and go through one lock, a whole frame at a time.

Each ``ExecRun`` writes its command's output to the descriptors dsh passed
(in a thread of its own: a slow reader blocks that command only, and the
flow-control window keeps its backlog bounded) and reads dsh's stdin when
it is forwarded.
"""

from __future__ import annotations

import logging
import queue
import select
import shlex
import signal
import threading
import time
from collections.abc import Callable

import paramiko

from ..errors import ClientGone, ExecutorLost, ExecutorUnavailable, NodeFailure
from ..node import protocol as ep
from ..node.launch import KILL_GRACE
from ..node.source import executor_source
from ..request import Job
from ..ssh import connect as ssh
from ..ssh.stdio import Stdio, read_input, write_all
from .config import MuxConfig
from .runs import Wakeup

log = logging.getLogger(__name__)


def executor_command(python: str) -> str:
    return f"exec {shlex.quote(python)} -c {shlex.quote(executor_source())} dsh-executor"


class ExecutorLink:
    def __init__(
        self, client: paramiko.SSHClient, node: str, python: str, config: MuxConfig
    ) -> None:
        self.config = config
        self.client = client
        self.node = node
        self.python = python
        self.started_at = time.monotonic()
        self.pid = 0
        self.channel: paramiko.Channel | None = None
        self.runs: dict[int, ExecRun] = {}
        self.alive = False
        self.retired = False  # takes no new commands; closes when the last one ends
        self._next_cid = 1
        self._lock = threading.Lock()  # runs, _next_cid
        self._send_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"executor {self.pid} on {self.node}"

    # -- start -----------------------------------------------------------------

    def start(self) -> None:
        timeout = self.config.hello_timeout
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise ExecutorUnavailable("connection closed")
        try:
            channel = transport.open_session(timeout=ssh.CHANNEL_TIMEOUT)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise ExecutorUnavailable(f"cannot start a session: {exc}") from None
        # paramiko waits for the server's answer to exec without a time limit:
        # closing the channel is what ends a wait that has gone on too long.
        watchdog = threading.Timer(timeout, channel.close)
        watchdog.start()
        try:
            self._hello(channel, timeout)
        finally:
            watchdog.cancel()

    def _hello(self, channel: paramiko.Channel, timeout: float) -> None:
        try:
            channel.exec_command(executor_command(self.python))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            channel.close()
            raise ExecutorUnavailable(f"cannot start the executor: {exc}") from None
        buffer, errors = b"", b""
        deadline = time.monotonic() + timeout
        while True:
            select.select([channel.fileno()], [], [], 0.5)
            while channel.recv_stderr_ready():
                errors = (errors + channel.recv_stderr(4096))[-4096:]
            while channel.recv_ready():
                buffer += channel.recv(65536)
            try:
                hello = ep.parse_hello(buffer)
            except ep.ProtocolError as exc:
                channel.close()
                raise ExecutorUnavailable(str(exc)) from None
            if hello is not None:
                break
            why = None
            if len(buffer) > ep.MAX_PREAMBLE:
                why = "no hello from the executor"
            elif channel.exit_status_ready():
                why = f"the executor exited (status {channel.recv_exit_status()})"
            elif channel.closed or time.monotonic() > deadline:
                why = f"no hello from the executor within {timeout:g}s"
            if why:
                channel.close()
                detail = errors.decode("utf-8", "replace").strip().splitlines()
                raise ExecutorUnavailable(why + (f": {detail[-1]}" if detail else ""))
        version, self.pid, junk, rest = hello
        if version != ep.VERSION:
            channel.close()
            raise ExecutorUnavailable(f"executor speaks version {version}, not {ep.VERSION}")
        if junk.strip():
            log.info("%s: the login shell printed %r before the executor started", self, junk)
        self.channel = channel
        self.alive = True
        self._reader = ep.FrameReader(ep.TO_MUX)
        self._dispatch(rest)
        threading.Thread(target=self._read_loop, name=f"executor-{self.node}", daemon=True).start()
        log.info("%s started (%s)", self, self.python)

    # -- the channel -------------------------------------------------------------

    def send(self, cid: int, kind: int, payload: bytes = b"") -> bool:
        return self.send_frames(ep.frame(cid, kind, payload))

    def send_frames(self, frames: bytes) -> bool:
        """Whole frames, in one piece (one SSH packet when they fit)."""
        channel = self.channel
        if channel is None or not self.alive:
            return False
        with self._send_lock:
            try:
                channel.sendall(frames)
                return True
            except (OSError, EOFError, paramiko.SSHException):
                return False

    def _read_loop(self) -> None:
        channel = self.channel
        assert channel is not None
        why = "the channel closed"
        try:
            while True:
                select.select([channel.fileno()], [], [], 5.0)
                got = False
                while channel.recv_ready():
                    self._dispatch(channel.recv(65536))
                    got = True
                while channel.recv_stderr_ready():
                    text = channel.recv_stderr(65536).decode("utf-8", "replace")
                    log.warning("%s says on stderr: %s", self, text.rstrip())
                    got = True
                if not got and (channel.closed or channel.eof_received):
                    if channel.exit_status_ready():
                        why = f"it exited with status {channel.recv_exit_status()}"
                    break
        except ep.ProtocolError as exc:
            why = f"protocol error: {exc}"
        except Exception as exc:  # the reader must always end in _lost
            log.exception("%s: reader failed", self)
            why = f"reader failed: {exc}"
        self._lost(why)

    def _dispatch(self, data: bytes) -> None:
        for cid, kind, payload in self._reader.feed(data):
            if cid == 0 or kind == ep.NOTICE:
                log.warning("%s: %s", self, payload.decode("utf-8", "replace"))
                continue
            with self._lock:
                run = self.runs.get(cid)
            if run is not None:
                run.on_frame(kind, payload)

    def _lost(self, why: str) -> None:
        """The executor or its channel is gone: fail every command it had."""
        if not self.alive:
            return
        self.alive = False
        expected = self.retired and not self.runs
        (log.info if expected else log.warning)("%s ended: %s", self, why)
        with self._lock:
            runs = list(self.runs.values())
            self.runs.clear()
        orphans = [run.pgid for run in runs if run.pgid and run.status is None]
        # A connection that dsh closed because the node stopped answering says so.
        message = ssh.closed_because(self.client) or f"the remote executor ended ({why})"
        for run in runs:
            run.link_lost(f"node {self.node}: {message}")
        if orphans:
            self._kill_orphans(orphans)
        if self.channel is not None:
            self.channel.close()

    def _kill_orphans(self, pgids: list[int]) -> None:
        """An executor that was killed could not kill its commands: do it over SSH.

        (When only the channel closed, the executor has done it already and
        these finds nothing; a process group id is not reused within seconds.)
        """
        groups = " ".join(f"-{pgid}" for pgid in pgids)
        script = (
            f"kill -HUP -- {groups} 2>/dev/null; sleep {KILL_GRACE:g}; "
            f"kill -KILL -- {groups} 2>/dev/null; exit 0"
        )
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            return
        try:
            channel = transport.open_session(timeout=ssh.CHANNEL_TIMEOUT)
            channel.exec_command(script)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            log.warning("%s: cannot kill process groups %s: %s", self, groups, exc)
            return
        log.info("%s: killing the process groups it left: %s", self, groups)
        # Nobody waits for this channel; sshd closes it when the script ends.

    def close(self) -> None:
        """No more commands: the executor exits when its stdin closes."""
        self.retired = True
        if self.channel is not None:
            self.channel.close()

    def retire(self) -> None:
        self.retired = True
        with self._lock:
            idle = not self.runs
        if idle:
            self.close()

    def _forget(self, cid: int) -> None:
        with self._lock:
            self.runs.pop(cid, None)
            idle = not self.runs
        if idle and self.retired:
            self.close()

    # -- commands ----------------------------------------------------------------

    def open(self, job: Job, stdio: Stdio) -> ExecRun:
        request, forward_stdin = job.request, job.stdin
        body = request.to_json()
        if len(body) > ep.MAX_PAYLOAD:
            raise ExecutorLost(self.node, "command line too long for the executor", False)
        with self._lock:
            cid = self._next_cid
            self._next_cid += 1
            ready_timeout = request.sync_timeout + job.start_grace
            run = ExecRun(self, cid, stdio, forward_stdin, ready_timeout)
            self.runs[cid] = run
        if not self.send(cid, ep.OPEN, body):
            self._forget(cid)
            raise ExecutorLost(self.node, "the remote executor is gone", transport=False)
        return run


class ExecRun:
    """One command on an executor, from OPEN to its exit status."""

    via = "executor"

    def __init__(
        self, link: ExecutorLink, cid: int, stdio: Stdio, forward_stdin: bool, ready_timeout: float
    ) -> None:
        self.link = link
        self.ready_timeout = ready_timeout
        self.cid = cid
        self.stdio = stdio
        self.forward_stdin = forward_stdin
        self.state = "opening"  # ready, started, failed, done
        self.failure: NodeFailure | None = None
        self.pgid = 0
        self.status: int | None = None
        self.lost: str | None = None
        self._cond = threading.Condition()
        self._in_credit = ep.IN_WINDOW
        self._stopping = False
        self._output: queue.SimpleQueue[tuple[int, bytes] | tuple[str, object]] = (
            queue.SimpleQueue()
        )
        self.done = Wakeup()  # notified when result() is there
        self._stop = Wakeup()  # stops the stdin pump
        self._pump: threading.Thread | None = None

    # -- frames, from the link's reader thread -----------------------------------

    def on_frame(self, kind: int, payload: bytes) -> None:
        if kind == ep.READY:
            self._set_state("ready")
        elif kind == ep.FAILED:
            text = payload.decode("utf-8", "replace")
            what, _, message = text.partition(" ")
            failure = NodeFailure(self.link.node, message or what, transport=False)
            self.link._forget(self.cid)
            self._set_state("failed", failure)
        elif kind == ep.SPAWNED:
            (self.pgid,) = ep.COUNT.unpack(payload)
        elif kind == ep.STDOUT:
            self._output.put((self.stdio.stdout, payload))
        elif kind == ep.STDERR:
            self._output.put((self.stdio.stderr, payload))
        elif kind == ep.IN_ACK:
            (count,) = ep.COUNT.unpack(payload)
            with self._cond:
                self._in_credit += count
                self._cond.notify_all()
        elif kind == ep.EXIT:
            (status,) = ep.STATUS.unpack(payload)
            self.status = status
            self.link._forget(self.cid)
            self._output.put(("exit", status))

    def link_lost(self, message: str) -> None:
        with self._cond:
            if self.state in ("opening", "ready"):
                self.state = "failed"
                self.failure = ExecutorLost(self.link.node, message, transport=False)
                self._cond.notify_all()
            elif self.state == "started":
                self._output.put(("lost", message))

    def _set_state(self, state: str, failure: NodeFailure | None = None) -> None:
        with self._cond:
            if self.state in ("failed", "done"):
                return
            self.state = state
            self.failure = failure
            self._cond.notify_all()

    # -- the client handler's side -----------------------------------------------

    def wait_started(self, client_gone: Callable[[], bool]) -> None:
        """Until READY (then GO: committed) or FAILED; NodeFailure if it cannot start."""
        deadline = time.monotonic() + self.ready_timeout
        late = False
        with self._cond:
            while self.state == "opening" and not client_gone():
                late = time.monotonic() > deadline
                if late:
                    break
                self._cond.wait(0.2)
            # The last moment not to start it: is its dsh still there?
            if self.state == "ready" and not client_gone():
                self.state = "started"  # under the lock: link_lost sees one or the other
            state = self.state
        if state in ("opening", "ready") and late:
            self.abort()
            self.link.retire()  # a stuck executor takes no more commands
            raise ExecutorLost(
                self.link.node, f"the remote executor did not answer in {self.ready_timeout:g}s",
                transport=False,
            )  # fmt: skip
        if state in ("opening", "ready"):  # dsh went away before its command started
            self.abort()
            raise ClientGone()
        if state == "failed":
            assert self.failure is not None
            self._stop.close()
            raise self.failure
        # Committed. If the GO is lost with the channel, the reader thread
        # reports the command lost: it is never run a second time.
        threading.Thread(target=self._write_loop, name=f"out-{self.cid}", daemon=True).start()
        if self.forward_stdin:
            self.link.send(self.cid, ep.GO)
            # Started and published in one step under the lock: _finish (on
            # the writer thread, maybe already running) must never see a
            # thread it cannot join, nor miss one that runs.
            with self._cond:
                if not self._stopping:
                    pump = threading.Thread(target=self._pump_stdin, daemon=True)
                    pump.start()
                    self._pump = pump
        else:
            self._stop.close()
            self.link.send_frames(ep.frame(self.cid, ep.GO) + ep.frame(self.cid, ep.STDIN_EOF))

    def signal(self, signum: int) -> None:
        self.link.send(self.cid, ep.SIGNAL, bytes([signum]))

    def abort(self) -> None:
        """dsh is gone: the executor kills the group; what comes back is dropped."""
        self.link.send(self.cid, ep.KILL)
        self.link._forget(self.cid)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            started = self.state == "started"
            if not started:
                self.state = "done"
        if started:
            self._output.put(("lost", "aborted"))  # the write loop ends and closes
        else:
            self._stop.close()

    # -- threads -------------------------------------------------------------------

    def _pump_stdin(self) -> None:
        """dsh's stdin to the command, within the window the executor grants."""
        try:
            while True:
                with self._cond:
                    while self._in_credit <= 0 and not self._stopping:
                        self._cond.wait()
                    if self._stopping:
                        return
                    credit = self._in_credit
                data = read_input(self.stdio.stdin, self._stop.fileno(), min(ep.CHUNK, credit))
                if data is None:
                    return
                if not data:
                    self.link.send(self.cid, ep.STDIN_EOF)
                    return
                with self._cond:
                    self._in_credit -= len(data)
                if not self.link.send(self.cid, ep.STDIN, data):
                    return
        finally:
            self._stop.close()  # only this thread polls it

    def _write_loop(self) -> None:
        """Output to dsh's descriptors in order, then the result; acks as it goes."""
        unacked = 0
        result: tuple[str, object] = ("lost", "no result")
        while True:
            item = self._output.get()
            if isinstance(item[0], str):
                result = item
                break
            fd, data = item
            assert isinstance(fd, int) and isinstance(data, bytes)
            if not self._stopping and not write_all(fd, data):
                # Its reader went away (`dsh yes | head -1`): a local command
                # would die of SIGPIPE, so the remote one is stopped (as on
                # the other paths) and dsh reports what the shell would.
                self.link.send(self.cid, ep.KILL)
                self.link._forget(self.cid)
                result = ("exit", 128 + signal.SIGPIPE)
                break
            unacked += len(data)
            if unacked >= self.link.config.ack_batch or self._output.empty():
                self.link.send(self.cid, ep.OUT_ACK, ep.COUNT.pack(unacked))
                unacked = 0
        kind, value = result
        if kind == "exit":
            assert isinstance(value, int)
            self.status = value
        else:
            self.lost = str(value)
        self._finish()

    def _finish(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            pump = self._pump
        self._stop.notify()
        if pump is None and self.forward_stdin:
            self._stop.close()  # the pump never started and never will: nobody else closes it
        if pump is not None:
            pump.join(5.0)
        # A pump still blocked (its channel send stuck) keeps stdin.
        self.stdio.close(stdin=pump is None or not pump.is_alive())
        with self._cond:
            self.state = "done"
        self.done.notify()

    def result(self) -> tuple[int | None, str | None]:
        """(exit status, None), or (None, why it was lost); once ``done`` was notified."""
        return (self.status if self.lost is None else None), self.lost
