"""Which node runs the command: the local daemon's answer, minus nodes backed off.

A node whose SSH failed (refused, timed out, authentication, host key) is
avoided for ``backoff`` seconds by every dsh of this user, like distcc's
host backoff: without it, a node whose dshd is fine but whose sshd is not
would stay the best node and cost every compile a failed connection. Only
transport failures mark a node; a command failing on it never does.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from .errors import DaemonUnreachable
from .status import ClusterStatus, parse_status


def ask(host: str, port: int, timeout: float) -> str:
    """The whole answer of one of the daemon's ports."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise DaemonUnreachable(f"cannot reach dshd at {host}:{port}: {reason}") from None
    return b"".join(chunks).decode("utf-8", "replace")


def ask_best(host: str, port: int, timeout: float) -> str | None:
    answer = ask(host, port, timeout).strip()
    if not answer:
        raise DaemonUnreachable(f"dshd at {host}:{port} gave an empty answer")
    return None if answer == "NONE" else answer


def ask_status(host: str, port: int, timeout: float) -> ClusterStatus:
    return parse_status(ask(host, port, timeout))


def runtime_dir() -> Path:
    """Per-user state: $XDG_RUNTIME_DIR/dsh, else ~/.cache/dsh."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    root = Path(base) / "dsh" if base else Path.home() / ".cache" / "dsh"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return root


class Backoff:
    """Nodes to avoid, as files whose mtime is the time of the last failure."""

    def __init__(self, seconds: float, directory: Path | None = None) -> None:
        self.seconds = seconds
        self._dir = directory

    @property
    def directory(self) -> Path:
        if self._dir is None:
            self._dir = runtime_dir() / "backoff"
            self._dir.mkdir(mode=0o700, exist_ok=True)
        return self._dir

    def _file(self, node: str) -> Path:
        return self.directory / node.replace("/", "_")

    def active(self, node: str, now: float | None = None) -> bool:
        if self.seconds <= 0:
            return False
        try:
            failed_at = self._file(node).stat().st_mtime
        except OSError:
            return False
        return (now if now is not None else time.time()) - failed_at < self.seconds

    def mark(self, node: str) -> None:
        if self.seconds > 0:
            try:
                self._file(node).touch()
                os.utime(self._file(node))
            except OSError:
                pass

    def clear(self, node: str) -> None:
        try:
            self._file(node).unlink()
        except OSError:
            pass


def next_node(status: ClusterStatus, exclude: set[str], backoff: Backoff) -> str | None:
    """The best node not yet tried and not backed off (the local one is never backed off)."""
    for node in status.candidates():
        if node.name in exclude:
            continue
        if node.name != status.self_name and backoff.active(node.name):
            continue
        return node.name
    return None
