"""One command in the mux, whichever way it runs on the node.

A run is what a client handler (mux/server.py) drives: ``wait_started`` (raises
NodeFailure if the command cannot start there, returns once it is committed),
then ``signal`` and ``abort`` from the handler while the run copies I/O in
threads of its own, and ``result`` once ``done`` was notified. A run owns
the descriptors dsh passed and closes them on every way out.

``ExecRun`` (mux/executor_link.py) runs it on the node's resident executor;
``ChannelRun`` here on an exec channel of its own, with rexec.py, as the
direct path does (and for ``-t``, which needs the pseudo-terminal sshd makes).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Protocol

import paramiko

from ..errors import ClientGone, ConnectionLost, NodeFailure
from ..request import Job
from ..ssh.session import Session
from ..ssh.stdio import Stdio


class Wakeup:
    """A pipe that wakes one thread blocked in poll; notify() is safe after close()."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._w, False)
        self._lock = threading.Lock()
        self._closed = False

    def fileno(self) -> int:
        return self._r

    def notify(self) -> None:
        with self._lock:
            if not self._closed:
                try:
                    os.write(self._w, b"x")
                except BlockingIOError:
                    pass  # already notified

    def close(self) -> None:
        """By the thread that polls it, once it no longer does."""
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self._r)
                os.close(self._w)


class Run(Protocol):
    via: str
    done: Wakeup

    def wait_started(self, client_gone: Callable[[], bool]) -> None: ...
    def signal(self, signum: int) -> None: ...
    def abort(self) -> None: ...
    def result(self) -> tuple[int | None, str | None]: ...


class ChannelRun:
    """rexec.py on a session channel of the persistent connection."""

    via = "channel"

    def __init__(
        self,
        client: paramiko.SSHClient,
        job: Job,
        stdio: Stdio,
        on_end: Callable[[], None] = lambda: None,
    ) -> None:
        self.job = job
        self.on_end = on_end
        self.stdio = stdio
        self.done = Wakeup()
        self._never = Wakeup()  # Session.finish's signal pipe: signals come via signal()
        self.session = Session(
            client,
            job.node,
            self._never.fileno(),
            forward_stdin=job.stdin,
            tty=job.request.pty,
            stdio=stdio,
        )
        self.status: int | None = None
        self.lost: str | None = None

    def wait_started(self, client_gone: Callable[[], bool]) -> None:
        if client_gone():  # (dsh gave up waiting for the mux: it must not run here)
            self._never.close()
            self.on_end()
            raise ClientGone()
        try:
            self.session.start(self.job.request, self.job.python, self.job.start_grace)
        except NodeFailure:
            self._never.close()
            self.on_end()
            raise
        threading.Thread(target=self._finish, daemon=True).start()

    def _finish(self) -> None:
        try:
            self.status = self.session.finish(lambda _session: None)
        except ConnectionLost as exc:
            self.lost = str(exc)
        except Exception as exc:  # a bug must still end the run and answer dsh
            self.lost = f"node {self.session.node}: {exc}"
        finally:
            self._never.close()
            self.on_end()
            if self.session.pump_alive():
                self.stdio.close(stdin=False)
            else:
                self.stdio.close()
            self.done.notify()

    def signal(self, signum: int) -> None:
        self.session.relay_signal(signum)

    def abort(self) -> None:
        self.session.abort()

    def result(self) -> tuple[int | None, str | None]:
        return self.status, self.lost
