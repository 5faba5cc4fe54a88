"""Which node to try next: the daemon's order, minus nodes tried or backed off.

A node whose SSH failed (refused, timed out, authentication, host key) is
avoided for ``backoff`` seconds by every dsh of this user, like distcc's
host backoff: without it, a node whose dshd is fine but whose sshd is not
would stay the best node and cost every compile a failed connection. Only
transport failures mark a node; a command failing on it never does. The
state is a file per node in the user's runtime directory, whose mtime is
the time of the last failure: shared by every dsh of the user, no daemon.
"""

import os
import time

from ..core.status import ClusterView
from .rundir import runtime_dir


class Backoff:
    """Nodes to avoid, as files whose mtime is the time of the last failure."""

    def __init__(self, seconds: float, directory: str | None = None) -> None:
        self.seconds = seconds
        self._dir = directory

    @property
    def directory(self) -> str:
        if self._dir is None:
            directory = os.path.join(runtime_dir(), "backoff")
            try:
                os.mkdir(directory, 0o700)
            except FileExistsError:
                pass
            self._dir = directory
        return self._dir

    def _file(self, node: str) -> str:
        return os.path.join(self.directory, node.replace("/", "_"))

    def active(self, node: str, now: float | None = None) -> bool:
        if self.seconds <= 0:
            return False
        try:
            failed_at = os.stat(self._file(node)).st_mtime
        except OSError:
            return False
        return (now if now is not None else time.time()) - failed_at < self.seconds

    def mark(self, node: str) -> None:
        if self.seconds > 0:
            try:
                path = self._file(node)
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
                os.utime(path)
            except OSError:
                pass

    def clear(self, node: str) -> None:
        try:
            os.unlink(self._file(node))
        except OSError:
            pass


def next_node(status: ClusterView, exclude: set[str], backoff: Backoff) -> str | None:
    """The best node not yet tried and not backed off (the local one is never backed off)."""
    for node in status.candidates():
        if node.name in exclude:
            continue
        if node.name != status.self_name and backoff.active(node.name):
            continue
        return node.name
    return None
