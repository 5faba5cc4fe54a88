"""The remote end of dsh: run one command the way the local caller would have.

dsh sends this file's source (after request.py and launch.py: node/source.py)
to the node and runs it as ``python3 -c SOURCE REQUEST``, where REQUEST is
``request.Request.to_json`` in base64: argv, directory, umask, forwarded
variables and the sync file. No argument ever passes through the remote
shell's parser, so spaces, quotes, ``$``, ``*``, newlines and non-UTF-8 bytes
arrive as they were. It must stay standard library only: it runs on the node
from its source text, not from an installed copy. What it shares with the
executor (the checks before the start, the start, the status) is launch.py's.

What it does, in order:

1. chdir and umask as the caller had them;
2. wait for the sync file (``waitfile SYNC TIMEOUT``) so that everything the
   caller wrote before is visible here too;
3. tell dsh on stderr that the command starts (``MARK`` + ``run PID RTMIN``), or why not
   (``MARK`` + ``err KIND MESSAGE``): until then dsh may still try elsewhere;
4. run the command in a process group of its own, relaying signals to the
   whole group; when the SSH channel closes under it (dsh killed, connection
   lost) it kills the group: nothing keeps running that nobody waits for;
   what the command leaves in its group when it exits gets SIGHUP, as at a
   logout;
5. remove the sync file and exit with the command's status (128+N if it was
   killed by signal N, as a shell reports it).

stdin, unless in a pseudo-terminal, arrives in frames (``FRAME``: a type
byte, a 4-byte length, data) so that signals and end of input can travel in
band with the data: D data, E end of input, S signal (one byte, its number).
A signal N sent with kill(1) over another channel arrives as SIGRTMIN+N
(RTMIN from the start mark), so that it can be told from the other two ways.
"""

from __future__ import annotations

import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time

# dsh:strip-begin (node/source.py sends request.py and launch.py ahead of this text)
from ..request import Request, RequestError
from .launch import (
    EXIT_NOT_STARTED,
    KILL_GRACE,
    cannot_enter,
    command_env,
    exit_status,
    prepare,
    remove_sync,
    spawn,
    spawn_failure,
    waitfile_problem,
)

# dsh:strip-end

MARK = b"\x00dsh-rexec:"
FRAME = struct.Struct("!cI")
RELAYED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def _ignore(_sig: int, _frame: object) -> None:
    pass


def _say(text: str) -> None:
    os.write(2, MARK + text.encode("utf-8", "replace") + b"\n")


def _read_exact(fd: int, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class Runner:
    def __init__(self, request: Request) -> None:
        self.request = request
        self.child: subprocess.Popen[bytes] | None = None
        self.relayed: int | None = None
        self.abandoned = False
        self.by_os: dict[int, int] = {}
        self.by_frame: dict[int, int] = {}
        self.by_kill: dict[int, int] = {}
        self.done: dict[int, int] = {}
        self.lock = threading.RLock()  # a signal handler may interrupt its holder

    def kill_group(self, sig: int) -> None:
        child = self.child
        if child is None:
            return
        try:
            if self.request.pty:
                os.kill(child.pid, sig)
            else:
                os.killpg(child.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def relay(self, sig: int) -> None:
        self.relayed = sig
        self.kill_group(sig)

    # dsh sends a signal either twice, as an SSH "signal" request (arriving
    # here as the signal itself) and as an S frame, because either may not
    # arrive (OpenSSH refuses the request for root), or, once it has sent
    # input that a frame could wait behind, once only, as SIGRTMIN+N from
    # kill(1). So the signals dsh sent are the larger of the first two counts
    # plus the third, and each is relayed once, by whichever way is first.

    def os_signal(self, sig: int, _frame: object = None) -> None:
        self.by_os[sig] = self.by_os.get(sig, 0) + 1
        self._maybe_relay(sig)

    def frame_signal(self, sig: int) -> None:
        self.by_frame[sig] = self.by_frame.get(sig, 0) + 1
        self._maybe_relay(sig)

    def kill_signal(self, sig: int) -> None:
        self.by_kill[sig] = self.by_kill.get(sig, 0) + 1
        self._maybe_relay(sig)

    def _on_kill(self, rt: int, _frame: object = None) -> None:
        self.kill_signal(rt - signal.SIGRTMIN)

    def _maybe_relay(self, sig: int) -> None:
        wanted = max(self.by_os.get(sig, 0), self.by_frame.get(sig, 0))
        wanted += self.by_kill.get(sig, 0)
        with self.lock:
            if wanted > self.done.get(sig, 0):
                self.done[sig] = wanted
                self.relay(sig)

    def pump_stdin(self) -> None:
        """Frames from the channel to the command; real EOF means dsh is gone."""
        child = self.child
        assert child is not None
        sink = child.stdin
        while True:
            header = _read_exact(0, FRAME.size)
            if header is None:
                break
            kind, length = FRAME.unpack(header)
            data = _read_exact(0, length) if length else b""
            if data is None:
                break
            if kind == b"D" and sink is not None:
                try:
                    sink.write(data)
                    sink.flush()
                except (BrokenPipeError, ValueError, OSError):
                    sink = None  # the command closed its input; discard the rest
            elif kind == b"E" and sink is not None:
                try:
                    sink.close()
                except OSError:
                    pass
                sink = None
            elif kind == b"S" and data:
                self.frame_signal(data[0])
        self.hang_up()

    def watch_hangup(self) -> None:
        """Poll fd 0 for hang-up alone: it shows even when pump_stdin is stuck
        writing to a command that does not read its input."""
        poller = select.poll()
        poller.register(0, 0)  # no events asked: POLLHUP and POLLERR come anyway
        while self.child is not None and self.child.poll() is None:
            if poller.poll(200):
                self.hang_up()
                return

    def hang_up(self) -> None:
        """The channel is closed: nobody reads the command's output any more."""
        child = self.child
        if child is None or self.abandoned:
            return
        self.abandoned = True
        self.kill_group(signal.SIGHUP)
        deadline = time.monotonic() + KILL_GRACE
        while child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        self.kill_group(signal.SIGKILL)

    def run(self) -> int:
        req = self.request
        os.umask(req.umask)
        waiter, problem = prepare(req)
        if waiter is not None:
            waiter.wait()
            problem = waitfile_problem(waiter)
        if problem is None:
            try:
                os.chdir(req.cwd)
            except OSError as exc:
                problem = cannot_enter(req.cwd, exc)
        if problem is not None:
            _say(f"err {problem}")
            return EXIT_NOT_STARTED
        env = command_env(dict(os.environb), req)
        for sig in RELAYED:
            if req.pty and sig in (signal.SIGINT, signal.SIGQUIT):
                # The terminal sends these to the command itself. A handler,
                # not SIG_IGN: an ignored signal would stay ignored in the child.
                signal.signal(sig, _ignore)
            else:
                signal.signal(sig, self.os_signal)
            signal.signal(signal.SIGRTMIN + sig, self._on_kill)
        # The mark goes out before the command can have done anything: from
        # here on dsh must never run it anywhere else.
        _say(f"run {os.getpid()} {signal.SIGRTMIN}")  # for kill(1) over another channel
        try:
            self.child = spawn(req, env, pipes=False, new_session=not req.pty)
        except OSError as exc:
            message, status = spawn_failure(req, exc)
            os.write(2, message)
            remove_sync(req)
            return status
        if not req.pty:
            threading.Thread(target=self.pump_stdin, daemon=True).start()
            threading.Thread(target=self.watch_hangup, daemon=True).start()
        status = self.child.wait()
        if self.relayed is not None or self.abandoned:
            # Whatever the command left behind in its group goes with it.
            self.kill_group(signal.SIGKILL)
        else:
            # Background processes it left hold the channel open and nobody
            # waits for them: they get the hang-up a logout gives (nohup'ed
            # ones survive, as they would a logout).
            self.kill_group(signal.SIGHUP)
        remove_sync(req)
        return exit_status(status)


def main() -> int:
    from base64 import b64decode

    try:
        request = Request.from_json(b64decode(sys.argv[1], validate=True))
    except (IndexError, ValueError, RequestError) as exc:
        _say(f"err protocol bad request: {exc}")
        return EXIT_NOT_STARTED
    return Runner(request).run()


if __name__ == "__main__":
    sys.exit(main())
