"""The mux's connections and executors: one authenticated SSH connection per node,
one resident executor per node and remote interpreter, made on first use.

Choosing how a command runs on its node, best first: the node's executor
(started if there is none; a node where it cannot start uses exec channels
for ``executor_retry`` seconds); one exec channel with rexec.py per command
(always for ``-t``, which needs sshd's pseudo-terminal). A connection or an
executor found dead is replaced by the next command that needs it.

Executors are replaced (the old one finishes its commands and exits) when
they are older than ``executor_max_age`` or when one of the user's shell
start-up files has changed since they started, so that a command sees the
environment a fresh ``ssh node cmd`` would give within that time.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable

import paramiko

from ..errors import ChannelRefused, ExecutorLost, ExecutorUnavailable, NodeFailure
from ..request import Job
from ..ssh import connect as ssh
from ..ssh.stdio import Stdio
from .config import MuxConfig
from .executor_link import ExecutorLink
from .runs import ChannelRun, Run

log = logging.getLogger(__name__)

# The files a login shell reads for `ssh node cmd` (homes are shared, so the
# mux sees the nodes' copies); a change retires the executors started before.
STARTUP_FILES = (
    "~/.bashrc", "~/.bash_profile", "~/.bash_login", "~/.profile",
    "~/.zshenv", "~/.zshrc", "~/.cshrc", "~/.tcshrc", "~/.config/fish/config.fish",
)  # fmt: skip


def startup_files_mtime() -> float:
    newest = 0.0
    for name in STARTUP_FILES:
        try:
            newest = max(newest, os.stat(os.path.expanduser(name)).st_mtime)
        except OSError:
            pass
    return newest


class _Connections:
    """One node's connections (usually one; more when sshd's MaxSessions is reached)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clients: list[paramiko.SSHClient] = []
        self.busy: dict[int, int] = {}  # id(client) -> channels open for commands
        self.limit: dict[int, int] = {}  # id(client) -> channels the server allowed
        self.failure: NodeFailure | None = None  # the last attempt's
        self.failed_at = 0.0

    def live(self) -> list[paramiko.SSHClient]:
        alive = []
        for client in self.clients:
            transport = client.get_transport()
            if transport is not None and transport.is_active():
                alive.append(client)
            else:
                client.close()
                self.busy.pop(id(client), None)
                self.limit.pop(id(client), None)
        self.clients = alive
        return alive


class _Executor:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.link: ExecutorLink | None = None
        self.startup_mtime = 0.0
        self.failed_until = 0.0  # do not try to start one again before this


class NodePool:
    def __init__(self, config: MuxConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._connections: dict[tuple[str, str, int], _Connections] = {}
        self._executors: dict[tuple[str, str, int, str], _Executor] = {}
        self._startup_mtime = startup_files_mtime()
        self._startup_checked = time.monotonic()

    # -- connections -----------------------------------------------------------

    @staticmethod
    def _config_key(path: str) -> tuple[str, int]:
        """The config file and its mtime: editing it makes new connections."""
        expanded = os.path.expandvars(os.path.expanduser(path))
        try:
            return expanded, os.stat(expanded).st_mtime_ns
        except OSError:
            return expanded, 0

    def _node(self, job: Job) -> _Connections:
        key = (job.node, *self._config_key(job.ssh_config))
        with self._lock:
            found = self._connections.get(key)
            if found is None:
                found = self._connections[key] = _Connections()
            return found

    def _connect(self, job: Job, conns: _Connections, asked: float) -> paramiko.SSHClient:
        """A new connection (under conns.lock)."""
        # Whoever waited for the lock while an attempt failed gets that
        # failure, not an attempt of its own (8 jobs, one timeout).
        if conns.failure is not None and conns.failed_at >= asked:
            raise conns.failure
        try:
            target = ssh.target_for(job.node, job.ssh_config, job.connect_timeout)
            client = ssh.connect(target)
        except NodeFailure as exc:
            conns.failure, conns.failed_at = exc, time.monotonic()
            raise
        conns.failure = None
        conns.clients.append(client)
        log.info("connected to %s (%s@%s:%s), connection %d", job.node, target.user,
                 target.hostname, target.port, len(conns.clients))  # fmt: skip
        return client

    def connection(self, job: Job) -> paramiko.SSHClient:
        """The node's first live connection, made if there is none."""
        conns = self._node(job)
        asked = time.monotonic()
        with conns.lock:
            live = conns.live()
            return live[0] if live else self._connect(job, conns, asked)

    def channel_connection(self, job: Job, refused: paramiko.SSHClient | None = None
                           ) -> paramiko.SSHClient:  # fmt: skip
        """A live connection with room for one more channel; counts it as busy."""
        conns = self._node(job)
        asked = time.monotonic()
        with conns.lock:
            if refused is not None:
                conns.limit[id(refused)] = conns.busy.get(id(refused), 0)
            for client in conns.live():
                busy = conns.busy.get(id(client), 0)
                if busy < conns.limit.get(id(client), 1 << 30):
                    conns.busy[id(client)] = busy + 1
                    return client
            client = self._connect(job, conns, asked)
            conns.busy[id(client)] = 1
            return client

    def release(self, job: Job, client: paramiko.SSHClient) -> None:
        conns = self._node(job)
        with conns.lock:
            if id(client) in conns.busy:
                conns.busy[id(client)] -= 1

    # -- executors -------------------------------------------------------------

    def _startup_changed(self) -> float:
        now = time.monotonic()
        with self._lock:
            if now - self._startup_checked >= self.config.startup_check_interval:
                self._startup_checked = now
                self._startup_mtime = startup_files_mtime()
            return self._startup_mtime

    def executor(self, job: Job) -> ExecutorLink | None:
        """The node's executor, started if needed; None where it cannot run."""
        config, mtime = self._config_key(job.ssh_config)
        key = (job.node, config, mtime, job.python)
        with self._lock:
            slot = self._executors.get(key)
            if slot is None:
                slot = self._executors[key] = _Executor()
        startup = self._startup_changed()
        with slot.lock:
            link = slot.link
            if link is not None:
                age = time.monotonic() - link.started_at
                max_age = self.config.executor_max_age
                if link.alive and age <= max_age and slot.startup_mtime == startup:
                    return link
                if link.alive:
                    why = "shell start-up files changed" if age <= max_age else (
                        f"older than {max_age:g}s")  # fmt: skip
                    log.info("%s retired: %s", link, why)
                link.retire()
                slot.link = None
            if time.monotonic() < slot.failed_until:
                return None
            link = ExecutorLink(self.connection(job), job.node, job.python, self.config)
            try:
                link.start()
            except ExecutorUnavailable as exc:
                slot.failed_until = time.monotonic() + self.config.executor_retry
                log.warning(
                    "no executor on %s (%s): one exec channel per command for %gs",
                    job.node, exc, self.config.executor_retry,
                )  # fmt: skip
                return None
            slot.link, slot.startup_mtime = link, startup
            return link

    # -- runs --------------------------------------------------------------------

    def start(self, job: Job, stdio: Stdio, client_gone: Callable[[], bool]) -> Run:
        """Start the job on its node, the best way there is; NodeFailure if the node fails.

        Returns once the command is committed (the run owns stdio from then
        on). Only what cannot have run is tried again: an executor lost
        before it said READY, a channel the server refused.
        """
        use_executor = job.executor and not job.request.pty
        refused: paramiko.SSHClient | None = None
        for _attempt in range(4):
            if use_executor:
                link = self.executor(job)
                if link is not None:
                    try:
                        run = link.open(job, stdio)
                        run.wait_started(client_gone)
                        return run
                    except ExecutorLost as exc:
                        log.warning("%s; trying an exec channel", exc)
                        use_executor = False
                        continue
            client = self.channel_connection(job, refused)
            channel_run = ChannelRun(
                client, job, stdio, on_end=functools.partial(self.release, job, client)
            )  # fmt: skip
            try:
                channel_run.wait_started(client_gone)
                return channel_run
            except ChannelRefused:
                refused = client
                continue
        raise NodeFailure(job.node, "the server refused every channel", transport=False)

    def close(self) -> None:
        """At the mux's exit: every executor and connection (their commands are killed)."""
        with self._lock:
            slots = list(self._executors.values()) + list(self._connections.values())
        for slot in slots:
            if isinstance(slot, _Executor) and slot.link is not None:
                slot.link.close()
            if isinstance(slot, _Connections):
                for client in slot.clients:
                    client.close()
