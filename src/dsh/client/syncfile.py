"""The NFS sync-file protocol, local side.

Before a remote run dsh creates a hidden file in the working directory; the
remote side waits until it sees it (so it sees everything written here
before), runs the command and removes it; dsh then waits until the file is
gone from its own view (so it sees everything written there). See README.md.
"""

import os
import time


class SyncFile:
    def __init__(self, directory: str) -> None:
        name = f".dsh-sync.{os.uname().nodename}.{os.getpid()}.{os.urandom(4).hex()}"
        self.path = os.path.join(directory, name)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)  # close() is what makes NFS send the file to the server

    def wait_gone(self, timeout: float) -> bool:
        """Wait until the remote removal is visible here; False on timeout."""
        directory = os.path.dirname(self.path)
        deadline = time.monotonic() + timeout
        delay = 0.005
        while os.path.lexists(self.path):
            if time.monotonic() >= deadline:
                return False
            try:
                os.listdir(directory)  # makes an NFS client revalidate the directory
            except OSError:
                pass
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        return True

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def writable(directory: str) -> bool:
    return os.access(directory, os.W_OK | os.X_OK)
