"""dsh asks the local dshd: the best node (port 8282) and the status table (8181).

Rules of this file: on dsh's fast path, so nothing heavy at import (the C
module ``_socket``, not socket.py), no ``from __future__``.
"""

from ..core.status import ClusterView, parse_status
from ..errors import DaemonUnreachable

TYPE_CHECKING = False  # mypy knows this name; typing is not imported at run time
if TYPE_CHECKING:
    import socket
else:
    import _socket as socket  # socket.py builds enums at import: longer than a dsh run


def ask(host: str, port: int, timeout: float) -> str:
    """The whole answer of one of the daemon's ports."""
    try:
        return _read_answer(host, port, timeout).decode("utf-8", "replace")
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise DaemonUnreachable(f"cannot reach dshd at {host}:{port}: {reason}") from None


def _read_answer(host: str, port: int, timeout: float) -> bytes:
    """socket.create_connection, then read to EOF: each address in turn."""
    error: OSError = OSError(f"no address for {host}")
    # A str host goes through the IDNA codec (re, unicodedata: 15 ms to import)
    name: str | bytes = host.encode() if host.isascii() else host
    for family, kind, proto, _name, address in socket.getaddrinfo(
        name, port, 0, socket.SOCK_STREAM
    ):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)
        except OSError as exc:
            error = exc
        finally:
            sock.close()
    raise error


def ask_best(host: str, port: int, timeout: float) -> str | None:
    answer = ask(host, port, timeout).strip()
    if not answer:
        raise DaemonUnreachable(f"dshd at {host}:{port} gave an empty answer")
    return None if answer == "NONE" else answer


def ask_status(host: str, port: int, timeout: float) -> ClusterView:
    return parse_status(ask(host, port, timeout))


class DaemonClient:
    """The local daemon as the runner asks it (tests give the runner a fake one)."""

    def __init__(self, host: str, best_port: int, status_port: int, timeout: float) -> None:
        self.host = host
        self.best_port = best_port
        self.status_port = status_port
        self.timeout = timeout

    def best(self) -> str | None:
        return ask_best(self.host, self.best_port, self.timeout)

    def status(self) -> ClusterView:
        return ask_status(self.host, self.status_port, self.timeout)
