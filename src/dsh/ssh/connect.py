"""Opening an SSH connection to a node the way OpenSSH would, with paramiko.

Honours the user's ssh config (HostName, Port, User, IdentityFile,
IdentitiesOnly, UserKnownHostsFile, StrictHostKeyChecking, ProxyCommand,
ConnectTimeout, ServerAliveInterval, ServerAliveCountMax), the ssh-agent and
the default keys. Host keys are checked against known_hosts: an unknown key is
refused unless the config says ``StrictHostKeyChecking no`` or ``accept-new``;
a changed key is always refused. Every failure is a NodeFailure whose message
says what to do.

A connection that stops answering is closed, as OpenSSH's ServerAliveInterval
does, but on by default: the mux keeps its connections for as long as it runs,
and a node that loses power or its network sends nothing more. Without the
check, TCP gives up only after about 15 minutes of retransmissions (and never
while the node's kernel still answers, with its sshd frozen), and every command
on that connection would hang as long.
"""

from __future__ import annotations

import getpass
import logging
import os
import random
import re
import socket
import threading
import time
import weakref
from dataclasses import dataclass, field

import paramiko

from ..errors import NodeFailure

# paramiko logs its transport thread's errors (e.g. "Socket exception: Broken
# pipe" as dsh ends); with no handler, logging's last resort would print them on
# the command's stderr. dsh reports failures itself, in one line.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
log = logging.getLogger(__name__)  # the mux's log; in dsh, the command's message says it
log.addHandler(logging.NullHandler())

DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
ALIVE_INTERVAL = 15.0  # seconds: ServerAliveInterval unless the ssh config sets it (0: off)
ALIVE_COUNT = 3  # ServerAliveCountMax unless the ssh config sets it (OpenSSH's default)
CHANNEL_TIMEOUT = 10.0  # seconds to open a session channel on a live connection
SYSTEM_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")


@dataclass(frozen=True)
class Target:
    node: str
    hostname: str
    port: int = 22
    user: str = field(default_factory=getpass.getuser)
    identities: tuple[str, ...] = ()
    identities_only: bool = False
    known_hosts: tuple[str, ...] = DEFAULT_KNOWN_HOSTS
    strict: str = "yes"  # yes, no, accept-new (ask means yes: dsh never asks)
    proxy_command: str | None = None
    timeout: float = 10.0
    alive_interval: float = ALIVE_INTERVAL
    alive_count: int = ALIVE_COUNT


_TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TIME_PART = re.compile(r"(\d+)([smhdw]?)", re.IGNORECASE)


def seconds(text: str) -> float | None:
    """An ssh config time value ("90", "1m30s", as OpenSSH reads ConnectTimeout
    and ServerAliveInterval) in seconds; None if it is not one. A plain decimal
    ("0.5") is taken too: OpenSSH refuses it, but its meaning is plain."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        parts = _TIME_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            return None
        value = float(sum(int(n) * _TIME_UNITS[u.lower()] for n, u in parts))
    # Not nan, inf or negative, and within what a thread can wait for.
    return value if 0 <= value < 1e9 else None


def _expand(path: str) -> str:
    return os.path.expandvars(os.path.expanduser(path))


def target_for(node: str, config_path: str, timeout: float) -> Target:
    """Look the node up in the ssh config file (missing file: OpenSSH defaults)."""
    path = _expand(config_path)
    options: dict[str, object] = {}
    if os.path.exists(path):
        try:
            options = dict(paramiko.SSHConfig.from_path(path).lookup(node))
        except (OSError, paramiko.ssh_exception.ConfigParseError) as exc:
            raise NodeFailure(
                node, f"cannot read ssh config {path}: {exc}", transport=False
            ) from exc
    known = options.get("userknownhostsfile")
    known_list = str(known).split() if known else list(DEFAULT_KNOWN_HOSTS)
    identities = options.get("identityfile") or []
    assert isinstance(identities, list)
    strict = str(options.get("stricthostkeychecking", "yes")).lower()

    def time_option(name: str, default: float) -> float:
        text = options.get(name.lower())
        value = default if not text else seconds(str(text))
        if value is None:
            raise NodeFailure(node, f"ssh config {path}: {name} {text!r} is not a time "
                              "(seconds, or as 1m30s)", transport=False)  # fmt: skip
        return value

    alive_interval = time_option("ServerAliveInterval", ALIVE_INTERVAL)
    wait = time_option("ConnectTimeout", timeout)
    count = str(options.get("serveralivecountmax", ALIVE_COUNT))
    if not count.isdigit():
        raise NodeFailure(node, f"ssh config {path}: ServerAliveCountMax {count!r} is not "
                          "a whole number", transport=False)  # fmt: skip
    return Target(
        node=node,
        hostname=str(options.get("hostname", node)),
        port=int(str(options.get("port", 22))),
        user=str(options.get("user") or getpass.getuser()),
        identities=tuple(_expand(str(i)) for i in identities),
        identities_only=str(options.get("identitiesonly", "no")).lower() == "yes",
        known_hosts=tuple(_expand(k) for k in known_list),
        strict="yes" if strict == "ask" else strict,
        proxy_command=str(options["proxycommand"]) if options.get("proxycommand") else None,
        timeout=wait or timeout,  # 0: none of its own, as in OpenSSH
        alive_interval=alive_interval,
        alive_count=max(1, int(count)),
    )


class _AcceptNew(paramiko.MissingHostKeyPolicy):
    """StrictHostKeyChecking accept-new: remember an unknown key, as OpenSSH does."""

    def __init__(self, known_hosts: str) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        try:
            os.makedirs(os.path.dirname(self.known_hosts) or ".", mode=0o700, exist_ok=True)
            with open(self.known_hosts, "a", encoding="ascii") as f:
                f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        except OSError:
            pass


def connect(target: Target) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    for path in SYSTEM_KNOWN_HOSTS:
        if os.path.exists(path):
            client.load_system_host_keys(path)
    for path in target.known_hosts:
        if os.path.exists(path):
            try:
                client.load_host_keys(path)
            except (OSError, paramiko.SSHException) as exc:
                raise NodeFailure(target.node, f"cannot read {path}: {exc}") from None
    if target.strict == "no":
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    elif target.strict == "accept-new":
        client.set_missing_host_key_policy(_AcceptNew(target.known_hosts[0]))
    else:
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    sock = paramiko.ProxyCommand(target.proxy_command) if target.proxy_command else None
    where = f"{target.hostname}:{target.port}"
    try:
        client.connect(
            target.hostname,
            port=target.port,
            username=target.user,
            key_filename=list(target.identities) or None,  # type: ignore[arg-type]
            look_for_keys=not (target.identities_only and target.identities),
            allow_agent=not target.identities_only,
            timeout=target.timeout,
            banner_timeout=target.timeout,
            auth_timeout=target.timeout,
            sock=sock,
        )
    except paramiko.BadHostKeyException:
        client.close()
        raise NodeFailure(
            target.node,
            f"host key of {where} has CHANGED (not the one in known_hosts); "
            "refusing to connect (if the change is expected, remove the old key "
            f"with: ssh-keygen -R '[{target.hostname}]:{target.port}')",
        ) from None
    except paramiko.AuthenticationException as exc:
        client.close()
        raise NodeFailure(
            target.node,
            f"authentication as {target.user} refused by {where}: {exc} "
            "(is your public key in ~/.ssh/authorized_keys there?)",
        ) from None
    except paramiko.SSHException as exc:
        client.close()
        text = str(exc)
        if "not found in known_hosts" in text:
            text = (
                f"host key of {where} is unknown (not in "
                f"{', '.join(target.known_hosts)}); refusing to connect "
                "(connect once with ssh, or add it with ssh-keyscan)"
            )
        raise NodeFailure(target.node, text) from None
    except (OSError, EOFError) as exc:
        client.close()
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        if isinstance(exc, socket.timeout | TimeoutError):
            reason = f"timed out after {target.timeout:g}s"
        hint = " (is sshd running there?)" if isinstance(exc, ConnectionRefusedError) else ""
        if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
            hint = " (is sshd running there?)"
            reason = "connection refused"
        raise NodeFailure(target.node, f"cannot connect to {where}: {reason}{hint}") from None
    transport = client.get_transport()
    if transport is not None and target.alive_interval > 0:
        _Liveness(client, transport, target).start()
    return client


# why _Liveness closed a connection, for the message of the commands it ran; by
# client, since SSHClient.close() (the mux's pool does it) forgets the transport
_closed_because: weakref.WeakKeyDictionary[paramiko.SSHClient, str] = weakref.WeakKeyDictionary()


def closed_because(client: paramiko.SSHClient) -> str | None:
    """Why dsh closed this connection itself (a node that stopped answering), if it did."""
    return _closed_because.get(client)


class _Liveness:
    """Asks the server for an answer every ``alive_interval`` seconds and closes
    the connection when one request goes unanswered for interval x count, about
    when OpenSSH's ServerAliveCountMax would give up.

    Any answer will do: OpenSSH's server answers "keepalive@openssh.com" with a
    failure, as it does for OpenSSH's own client. paramiko's global_request
    waits for the answer without a time limit, so one thread asks and another
    watches the clock; both end with the connection.
    """

    KIND = "keepalive@openssh.com"

    def __init__(self, client: paramiko.SSHClient, transport: paramiko.Transport,
                 target: Target) -> None:  # fmt: skip
        self.client = client
        self.transport = transport
        self.node = target.node
        self.interval = target.alive_interval
        self.count = target.alive_count
        self.asked = 0  # requests sent so far
        self.asked_at: float | None = None  # of the unanswered request, if one is
        self.wakeup = threading.Event()

    def start(self) -> None:
        for run in (self._ask, self._watch):
            threading.Thread(target=run, name=f"dsh-alive-{self.node}", daemon=True).start()

    def _ask(self) -> None:
        # The first request after a random part of an interval: a fresh
        # connection has just been answered, and the mux's connections, opened
        # together, should not ask in step.
        pause = self.interval * random.uniform(0.5, 1.0)
        while not self.wakeup.wait(pause) and self.transport.is_active():
            self.asked += 1
            self.asked_at = time.monotonic()
            try:
                self.transport.global_request(self.KIND, wait=True)
            except (paramiko.SSHException, OSError, EOFError):
                return  # the connection is going; whoever uses it will hear
            self.asked_at = None
            pause = self.interval

    def _watch(self) -> None:
        limit = self.interval * self.count
        tick = min(self.interval, 1.0)
        while not self.wakeup.wait(tick):
            if not self.transport.is_active():
                break
            asked, asked_at = self.asked, self.asked_at
            if asked_at is None or time.monotonic() - asked_at <= limit:
                continue
            # One more tick for the answer: after this process was stopped
            # (Ctrl-Z, a paused VM) the answer may be waiting, unread.
            if self.wakeup.wait(tick) or (self.asked, self.asked_at) != (asked, asked_at):
                continue
            why = (f"no answer from {self.node} for {limit:g}s (ServerAliveInterval "
                   f"{self.interval:g} x ServerAliveCountMax {self.count})")  # fmt: skip
            _closed_because[self.client] = why
            log.warning("%s; closing the connection", why)
            self.transport.close()
            break
        self.wakeup.set()
