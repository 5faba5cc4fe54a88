"""Process plumbing for a daemon started at boot: background, pidfile, user, logging."""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import pwd
import resource
import sys

from ..errors import ConfigError

log = logging.getLogger(__name__)


class Readiness:
    """The pipe through which a background daemon tells its starter how start-up went.

    The starting process stays in the foreground until the daemon has bound
    its ports, so that an init script sees a failure as a non-zero exit
    status and an error on stderr, not as a daemon that silently died.
    """

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def ready(self) -> None:
        background = self.fd is not None
        self._send(f"ready {os.getpid()}\n")
        if background:
            # Detach from the starter's terminal only now: start-up errors went there.
            devnull = os.open(os.devnull, os.O_RDWR)
            for target in (0, 1, 2):
                os.dup2(devnull, target)
            os.close(devnull)

    def failed(self, message: str) -> None:
        self._send(message.rstrip("\n") + "\n")

    def _send(self, text: str) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self.fd, text.encode())
            os.close(self.fd)
        self.fd = None


def daemonize(print_pid: bool) -> Readiness:
    """Fork into the background (own session, cwd /); only the daemon returns.

    The original process waits for the daemon's readiness message, prints its
    PID if asked (-p), and exits 0, or prints the daemon's error and exits 1.
    """
    read_fd, write_fd = os.pipe()
    first = os.fork()
    if first > 0:
        os.close(write_fd)
        chunks = []
        while chunk := os.read(read_fd, 4096):
            chunks.append(chunk)
        os.waitpid(first, 0)
        message = b"".join(chunks).decode(errors="replace")
        if message.startswith("ready "):
            if print_pid:
                sys.stdout.write(message.split()[1] + "\n")
                sys.stdout.flush()
            os._exit(0)
        sys.stderr.write(message or "dshd: the daemon died during start-up\n")
        sys.stderr.flush()
        os._exit(1)
    os.close(read_fd)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)  # the session leader exits so the daemon can never regain a terminal
    os.chdir("/")
    os.umask(0o022)
    return Readiness(write_fd)


def raise_fd_limit() -> None:
    """Use the hard limit on open files: a flood of clients must not hit 1024."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError):
        pass


def drop_privileges(user: str) -> None:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError(f"--user {user}: no such user") from None
    if os.geteuid() != 0:
        if entry.pw_uid == os.geteuid():
            return
        raise ConfigError(f"--user {user}: only root can switch users")
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    log.info("running as %s (uid %d)", user, entry.pw_uid)


def write_pidfile(path: str, user: str | None) -> None:
    try:
        with open(path, "w", encoding="ascii") as f:
            f.write(f"{os.getpid()}\n")
        if user and os.geteuid() == 0:
            entry = pwd.getpwnam(user)
            os.chown(path, entry.pw_uid, entry.pw_gid)
    except OSError as exc:
        raise ConfigError(f"cannot write pidfile {path}: {exc.strerror}") from None


def remove_pidfile(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot remove pidfile %s: %s", path, exc.strerror)


def setup_logging(verbose: bool, background: bool, log_file: str | None) -> None:
    """stderr in the foreground (systemd's journal takes it), else a file or syslog."""
    handler: logging.Handler
    if log_file:
        handler = logging.FileHandler(log_file)
        handler.setFormatter(
            logging.Formatter("%(asctime)s dshd[%(process)d] %(levelname)s %(message)s")
        )
    elif background and os.path.exists("/dev/log"):
        handler = logging.handlers.SysLogHandler(
            "/dev/log", facility=logging.handlers.SysLogHandler.LOG_DAEMON
        )
        handler.setFormatter(logging.Formatter("dshd[%(process)d]: %(levelname)s %(message)s"))
    elif background:
        handler = logging.NullHandler()
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("dshd: %(levelname)s: %(message)s"))
    root = logging.getLogger("dsh")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
