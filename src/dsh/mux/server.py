"""The per-user mux: keeps SSH connections and executors so that dsh need not.

The first dsh that finds no mux starts one (``mux/client.start_mux``: detached,
its own session, like OpenSSH's ControlPersist); it listens on a Unix socket
in the user's runtime directory (mode 0700), serves only peers of its own
uid (SO_PEERCRED), and exits when it has had nothing to do for ``idle``
seconds, or on SIGTERM. Each client gets a thread: it receives dsh's
request with its stdin, stdout and stderr (SCM_RIGHTS), starts the command
on the node (mux/pool.py), answers STARTED or FAILED, relays dsh's signals, and
sends the exit status; when dsh goes away mid-command the command is
killed. Protocol: mux/protocol.py. See README.md, "The mux and the executor".
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import select
import signal
import socket
import struct
import sys
import threading
import time

from ..errors import ClientGone, NodeFailure
from ..request import Job, RequestError
from ..ssh.stdio import Stdio
from . import protocol as mp
from .client import LOCK_NAME
from .config import MuxConfig
from .pool import NodePool
from .runs import Run

log = logging.getLogger(__name__)

_PEERCRED = struct.Struct("3i")


def peer_uid(conn: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of a Unix socket."""
    pid, uid, _gid = _PEERCRED.unpack(
        conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    )
    return pid, uid


def _send(conn: socket.socket, kind: int, body: dict[str, mp.Value]) -> bool:
    try:
        conn.sendall(mp.encode(kind, body))
        return True
    except OSError:
        return False


def _peer_closed(conn: socket.socket) -> bool:
    readable, _, _ = select.select([conn], [], [], 0)
    if not readable:
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class ClientHandler:
    """One dsh, one command: from its request to its exit status."""

    def __init__(self, conn: socket.socket, server: MuxServer, peer: int) -> None:
        self.conn = conn
        self.server = server
        self.pool = server.pool
        self.peer = peer
        self.reader = mp.MessageReader(mp.TO_MUX)
        self.pending: list[tuple[int, dict[str, mp.Value]]] = []

    def _receive(self) -> tuple[int, dict[str, mp.Value], list[int]]:
        """The next message and the descriptors that came with it."""
        fds: list[int] = []
        while not self.pending:
            data, got, _flags, _addr = socket.recv_fds(self.conn, 65536, 3)
            fds += got
            if not data:
                _close_all(fds)
                raise mp.MuxProtocolError("closed before a request")
            try:
                self.pending += self.reader.feed(data)
            except mp.MuxProtocolError:
                _close_all(fds)
                raise
        kind, body = self.pending.pop(0)
        return kind, body, fds

    def serve(self) -> None:
        try:
            kind, body, fds = self._receive()
            if fds or kind not in (mp.REQUEST, mp.STOP):
                _close_all(fds)
                raise mp.MuxProtocolError("expected a request")
            if kind == mp.STOP:
                running = self.server.stop()
                log.info("client %d asked the mux to stop (%d running)", self.peer, running)
                _send(self.conn, mp.STOPPING, {"pid": os.getpid(), "running": running})
                return
            job = Job.from_value(body)
            if not _send(self.conn, mp.ACCEPTED, {}):
                return
            kind, _, fds = self._receive()
            if kind != mp.STDIO or len(fds) != 3:
                _close_all(fds)
                raise mp.MuxProtocolError("expected 3 descriptors")
        except (mp.MuxProtocolError, RequestError, OSError) as exc:
            log.warning("client %d: %s", self.peer, exc)
            _send(self.conn, mp.REFUSED, {"message": f"bad request: {exc}"})
            return
        stdio = Stdio(fds[0], fds[1], fds[2], term=job.term, columns=job.columns, lines=job.lines)
        try:
            run = self.pool.start(job, stdio, lambda: _peer_closed(self.conn))
        except NodeFailure as exc:
            _close_all(fds)
            message = str(exc).removeprefix(f"node {exc.node}: ")
            _send(self.conn, mp.FAILED, {"message": message, "transport": exc.transport})
            return
        except ClientGone:
            _close_all(fds)
            return
        log.debug("client %d: started on %s via %s", self.peer, job.node, run.via)
        if not _send(self.conn, mp.STARTED, {"via": run.via}):
            run.abort()
            run.done.close()
            return
        self._until_done(run)

    def _until_done(self, run: Run) -> None:
        try:
            while True:
                readable, _, _ = select.select([self.conn.fileno(), run.done.fileno()], [], [])
                if run.done.fileno() in readable:
                    status, lost = run.result()
                    if status is not None:
                        _send(self.conn, mp.EXIT, {"status": status})
                    else:
                        _send(self.conn, mp.LOST, {"message": lost or "lost"})
                    return
                try:
                    data = self.conn.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    log.debug("client %d went away: killing its command", self.peer)
                    run.abort()
                    return
                try:
                    messages = self.reader.feed(data)
                except mp.MuxProtocolError as exc:
                    log.warning("client %d: %s; killing its command", self.peer, exc)
                    run.abort()
                    return
                for kind, body in messages:
                    if kind == mp.SIGNAL:
                        signum = mp.get_int(body, "signum")
                        if 0 < signum < signal.NSIG:
                            run.signal(signum)
        finally:
            run.done.close()


class MuxServer:
    def __init__(self, config: MuxConfig, pool: NodePool) -> None:
        self.config = config
        self.pool = pool
        self.active = 0
        self.draining = False  # dsh --mux-stop: no new clients, exit when the last one ends
        self.last_active = time.monotonic()
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        self._bound: tuple[int, int] | None = None

    def _on_signal(self, _signum: int, _frame: object) -> None:
        os.write(self._wake_w, b"x")

    def stop(self) -> int:
        """Take no more commands; exit once the running ones have ended. Returns how many run."""
        with self._lock:
            self.draining = True
            running = self.active - 1  # (not the client asking)
        os.write(self._wake_w, b"d")
        return running

    def serve(self, ready_fd: int | None) -> int:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.config.socket)
        st = os.stat(self.config.socket)
        self._bound = (st.st_dev, st.st_ino)
        listener.listen(128)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        if ready_fd is not None:
            os.write(ready_fd, b"ok")
            os.close(ready_fd)
        log.info(
            "mux %d listening on %s (idle timeout %gs)",
            os.getpid(),
            self.config.socket,
            self.config.idle,
        )
        try:
            self._loop(listener)
        finally:
            self._shutdown(listener)
        return 0

    def _loop(self, listener: socket.socket) -> None:
        while True:
            readable, _, _ = select.select([listener.fileno(), self._wake_r], [], [], 1.0)
            if self._wake_r in readable and self._signalled():
                return
            with self._lock:
                draining = self.draining
            if draining:
                break
            if listener.fileno() in readable:
                self._accept(listener)
            with self._lock:
                if self.active == 0 and time.monotonic() - self.last_active >= self.config.idle:
                    log.info("mux %d: idle for %gs, exiting", os.getpid(), self.config.idle)
                    return
        # dsh --mux-stop: the socket goes now (the next dsh starts a new mux);
        # this one exits when its commands have ended.
        self._release_socket(listener)
        while True:
            with self._lock:
                if self.active == 0:
                    break
            readable, _, _ = select.select([self._wake_r], [], [], 0.2)
            if readable and self._signalled():
                return
        log.info("mux %d: stopped (dsh --mux-stop)", os.getpid())

    def _signalled(self) -> bool:
        """Empty the wake-up pipe; True if a signal wrote to it (not only stop())."""
        text = os.read(self._wake_r, 64)
        if b"x" in text:
            log.info("mux %d: stopping on a signal", os.getpid())
            return True
        return False

    def _accept(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        pid, uid = peer_uid(conn)
        if uid != os.geteuid():
            log.warning("refused a client of uid %d (pid %d): not this mux's user", uid, pid)
            _send(conn, mp.REFUSED, {"message": "this mux serves another user"})
            conn.close()
            return
        with self._lock:
            self.active += 1
        threading.Thread(target=self._serve_client, args=(conn, pid), daemon=True).start()

    def _serve_client(self, conn: socket.socket, pid: int) -> None:
        try:
            ClientHandler(conn, self, pid).serve()
        except Exception:
            log.exception("client %d: handler failed", pid)
        finally:
            conn.close()
            with self._lock:
                self.active -= 1
                self.last_active = time.monotonic()

    def _release_socket(self, listener: socket.socket) -> None:
        """Close the listener and remove the socket, unless a new mux has it by now."""
        if listener.fileno() < 0:
            return
        lock = os.open(os.path.join(os.path.dirname(self.config.socket), LOCK_NAME),
                       os.O_RDWR | os.O_CREAT, 0o600)  # fmt: skip
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # not while a dsh is starting a new mux
            listener.close()
            try:
                st = os.stat(self.config.socket)
                if (st.st_dev, st.st_ino) == self._bound:
                    os.unlink(self.config.socket)
            except OSError:
                pass
        finally:
            os.close(lock)

    def _shutdown(self, listener: socket.socket) -> None:
        """Stop taking clients (the socket goes, unless a new mux has it), close
        the connections (their commands are killed), let clients hear of it."""
        self._release_socket(listener)
        self.pool.close()
        deadline = time.monotonic() + self.config.shutdown_grace
        while time.monotonic() < deadline:
            with self._lock:
                if self.active == 0:
                    break
            time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dsh-mux", description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True)
    parser.add_argument("--idle", type=float, required=True)
    parser.add_argument("--executor-max-age", type=float, required=True)
    parser.add_argument("--executor-retry", type=float, required=True)
    parser.add_argument("--ready-fd", type=int)
    parser.add_argument("--log", help="log file (default: stderr)")
    parser.add_argument("-v", dest="verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    config = MuxConfig(
        socket=args.socket,
        idle=args.idle,
        executor_max_age=args.executor_max_age,
        executor_retry=args.executor_retry,
        log_file=args.log,
        verbose=args.verbose,
    )
    os.umask(0o077)
    logging.basicConfig(
        filename=config.log_file,
        level=logging.DEBUG if config.verbose else logging.INFO,
        format="%(asctime)s mux[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("paramiko").setLevel(logging.WARNING)
    pool = NodePool(config)
    try:
        return MuxServer(config, pool).serve(args.ready_fd)
    except OSError as exc:
        log.error("mux cannot serve on %s: %s", config.socket, exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
