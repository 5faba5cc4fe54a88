"""Which node runs the command: the local daemon's answer, minus nodes backed off.

A node whose SSH failed (refused, timed out, authentication, host key) is
avoided for ``backoff`` seconds by every dsh of this user, like distcc's
host backoff: without it, a node whose dshd is fine but whose sshd is not
would stay the best node and cost every compile a failed connection. Only
transport failures mark a node; a command failing on it never does.

The status table is read here, the only reader of it (status.py writes it):
dsh runs once per compile, and status.py brings the daemon's core with it
(gossip, its sealing, cryptography: some 25 ms of imports, and site-packages).
The format is the documented, append-only one of README.md ("The status
port"); tests/test_status.py reads what status.py writes.
"""

import os
import stat
import time

from ..errors import DaemonUnreachable

TYPE_CHECKING = False  # mypy knows this name; typing is not imported at run time
if TYPE_CHECKING:
    import socket
else:
    import _socket as socket  # socket.py builds enums at import: longer than a dsh run


class Member:
    """One cluster member as dsh needs it."""

    __slots__ = ("cpus", "name", "score", "state")

    def __init__(self, name: str, state: str, cpus: int | None, score: float | None) -> None:
        self.name = name
        self.state = state
        self.cpus = cpus
        self.score = score

    def _key(self) -> tuple[str, str, int | None, float | None]:
        return (self.name, self.state, self.cpus, self.score)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Member) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return "Member" + repr(self._key())


class ClusterView:
    """The status table: which node the daemon is, and the members."""

    def __init__(self, self_name: str | None, nodes: list[Member]) -> None:
        self.self_name = self_name
        self.nodes = nodes

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ClusterView) and self.self_name == other.self_name
                and self.nodes == other.nodes)  # fmt: skip

    __hash__ = None  # type: ignore[assignment]  # (mutable)

    def __repr__(self) -> str:
        return f"ClusterView({self.self_name!r}, {self.nodes!r})"

    def candidates(self) -> list[Member]:
        """Nodes that can take a job, best first."""
        up = [n for n in self.nodes if n.state == "up" and n.score is not None]
        return sorted(up, key=lambda n: n.score or 0.0)

    def slots(self) -> int:
        return sum(n.cpus or 0 for n in self.nodes if n.state == "up")


def _number(text: str, kind: type[int] | type[float]) -> int | float | None:
    try:
        return None if text == "-" else kind(text)
    except ValueError:
        return None


def parse_status(text: str) -> ClusterView:
    """Columns: name state load cpus freemem loadscale memscale score ...; ``# self NAME``."""
    self_name = None
    nodes = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "#":
            if len(fields) == 3 and fields[1] == "self":
                self_name = fields[2]
            continue
        if fields[0].startswith("#") or len(fields) < 8:
            continue
        cpus = _number(fields[3], int)
        score = _number(fields[7], float)
        nodes.append(Member(fields[0], fields[1], None if cpus is None else int(cpus), score))
    return ClusterView(self_name, nodes)


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


def runtime_dir() -> str:
    """Per-user state: $XDG_RUNTIME_DIR/dsh, else ~/.cache/dsh; only the user may enter it.

    The mux's socket lives here, so a directory that is not the user's own
    is refused (OSError), and one that others may enter is made private.
    """
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base:
        root = os.path.join(base, "dsh")
    else:
        root = os.path.join(os.path.expanduser("~"), ".cache", "dsh")
    try:
        os.mkdir(root, 0o700)
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(root, 0o700, exist_ok=True)
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise PermissionError(f"{root} is not a directory of this user's")
    if st.st_mode & 0o077:
        os.chmod(root, 0o700)
    return root


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
