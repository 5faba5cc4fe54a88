"""dsh's side of the mux: find it (or start it), hand it the command, wait for the end.

Rules of this file: it is on dsh's fast path, so it imports only what a
bare interpreter has cheaply (no paramiko, no psutil, no subprocess). The
mux itself (mux/server.py) is started as a separate, detached process.
"""

import os
import select
import sys
import time

from .. import __version__
from ..errors import MuxLost, MuxUnavailable, NodeFailure
from . import protocol as mp

TYPE_CHECKING = False  # mypy knows this name; typing is not imported at run time
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable

    from ..client.config import ClientConfig
else:
    import _socket as socket  # socket.py builds enums at import: longer than a dsh run

SOCKET_NAME = f"mux-{mp.VERSION}-{__version__}.sock"  # old muxes and new dsh never meet
LOCK_NAME = "mux.lock"  # held while a mux is started, and by a mux that is exiting
LOG_NAME = "mux.log"
FAILED_NAME = "mux.failed"  # a mux failed to start: go direct for mux_failed_hold seconds
MAX_PATH = 100  # sun_path is 108 bytes; longer paths go through /proc/self/fd
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from dsh.mux.server import main; sys.exit(main(sys.argv[2:]))"  # noqa: E501


def _unix_connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if len(path.encode()) <= MAX_PATH:
            sock.connect(path)
        else:
            dirfd = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY)
            try:
                sock.connect(f"/proc/self/fd/{dirfd}/{os.path.basename(path)}")
            finally:
                os.close(dirfd)
    except BaseException:
        sock.close()
        raise
    return sock


def _usable_fds() -> list[int]:
    """0, 1 and 2 to pass; a closed one is replaced by /dev/null."""
    fds = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            fds.append(os.open(os.devnull, os.O_RDWR))
    return fds


def mux_options(config: "ClientConfig") -> list[str]:
    """The mux's command line: the settings of the dsh that starts it."""
    return [
        "--idle", f"{config.mux_idle:g}",
        "--executor-max-age", f"{config.executor_max_age:g}",
        "--executor-retry", f"{config.executor_retry:g}",
    ]  # fmt: skip


def start_mux(directory: str, config: "ClientConfig") -> None:
    """Start a mux, detached (double fork, own session), and wait until it listens."""
    path = os.path.join(directory, SOCKET_NAME)
    log_path = os.path.join(directory, LOG_NAME)
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        if os.stat(log_path).st_size > config.mux_log_keep:  # the old one: mux.log.1
            os.replace(log_path, log_path + ".1")
    except OSError:
        pass
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.setsid()
            if os.fork():
                os._exit(0)
            os.close(ready_r)
            null = os.open(os.devnull, os.O_RDWR)
            log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.dup2(null, 0)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            # Nothing else of dsh's: not make's jobserver pipe, nor any pipe
            # whose reader waits for EOF.
            os.closerange(3, ready_w)
            os.closerange(ready_w + 1, 65536)
            os.set_inheritable(ready_w, True)
            os.chdir("/")
            argv = [sys.executable, "-c", _BOOT, src, "--socket", path, "--log", log_path,
                    "--ready-fd", str(ready_w), *mux_options(config)]  # fmt: skip
            os.execv(sys.executable, argv)
        finally:
            os._exit(127)
    os.close(ready_w)
    try:
        os.waitpid(pid, 0)
        readable, _, _ = select.select([ready_r], [], [], config.mux_start_timeout)
        answer = os.read(ready_r, 16) if readable else b""
    finally:
        os.close(ready_r)
    if answer != b"ok":
        why = "did not start in time" if not readable else "exited at start"
        raise MuxUnavailable(f"the dsh mux {why} (see {log_path})")


def connect(directory: str, config: "ClientConfig") -> socket.socket:
    """A connection to this user's mux, started if there is none."""
    path = os.path.join(directory, SOCKET_NAME)
    try:
        return _unix_connect(path)
    except (FileNotFoundError, ConnectionRefusedError):
        pass
    failed = os.path.join(directory, FAILED_NAME)
    try:
        if time.time() - os.stat(failed).st_mtime < config.mux_failed_hold:
            raise MuxUnavailable(f"the dsh mux failed to start recently (see {LOG_NAME})")
    except FileNotFoundError:
        pass
    import fcntl  # (only here: 0.2 ms of every run otherwise)

    lock = os.open(os.path.join(directory, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one dsh starts it; the others wait, then connect
        try:
            return _unix_connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            pass
        try:
            os.unlink(path)  # a mux that died without removing it
        except FileNotFoundError:
            pass
        try:
            start_mux(directory, config)
        except MuxUnavailable:
            os.close(os.open(failed, os.O_WRONLY | os.O_CREAT, 0o600))
            os.utime(failed)
            raise
        return _unix_connect(path)
    except OSError as exc:
        raise MuxUnavailable(f"cannot reach the dsh mux at {path}: {exc}") from None
    finally:
        os.close(lock)


def ask_to_stop(directory: str) -> str:
    """dsh --mux-stop: what the running mux (if any) answered, as a line for the user."""
    try:
        sock = _unix_connect(os.path.join(directory, SOCKET_NAME))
    except (FileNotFoundError, ConnectionRefusedError):
        return "no mux is running"
    try:
        sock.sendall(mp.encode(mp.STOP, {}))
        reader = mp.MessageReader(mp.TO_DSH)
        while True:
            data = sock.recv(4096)
            if not data:
                return "the mux closed the connection"
            for kind, body in reader.feed(data):
                if kind == mp.STOPPING:
                    pid, running = mp.get_int(body, "pid"), mp.get_int(body, "running")
                    if running:
                        return f"mux {pid} stops once its {running} running command(s) end"
                    return f"mux {pid} stopped"
                if kind == mp.REFUSED:
                    return f"the mux refused: {mp.get_str(body, 'message')}"
    finally:
        sock.close()


class MuxCall:
    """One command through the mux: the dsh end of mux.ClientHandler."""

    def __init__(self, node: str, directory: str, config: "ClientConfig") -> None:
        self.node = node
        self.directory = directory
        self.config = config
        self.sock: socket.socket | None = None
        self.reader = mp.MessageReader(mp.TO_DSH)
        self.signals_sent = 0
        self.via = ""
        self._queue: list[tuple[int, dict[str, mp.Value]]] = []

    def _next(self) -> tuple[int, dict[str, mp.Value]] | None:
        """The next message from the mux; None when it closed the connection."""
        assert self.sock is not None
        while not self._queue:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise
            except OSError:
                data = b""
            if not data:
                return None
            try:
                self._queue += self.reader.feed(data)
            except mp.MuxProtocolError as exc:
                raise MuxLost(f"the dsh mux sent nonsense: {exc}") from None
        return self._queue.pop(0)

    def start(self, body: dict[str, mp.Value], stdio: "tuple[int, int, int] | None" = None) -> None:
        """Hand the command to the mux; return once it started on the node.
        ``stdio``: the descriptors the command gets (default dsh's own 0, 1, 2).

        NodeFailure: it could not start there (nothing ran; try another node).
        MuxUnavailable: no mux took it (nothing ran; use the direct path).
        MuxLost: a mux took it and died before saying whether it started.
        """
        message = mp.encode(mp.REQUEST, body)
        fds = _usable_fds() if stdio is None else list(stdio)
        for _attempt in range(3):
            self.sock = connect(self.directory, self.config)
            self.reader = mp.MessageReader(mp.TO_DSH)
            self._queue = []
            try:
                self.sock.sendall(message)
            except OSError:
                self.close()
                continue  # it was exiting (idle): the next attempt starts a new one
            # A mux that does not take the request in time is stuck: this dsh
            # goes its own way, and the mux, finding it gone, never starts it.
            self.sock.settimeout(self.config.mux_accept_timeout)
            try:
                answer = self._next()
            except TimeoutError:
                self.close()
                raise MuxUnavailable(
                    f"the dsh mux did not answer within {self.config.mux_accept_timeout:g}s "
                    f"(see {LOG_NAME})"
                ) from None
            self.sock.settimeout(None)
            if answer is None:
                self.close()
                continue
            if answer[0] == mp.REFUSED:
                raise MuxUnavailable(f"the dsh mux refused: {mp.get_str(answer[1], 'message')}")
            if answer[0] != mp.ACCEPTED:
                raise MuxLost(f"the dsh mux answered {answer[0]} to a request")
            break
        else:
            raise MuxUnavailable("the dsh mux closed the connection three times")
        # Only now the descriptors: in the socket of a mux that never took
        # them, they would keep a pipe open after this dsh has exited.
        ints = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)
        try:
            self.sock.sendmsg([mp.encode(mp.STDIO, {})],
                              [(socket.SOL_SOCKET, socket.SCM_RIGHTS, ints)])  # fmt: skip
        except OSError:
            pass  # it is gone: the answer below says so
        answer = self._next()
        if answer is None:
            raise self._ended("before it said whether the command started; not trying again")
        kind, reply = answer
        if kind == mp.FAILED:
            raise NodeFailure(
                self.node, mp.get_str(reply, "message"), transport=mp.get_bool(reply, "transport")
            )
        if kind != mp.STARTED:
            raise MuxLost(f"the dsh mux answered {kind} instead of STARTED")
        self.via = mp.get_str(reply, "via")

    def _ended(self, when: str) -> MuxLost:
        log = os.path.join(self.directory, LOG_NAME)
        return MuxLost(f"node {self.node}: the dsh mux ended {when} (see {log})")

    def relay_signal(self, signum: int) -> None:
        assert self.sock is not None
        self.signals_sent += 1
        try:
            self.sock.sendall(mp.encode(mp.SIGNAL, {"signum": signum}))
        except OSError:
            pass  # finish() hears that it is gone

    def finish(self, wakeup_fd: int, on_signal: "Callable[[MuxCall], None]") -> int:
        """Until the mux sends the exit status; relays signals meanwhile."""
        assert self.sock is not None
        # poll, not select: dsh -a holds descriptors for every node, and
        # select takes none above 1023.
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        poller.register(wakeup_fd, select.POLLIN)
        while True:
            if not self._queue:
                readable = {fd for fd, _ in poller.poll()}
                if wakeup_fd in readable:
                    on_signal(self)
                if self.sock.fileno() not in readable:
                    continue
            answer = self._next()
            if answer is None:
                raise self._ended("while the command ran; its outcome is unknown")
            kind, body = answer
            if kind == mp.EXIT:
                return mp.get_int(body, "status")
            if kind == mp.LOST:
                raise MuxLost(mp.get_str(body, "message"))

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
