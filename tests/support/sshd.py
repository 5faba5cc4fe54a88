"""Real OpenSSH servers for integration tests, one per simulated cluster node.

Every simulated node is a real ``/usr/sbin/sshd`` bound to its own loopback
address (``127.0.0.11``, ``127.0.0.12``, ...) on one shared high port, so the
code under test talks to genuine SSH servers exactly as it would on a cluster,
and the nodes are told apart by address alone, as real hosts are.  Linux lets
any address in ``127.0.0.0/8`` be bound without setup.

Keys are made per test session: one client key pair (:func:`make_client_keys`)
and one host key per server.  Each server's host key is written to a private
``known_hosts`` so clients can run with ``StrictHostKeyChecking yes``: a test
then also proves host key verification works rather than switching it off.

What was verified (OpenSSH 9.2p1 on Debian 12, Python 3.11, paramiko 5.1):

* As root: ``ssh -F CONFIG ADDR cmd`` and paramiko both log in with the
  client key and run commands; stop then start keeps the host key; stop
  kills running remote commands.
* As an ordinary user: the server was run by this module under
  ``setpriv --reuid=daemon --regid=daemon --clear-groups`` and a root client
  logged in as ``daemon``: the key was accepted, a command session started
  (and ran ``nologin``, that account's shell) and the ``internal-sftp``
  subsystem listed a directory.  Nothing in the generated config needs root:
  ``UsePAM no``, no ``/run/sshd`` (sshd chroots its pre-auth child there
  only when it runs as root) and every file lives in the server's
  directory.  A non-root server can only log in its own user, and, with
  ``UsePAM no``, not an account whose password field is locked (``!...``):
  ``nobody`` is refused for that reason on systemd hosts, whose NSS module
  gives it a locked shadow entry, while ordinary users pass because a
  non-root sshd cannot read ``/etc/shadow``.

Each :meth:`Sshd.start` probes the server once, so its log shows one
``kex_exchange_identification: Connection closed by remote host`` per start;
that line is the readiness probe, not a failure.

Linux only: the loopback addresses and the ``/proc`` scan in
:meth:`Sshd.stop` assume it, as does the tool under test.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "ssh-keygen"

# Seconds between readiness probes in Sshd.start: short, so startup costs
# little more than sshd's own start time.
_POLL = 0.02

# Serialises rewrites of known_hosts when servers are built from threads.
_KNOWN_HOSTS_LOCK = threading.Lock()


@dataclass
class ClientKeys:
    """The client side of a test session's SSH setup, all in one directory.

    ``known_hosts`` starts empty; every :class:`Sshd` built with these keys
    adds its host key, so one file trusts exactly the session's servers.
    """

    directory: Path
    identity: Path
    authorized_keys: Path
    known_hosts: Path


def _check_path(path: Path) -> Path:
    """Return ``path`` absolute, refusing characters the config files mangle.

    sshd_config and ssh_config split values on whitespace and sshd expands
    ``%`` tokens in some paths, and quoting rules differ between OpenSSH and
    paramiko, so such paths are refused instead of quoted.
    """
    resolved = path.resolve()
    text = str(resolved)
    if any(ch.isspace() for ch in text) or "%" in text or '"' in text:
        raise ValueError(f"path not usable in an ssh config file: {text!r}")
    return resolved


def _keygen(private: Path, comment: str) -> None:
    """Make an unencrypted ed25519 key pair at ``private`` and ``private.pub``."""
    subprocess.run(
        [SSH_KEYGEN, "-t", "ed25519", "-N", "", "-q", "-C", comment, "-f", str(private)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
    )


def make_client_keys(directory: Path) -> ClientKeys:
    """Create the session's client key pair, authorized_keys and known_hosts.

    Meant to be called once per test session; every server built with the
    result accepts this key and every client config uses it.  An existing key
    in ``directory`` is reused so a second call cannot invalidate servers
    already configured.
    """
    directory = _check_path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    identity = directory / "id_ed25519"
    if not identity.exists():
        _keygen(identity, "dsh-test-client")
    identity.chmod(0o600)
    public = identity.with_name(identity.name + ".pub").read_text()
    authorized_keys = directory / "authorized_keys"
    authorized_keys.write_text(public if public.endswith("\n") else public + "\n")
    known_hosts = directory / "known_hosts"
    known_hosts.touch()
    return ClientKeys(
        directory=directory,
        identity=identity,
        authorized_keys=authorized_keys,
        known_hosts=known_hosts,
    )


def _known_hosts_name(address: str, port: int) -> str:
    """The host name OpenSSH and paramiko look up for ``address:port``."""
    return address if port == 22 else f"[{address}]:{port}"


def _record_host_key(known_hosts: Path, address: str, port: int, host_key_pub: Path) -> None:
    """Write ``address:port``'s host key into ``known_hosts``, replacing old ones.

    Replacing rather than appending matters: paramiko uses the first key it
    finds for a host, so a stale line from an earlier server on the same
    address and port would make it reject the current one.
    """
    name = _known_hosts_name(address, port)
    key_type, key_data = host_key_pub.read_text().split()[:2]
    with _KNOWN_HOSTS_LOCK:
        old = known_hosts.read_text().splitlines() if known_hosts.exists() else []
        kept = [line for line in old if line.split(" ", 1)[0] != name]
        kept.append(f"{name} {key_type} {key_data}")
        known_hosts.write_text("\n".join(kept) + "\n")


def _descendants(pid: int) -> list[int]:
    """Return the pids of all living descendants of ``pid`` (Linux ``/proc``)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: split after it.
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal_quietly(pid: int, sig: signal.Signals) -> None:
    """Signal ``pid``, ignoring a process that is already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _freeze_descendants(pid: int) -> set[int]:
    """SIGSTOP all descendants of ``pid`` until no new ones appear; return them.

    A stopped process cannot fork, so after a scan finds nothing new the
    returned set is the whole tree (short of a pid reused in between).
    """
    frozen: set[int] = set()
    for _ in range(100):
        new = [child for child in _descendants(pid) if child not in frozen]
        if not new:
            break
        for child in new:
            _signal_quietly(child, signal.SIGSTOP)
            frozen.add(child)
    return frozen


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie awaiting its parent counts)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2 :].startswith("Z")


def _kill_tree(pids: Iterable[int], timeout: float = 5.0) -> None:
    """SIGKILL ``pids`` and wait, bounded, until they have exited."""
    pids = list(pids)
    for pid in pids:
        _signal_quietly(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(_POLL)


class Sshd:
    """One real sshd serving one simulated node at ``address:port``.

    Building it makes (or reuses) the node's host key, writes its config and
    trusts the host key in ``keys.known_hosts``; :meth:`start` and
    :meth:`stop` may then be called any number of times, and a restarted
    server keeps its host key, as a rebooted node would.  Use as a context
    manager (or stop in a ``finally``) so no server outlives its test.
    """

    def __init__(self, address: str, port: int, directory: Path, keys: ClientKeys) -> None:
        self.address = address
        self.port = port
        self.directory = _check_path(directory)
        self.keys = keys
        self.directory.mkdir(parents=True, exist_ok=True)
        self.host_key = self.directory / "ssh_host_ed25519_key"
        self.host_key_pub = self.directory / "ssh_host_ed25519_key.pub"
        self.config = self.directory / "sshd_config"
        self.pid_file = self.directory / "sshd.pid"
        self.log = self.directory / "sshd.log"
        self._process: subprocess.Popen[bytes] | None = None
        # Prepended to the sshd command line, e.g. to start it in a mount
        # namespace where some directory is not there (a node lacking a mount).
        self.prefix: list[str] = []
        if not self.host_key.exists():
            _keygen(self.host_key, f"dsh-test-host-{address}")
        self.host_key.chmod(0o600)
        self.config.write_text(self._config_text())
        _record_host_key(keys.known_hosts, address, port, self.host_key_pub)

    def __repr__(self) -> str:
        state = "running" if self.running() else "stopped"
        return f"Sshd({self.address}:{self.port}, {state}, {self.directory})"

    def _config_text(self) -> str:
        """The sshd_config: key-only logins, nothing that needs root, verbose logs."""
        authorized_keys = _check_path(self.keys.authorized_keys)
        lines = [
            f"Port {self.port}",
            f"ListenAddress {self.address}:{self.port}",
            f"HostKey {self.host_key}",
            f"PidFile {self.pid_file}",
            f"AuthorizedKeysFile {authorized_keys}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            # The files live in a test's temporary directory, whose owners
            # and modes sshd would otherwise insist on.
            "StrictModes no",
            "UseDNS no",
            "PermitRootLogin prohibit-password",
            # Many parallel connections are the point of a cluster tool.
            "MaxStartups 200:30:400",
            "MaxSessions 100",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
            # In-process sftp: works as non-root and needs no helper binary.
            "Subsystem sftp internal-sftp",
            "LogLevel VERBOSE",
        ]
        return "\n".join(lines) + "\n"

    def running(self) -> bool:
        """True while this object's sshd process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int:
        """The listening sshd's PID (sessions are its children)."""
        assert self._process is not None
        return self._process.pid

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of sshd's log, to show when a test fails."""
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def start(self, timeout: float = 10.0) -> None:
        """Start sshd and return once it accepts connections and sends its banner.

        Ready means the process is alive, it logged that it listens on this
        address and port (so a different server already holding the port is
        not mistaken for it) and a TCP client receives ``SSH-2.0``.  If sshd
        exits or ``timeout`` passes first, it is stopped and RuntimeError
        carries the log's tail.  Starting a running server does nothing.
        """
        if self.running():
            return
        self._reap()
        if os.geteuid() == 0:
            # Root's sshd chroots its pre-auth child here and refuses to
            # start without it; a non-root sshd never uses it.
            Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        self.pid_file.unlink(missing_ok=True)
        log_offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [*self.prefix, SSHD, "-D", "-e", "-f", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Keep terminal signals (Ctrl-C on pytest) to the test run.
                start_new_session=True,
            )
        ok = False
        try:
            self._wait_ready(timeout, log_offset)
            ok = True
        finally:
            if not ok:
                self.stop()

    def _wait_ready(self, timeout: float, log_offset: int) -> None:
        """Poll until ready (see :meth:`start`); raise RuntimeError otherwise."""
        if self._process is None:
            raise RuntimeError("sshd was not started")
        deadline = time.monotonic() + timeout
        listening = f"Server listening on {self.address} port {self.port}."
        while True:
            code = self._process.poll()
            if code is not None:
                raise RuntimeError(
                    f"sshd for {self.address}:{self.port} exited with status {code} "
                    f"while starting; log tail:\n{self.log_tail()}"
                )
            if self._logged_since(log_offset, listening) and self._banner_ok(deadline):
                return
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"sshd for {self.address}:{self.port} not ready after {timeout:g}s; "
                    f"log tail:\n{self.log_tail()}"
                )
            time.sleep(_POLL)

    def _logged_since(self, offset: int, text: str) -> bool:
        """Whether ``text`` appears in the log after byte ``offset``."""
        try:
            with self.log.open("rb") as log:
                log.seek(offset)
                return text.encode() in log.read()
        except FileNotFoundError:
            return False

    def _banner_ok(self, deadline: float) -> bool:
        """Whether a TCP connection succeeds and the server says ``SSH-2.0``."""
        wait = max(0.05, min(1.0, deadline - time.monotonic()))
        try:
            with socket.create_connection((self.address, self.port), timeout=wait) as sock:
                received = b""
                while b"\n" not in received and len(received) < 256:
                    chunk = sock.recv(256)
                    if not chunk:
                        break
                    received += chunk
        except OSError:
            return False
        return received.startswith(b"SSH-2.0")

    def stop(self) -> None:
        """Stop sshd and every session it forked, as if the node went down.

        Per-connection sshd processes and the commands they run are not in
        sshd's process group (sshd calls setsid for each connection), and
        once the listener exits they are orphaned and can no longer be found
        as its descendants; a remote ``sleep`` would then outlive the test.
        So while the listener is alive its descendants are frozen with
        SIGSTOP (repeatedly, until no new ones appear, so none can fork
        away) and killed with SIGKILL.  Then the listener gets SIGTERM, and
        SIGKILL if it has not exited within a few seconds; it is always
        waited for, so no zombie is left.  Stopping a stopped server does
        nothing.
        """
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            _kill_tree(_freeze_descendants(process.pid))
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self._reap()

    def _reap(self) -> None:
        """Forget a process that has exited, collecting its exit status."""
        if self._process is not None and self._process.poll() is not None:
            self._process = None

    def __enter__(self) -> Sshd:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _current_user() -> str:
    """The effective user's login name: the only one a non-root sshd admits."""
    return pwd.getpwuid(os.geteuid()).pw_name


def write_ssh_config(
    path: Path, servers: list[Sshd], keys: ClientKeys, user: str | None = None
) -> Path:
    """Write an OpenSSH client config with one ``Host`` block per server.

    The file is self-contained (identity, known_hosts, strict host key
    checking, batch mode) so ``ssh -F path ADDR cmd`` never reads the
    invoking user's own keys, agent or known_hosts, and never prompts.
    paramiko.SSHConfig reads the same file.  ``user`` defaults to the
    effective user, which is the only user a non-root sshd can log in.
    """
    path = Path(path)
    login = user if user is not None else _current_user()
    identity = _check_path(keys.identity)
    known_hosts = _check_path(keys.known_hosts)
    blocks = []
    for server in servers:
        blocks.append(
            "\n".join(
                [
                    f"Host {server.address}",
                    f"    HostName {server.address}",
                    f"    Port {server.port}",
                    f"    User {login}",
                    f"    IdentityFile {identity}",
                    "    IdentitiesOnly yes",
                    f"    UserKnownHostsFile {known_hosts}",
                    "    StrictHostKeyChecking yes",
                    "    BatchMode yes",
                ]
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(blocks) + "\n")
    return path


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``address`` right now (bind port 0, close).

    Another process may take it before it is used; start() then fails with
    sshd's bind error in the log rather than talking to the wrong server.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def common_free_port(addresses: Iterable[str], attempts: int = 50) -> int:
    """A TCP port free on every one of ``addresses``, for nodes sharing one port.

    :func:`free_port` only checks one address; a port free there may still be
    bound on another node's address, so each candidate is tried on all.
    """
    wanted = list(addresses)
    if not wanted:
        raise ValueError("no addresses given")
    for _ in range(attempts):
        port = free_port(wanted[0])
        if all(_port_free(address, port) for address in wanted[1:]):
            return port
    raise RuntimeError(f"no port free on all of {wanted} after {attempts} attempts")


def _port_free(address: str, port: int) -> bool:
    """Whether ``port`` can be bound on ``address`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True
