"""Every tunable of the daemon in one frozen dataclass; the CLI only fills it in.

Fields without a flag (jitter, resolve_*, client_timeout, max_clients,
receive_buffer, shutdown_timeout) keep their defaults in dshd; they are here so
that each default is written once, with its unit, next to the others.
Fixed constants of the implementation stay in their modules with a comment
saying why they are not tunables (server.READ_BATCH, ports.LISTEN_BACKLOG,
control.PROBE_TIMEOUT and REQUEST_TIMEOUT).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .. import defaults
from ..core.score import DEFAULT_SCORE

DEFAULT_CLUSTER_FILE = "/etc/dsh/cluster"
DEFAULT_GOSSIP_PORT = defaults.GOSSIP_PORT  # UDP, the same on every node
DEFAULT_STATUS_PORT = defaults.STATUS_PORT  # TCP, full status (the original -t)
DEFAULT_BEST_PORT = defaults.BEST_PORT  # TCP, best node (the original -r)
DEFAULT_CONTROL = "/run/dshd.sock"  # Unix socket of dshd --drain/--undrain
DEFAULT_KEY_FILE = "/etc/dsh/key"  # used when it exists and no --key-file is given
DEFAULT_HTTP_PORT = defaults.HTTP_PORT  # TCP, /metrics
DEFAULT_CONFIG = "/etc/dsh/dshd.conf"  # sensors and exporters (conf.py); used when it exists


def default_cluster_file() -> str:
    return os.environ.get("DSH_CLUSTER") or DEFAULT_CLUSTER_FILE


def default_config_file() -> str | None:
    """$DSH_CONFIG, which must then exist; None: DEFAULT_CONFIG where it exists."""
    return os.environ.get("DSH_CONFIG") or None


def default_key_file() -> str | None:
    path = os.environ.get("DSH_KEY_FILE") or DEFAULT_KEY_FILE
    return path if os.path.exists(path) else None


@dataclass(frozen=True)
class DaemonConfig:
    cluster_file: str = DEFAULT_CLUSTER_FILE  # path; -f, else $DSH_CLUSTER
    name: str | None = None  # this node's cluster entry; None = find it by address
    gossip_port: int = DEFAULT_GOSSIP_PORT  # UDP port number
    status_port: int = DEFAULT_STATUS_PORT  # TCP port number
    best_port: int = DEFAULT_BEST_PORT  # TCP port number
    http_port: int | None = DEFAULT_HTTP_PORT  # TCP port of /metrics; None = no HTTP
    # Sensors and exporters (conf.py): this file, which must exist; None:
    # DEFAULT_CONFIG if it exists, looked for again at each SIGHUP, else the defaults.
    config_file: str | None = None
    listen: tuple[str, ...] = ()  # TCP listen addresses; () = all addresses
    interval: float = 1.5  # seconds between two reports of this node
    jitter: float = 0.1  # each interval is drawn from interval * (1 +- jitter)
    maxloops: int = (
        3  # a member without fresh news for maxloops - 1 intervals (+ jitter) is suspect
    )
    fanout_above: int = 32  # members: up to this many everyone sends to everyone (membership.py)
    fanout: int = 2  # above that: random members sent to per interval, besides 2 monitors
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
    shutdown_timeout: float = 3.0  # seconds a stopping daemon waits for its tasks
    background: bool = False  # -b: fork, detach, run in the background
    print_pid: bool = False  # -p: print the background daemon's PID
    pidfile: str | None = None  # path to write the daemon's PID to; None = none
    log_file: str | None = None  # in the background: None = syslog
    verbose: bool = False  # -v: debug logging
    user: str | None = None  # drop to this user after binding the ports
    # Who may see this node's processes on /jobs (daemon/procs.py): off, own
    # (those dsh placed), all; None = own, or off where /proc has hidepid.
    jobs: str | None = None
    procstat_port: int | None = None  # TCP port of procstatd's quik/jobs lines; None = none

    @property
    def suspect_after(self) -> float:
        """Seconds without fresh news after which a monitor suspects a member.

        ``maxloops - 1`` whole intervals at their longest (the jitter): one
        lost report never makes a member suspect, two may."""
        return max(1, self.maxloops - 1) * self.interval * (1 + self.jitter)

    @property
    def extra_ttl(self) -> float:
        """Seconds: hard limit on extra load for a node that stops reporting."""
        return (self.extra_reports + 1) * self.interval * (1 + self.jitter)
