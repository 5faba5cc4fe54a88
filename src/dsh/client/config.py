"""Every tunable of dsh and of the mux it starts, in one frozen object, and the
one place that reads dsh's environment variables (``config_from``).

Not a dataclass, unlike config.DaemonConfig, and on purpose: dsh starts once
per compile, and ``import dataclasses`` (inspect, re, ...) alone costs more
than the rest of a dsh run through the mux. The fields are spelled twice (the
signature and ``_FIELDS``); the unit tests check that they agree.
"""

import os
import sys

from .. import defaults
from ..errors import ConfigError
from ..request import Record

TYPE_CHECKING = False  # mypy knows this name; typing is not imported at run time
if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping
    from typing import Any

    from .cli import Options

DEFAULT_DAEMON = "localhost"
DEFAULT_BEST_PORT = defaults.BEST_PORT
DEFAULT_STATUS_PORT = defaults.STATUS_PORT
DEFAULT_HTTP_PORT = defaults.HTTP_PORT
SSH_CONFIG = "~/.ssh/config"
# Variables dsh passes to the remote command besides those named in $DSH_ENV:
# the locale, so that messages and sorting match the local run.
FORWARDED_ENV_PREFIXES = ("LC_",)
FORWARDED_ENV = ("LANG", "LANGUAGE", "TZ")

_FIELDS = (
    "daemon_host", "best_port", "status_port", "daemon_timeout", "ssh_config",
    "connect_timeout", "attempts", "backoff", "fallback", "sync", "sync_timeout", "stdin",
    "tty", "verbose", "quiet", "remote_python", "direct", "executor", "mux_idle",
    "mux_start_timeout", "executor_max_age", "executor_retry", "forward_env",
    "start_grace", "mux_accept_timeout", "mux_failed_hold", "mux_log_keep", "http_port",
)  # fmt: skip


class ClientConfig(Record):
    __slots__ = _FIELDS

    daemon_host: str
    best_port: int
    status_port: int
    daemon_timeout: float
    ssh_config: str
    connect_timeout: float
    attempts: int
    backoff: float
    fallback: bool
    sync: bool
    sync_timeout: float
    stdin: bool
    tty: bool
    verbose: bool
    quiet: bool
    remote_python: str
    direct: bool
    executor: bool
    mux_idle: float
    mux_start_timeout: float
    executor_max_age: float
    executor_retry: float
    forward_env: tuple[str, ...]
    start_grace: float
    mux_accept_timeout: float
    mux_failed_hold: float
    mux_log_keep: int
    http_port: int

    def __init__(
        self,
        *,
        daemon_host: str = DEFAULT_DAEMON,  # -H / DSH_DAEMON
        best_port: int = DEFAULT_BEST_PORT,
        status_port: int = DEFAULT_STATUS_PORT,  # --status-port / DSH_STATUS_PORT
        daemon_timeout: float = 2.0,  # seconds to wait for the local daemon's answer
        ssh_config: str = SSH_CONFIG,  # --ssh-config / DSH_SSH_CONFIG
        connect_timeout: float = 10.0,  # seconds for TCP connect + SSH handshake + auth
        attempts: int = 3,  # nodes tried before the command has started, then local
        backoff: float = 60.0,  # seconds a node that failed in transport is avoided
        fallback: bool = True,  # run locally when no node can be used
        sync: bool = True,  # the NFS sync-file protocol
        sync_timeout: float = 10.0,  # seconds each side waits for the sync file
        stdin: bool = True,  # forward stdin when it is a pipe or file (-n: never)
        tty: bool = False,  # -t: remote pseudo-terminal, stdin forwarded raw
        verbose: bool = False,
        quiet: bool = False,
        remote_python: str = "",  # interpreter for the remote helper; "" = this one's path
        # The mux and the executor (README.md, "The mux and the executor"):
        direct: bool = False,  # --direct / DSH_DIRECT=1: no mux, a connection of dsh's own
        executor: bool = True,  # DSH_EXECUTOR=0: the mux gives each command an exec channel
        mux_idle: float = 60.0,  # DSH_MUX_IDLE: seconds a mux with nothing to do lives on
        mux_start_timeout: float = 10.0,  # seconds dsh waits for a mux it started to listen
        executor_max_age: float = 300.0,  # seconds an executor takes new commands
        executor_retry: float = 60.0,  # seconds a node whose executor failed uses channels
        # DSH_ENV: names of further variables passed to the remote command
        # (FORWARDED_ENV and FORWARDED_ENV_PREFIXES always are)
        forward_env: tuple[str, ...] = (),
        # seconds beyond the sync-file wait for the node to say whether the
        # command started (a hung NFS mount under chdir must not stall a build)
        start_grace: float = 30.0,
        mux_accept_timeout: float = 10.0,  # seconds a mux gets to take a request (a well one: 0)
        mux_failed_hold: float = 60.0,  # seconds dsh goes direct after a mux failed to start
        mux_log_keep: int = 1 << 20,  # bytes of mux.log beyond which a new mux starts a new one
        http_port: int = DEFAULT_HTTP_PORT,  # DSH_HTTP_PORT: dshd's HTTP port, what dsh top reads
    ) -> None:
        values = locals()
        for name in _FIELDS:
            object.__setattr__(self, name, values[name])

    def replace(self, **changes: "Any") -> "ClientConfig":
        return ClientConfig(**{**self.as_dict(), **changes})


# -- the command line and the environment -----------------------------------------


def http_address(config: "ClientConfig", daemon: "str | None") -> tuple[str, int]:
    """The dshd HTTP port that dsh top, ps and plot ask: ``-H HOST[:PORT]`` (a
    PORT there is the HTTP port), else $DSH_DAEMON's host and $DSH_HTTP_PORT."""
    if daemon:
        return _host_port(daemon, config.http_port)
    return config.daemon_host, config.http_port


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and "]" not in port:
        return host.strip("[]") or "localhost", int(port)
    return text.strip("[]"), default_port


def _env_port(environ: "Mapping[str, str]", name: str, default: int) -> int:
    text = environ.get(name) or ""
    if not text:
        return default
    if not defaults.is_port(text):
        raise ConfigError(f"{name}={text!r} is not a port number (1-65535)")
    return int(text)


def _env_seconds(environ: "Mapping[str, str]", name: str, default: float) -> float:
    text = environ.get(name) or ""
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise ConfigError(f"{name}={text!r} is not a number of seconds")
    return value


def config_from(
    args: "Options | argparse.Namespace", environ: "Mapping[str, str] | None" = None
) -> ClientConfig:
    """The command line over the environment over the defaults; ConfigError
    (one line, exit 2) for a variable that cannot be meant."""
    env = os.environ if environ is None else environ
    d = ClientConfig()
    host, port = _host_port(args.daemon or env.get("DSH_DAEMON") or d.daemon_host, d.best_port)
    return ClientConfig(
        daemon_host=host,
        best_port=port,
        status_port=args.status_port or _env_port(env, "DSH_STATUS_PORT", d.status_port),
        ssh_config=args.ssh_config or env.get("DSH_SSH_CONFIG") or d.ssh_config,
        attempts=max(1, args.attempts),
        backoff=args.backoff,
        fallback=not args.no_fallback,
        sync=not args.no_sync,
        sync_timeout=args.sync_timeout,
        stdin=not args.no_stdin,
        tty=args.tty,
        verbose=args.verbose,
        quiet=args.quiet,
        remote_python=env.get("DSH_REMOTE_PYTHON") or sys.executable,
        direct=args.direct or env.get("DSH_DIRECT", "") not in ("", "0"),
        executor=env.get("DSH_EXECUTOR", "1") != "0",
        mux_idle=_env_seconds(env, "DSH_MUX_IDLE", d.mux_idle),
        forward_env=tuple(env.get("DSH_ENV", "").split()),
        http_port=_env_port(env, "DSH_HTTP_PORT", d.http_port),
    )
