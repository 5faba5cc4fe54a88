"""Every tunable of the daemon in one frozen dataclass; the CLI only fills it in."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .score import DEFAULT_SCORE

DEFAULT_CLUSTER_FILE = "/etc/dsh/cluster"
DEFAULT_GOSSIP_PORT = 8181  # UDP
DEFAULT_STATUS_PORT = 8181  # TCP, full status (the original -t)
DEFAULT_BEST_PORT = 8282  # TCP, best node (the original -r)
DEFAULT_CONTROL = "/run/dshd.sock"
DEFAULT_KEY_FILE = "/etc/dsh/key"  # used when it exists and no --key-file is given


def default_cluster_file() -> str:
    return os.environ.get("DSH_CLUSTER") or DEFAULT_CLUSTER_FILE


def default_key_file() -> str | None:
    path = os.environ.get("DSH_KEY_FILE") or DEFAULT_KEY_FILE
    return path if os.path.exists(path) else None


@dataclass(frozen=True)
class DaemonConfig:
    cluster_file: str = DEFAULT_CLUSTER_FILE
    name: str | None = None  # this node's cluster entry; None = find it by address
    gossip_port: int = DEFAULT_GOSSIP_PORT
    status_port: int = DEFAULT_STATUS_PORT
    best_port: int = DEFAULT_BEST_PORT
    listen: tuple[str, ...] = ()  # TCP listen addresses; () = all addresses
    interval: float = 1.5  # seconds between two reports of this node
    jitter: float = 0.1  # each interval is drawn from interval * (1 +- jitter)
    maxloops: int = 3  # a peer unheard for maxloops intervals is down
    extraload: float = 1.0  # load added to a node each time it is named best
    extra_reports: int = 2  # reports from that node after which the extra load is gone
    score: str = DEFAULT_SCORE  # a name in score.SCORES
    control: str = DEFAULT_CONTROL  # Unix socket for --drain/--undrain
    resolve_retry: float = 10.0  # seconds between attempts to resolve a failed name
    resolve_refresh: float = 300.0  # seconds between re-resolving names that did resolve
    client_timeout: float = 5.0  # seconds a TCP client gets to take its answer
    max_clients: int = 256  # concurrent TCP clients; more are closed at once
    # Who the TCP ports answer: CIDRs, or "loopback" and "members" (the
    # cluster's resolved addresses). Others are closed at once and counted.
    allow: tuple[str, ...] = ("loopback", "members")
    key_file: str | None = None  # cluster key(s); None = unauthenticated gossip
    replay_window: float = 10.0  # seconds: sealed reports sent further from our clock are dropped
    receive_buffer: int = 1 << 20  # bytes of kernel buffer for the gossip socket
    background: bool = False  # -b: fork, detach, run in the background
    print_pid: bool = False  # -p: print the background daemon's PID
    pidfile: str | None = None
    log_file: str | None = None  # in the background: None = syslog
    verbose: bool = False
    user: str | None = None  # drop to this user after binding the ports

    @property
    def dead_after(self) -> float:
        return self.maxloops * self.interval

    @property
    def extra_ttl(self) -> float:
        """Hard limit on extra load for a node that stops reporting."""
        return (self.extra_reports + 1) * self.interval * (1 + self.jitter)


DEFAULT_DAEMON = "localhost"
SSH_CONFIG = "~/.ssh/config"
# Variables dsh passes to the remote command besides those named in $DSH_ENV:
# the locale, so that messages and sorting match the local run.
FORWARDED_ENV_PREFIXES = ("LC_",)
FORWARDED_ENV = ("LANG", "LANGUAGE", "TZ")


@dataclass(frozen=True)
class ClientConfig:
    daemon_host: str = DEFAULT_DAEMON  # -H / DSH_DAEMON
    best_port: int = DEFAULT_BEST_PORT
    status_port: int = DEFAULT_STATUS_PORT  # --status-port / DSH_STATUS_PORT
    daemon_timeout: float = 2.0  # seconds to wait for the local daemon's answer
    ssh_config: str = SSH_CONFIG  # --ssh-config / DSH_SSH_CONFIG
    connect_timeout: float = 10.0  # seconds for TCP connect + SSH handshake + auth
    attempts: int = 3  # nodes tried before the command has started, then local
    backoff: float = 60.0  # seconds a node that failed in transport is avoided
    fallback: bool = True  # run locally when no node can be used
    sync: bool = True  # the NFS sync-file protocol
    sync_timeout: float = 10.0  # seconds each side waits for the sync file
    stdin: bool = True  # forward stdin when it is a pipe or file (-n: never)
    tty: bool = False  # -t: remote pseudo-terminal, stdin forwarded raw
    verbose: bool = False
    quiet: bool = False
    remote_python: str = ""  # interpreter for the remote helper; "" = this one's path
