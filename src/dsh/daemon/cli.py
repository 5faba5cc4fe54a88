"""``dshd``: parse the command line, fill a DaemonConfig, start the daemon."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from dataclasses import replace

from .. import __version__
from ..core.access import parse_allow
from ..core.cluster import ClusterFile, Discovery, NodeSpec, load_cluster_file
from ..core.score import SCORES
from ..errors import ConfigError, DshError
from .conf import DshdConf, load_conf
from .config import (
    DEFAULT_CONFIG,
    DEFAULT_CONTROL,
    DEFAULT_KEY_FILE,
    DaemonConfig,
    default_cluster_file,
    default_config_file,
    default_key_file,
)
from .control import request
from .keys import generate_key_file, load_keys
from .process import (
    Readiness,
    daemonize,
    drop_privileges,
    raise_fd_limit,
    remove_pidfile,
    setup_logging,
    write_pidfile,
)

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1  # could not start (port in use, ...) or the control request failed
EXIT_CONFIG = 2  # bad flags or a bad cluster file


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port number")
    return value


def _http_port(text: str) -> int | None:
    return None if text in ("0", "off", "none") else _port(text)


def _positive(kind: type[int] | type[float]):  # type: ignore[no-untyped-def]
    def check(text: str) -> int | float:
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text} must be positive")
        return value

    return check


def build_parser() -> argparse.ArgumentParser:
    d = DaemonConfig()
    p = argparse.ArgumentParser(
        prog="dshd",
        description="Cluster load daemon: gossips this node's load over UDP and answers "
        "the cluster status and the least-loaded node over TCP.",
        epilog="environment: DSH_CLUSTER sets the default cluster file. "
        "Exit status: 0 ok, 1 start-up or control failure, 2 bad flags or cluster file.",
    )
    p.add_argument(
        "-f",
        dest="cluster_file",
        metavar="FILE",
        default=default_cluster_file(),
        help="cluster file (default: $DSH_CLUSTER or %(default)s)",
    )
    p.add_argument(
        "-b",
        dest="background",
        action="store_true",
        help="fork into the background once the ports are bound",
    )
    p.add_argument(
        "-p",
        dest="print_pid",
        action="store_true",
        help="with -b: print the daemon's PID on stdout",
    )
    p.add_argument(
        "-t",
        dest="status_port",
        metavar="PORT",
        type=_port,
        default=d.status_port,
        help="TCP port of the full status (default %(default)s)",
    )
    p.add_argument(
        "-r",
        dest="best_port",
        metavar="PORT",
        type=_port,
        default=d.best_port,
        help="TCP port of the best-node answer (default %(default)s)",
    )
    p.add_argument(
        "-u",
        dest="gossip_port",
        metavar="PORT",
        type=_port,
        default=d.gossip_port,
        help="UDP port of the gossip, the same on every node (default %(default)s)",
    )
    p.add_argument(
        "--http",
        dest="http_port",
        metavar="PORT",
        type=_http_port,
        default=d.http_port,
        help="TCP port of the HTTP server (GET /metrics for Prometheus); "
        "0 or off: none (default %(default)s)",
    )
    p.add_argument(
        "--jobs",
        choices=("off", "own", "all"),
        default=d.jobs,
        help="who may see this node's processes on GET /jobs and the procstat port: "
        "off, own (the processes dsh placed here) or all (default own; off where "
        "/proc is mounted with hidepid)",
    )
    p.add_argument(
        "--procstat-port",
        metavar="PORT",
        type=_http_port,
        default=d.procstat_port,
        help="TCP port of procstatd's line protocol (quik or jobs, one line); "
        "procstatd used 7885 (default off)",
    )
    p.add_argument(
        "--config",
        dest="config_file",
        metavar="FILE",
        default=default_config_file(),
        help="sensors and exporters, INI; a FrUCToSA lagent.conf works as it is "
        f"(default $DSH_CONFIG or {DEFAULT_CONFIG} if it exists; without one, the "
        "default sensors and no Graphite)",
    )
    p.add_argument(
        "--name",
        help="this node's entry in the cluster file (default: found "
        "by matching interface addresses and host names)",
    )
    p.add_argument(
        "--listen",
        metavar="ADDR",
        action="append",
        default=[],
        help="address for the TCP ports, HTTP's too (repeatable; default all addresses)",
    )
    p.add_argument(
        "--interval",
        type=_positive(float),
        default=d.interval,
        metavar="SECONDS",
        help="seconds between reports, jittered by +-10%% (default %(default)s)",
    )
    p.add_argument(
        "--maxloops",
        type=_positive(int),
        default=d.maxloops,
        metavar="N",
        help="a member without news for N-1 intervals (+10%% jitter) is suspect; down "
        "after the suspicion timeout (README: Membership) (default %(default)s)",
    )
    p.add_argument(
        "--fanout-above",
        type=int,
        default=d.fanout_above,
        metavar="N",
        help="up to N members every node sends to every other; above, each sends to 2 "
        "monitors and --fanout random members per interval (default %(default)s)",
    )
    p.add_argument(
        "--fanout",
        type=_positive(int),
        default=d.fanout,
        metavar="K",
        help="above --fanout-above: random members sent to per interval (default %(default)s)",
    )
    p.add_argument(
        "--extraload",
        type=float,
        default=d.extraload,
        metavar="X",
        help="load added to a node each time it is named best (default %(default)s)",
    )
    p.add_argument(
        "--score",
        choices=sorted(SCORES),
        default=d.score,
        help="scoring function (default %(default)s)",
    )
    p.add_argument(
        "--control",
        metavar="PATH",
        default=DEFAULT_CONTROL,
        help="Unix socket for --drain/--undrain (default %(default)s)",
    )
    p.add_argument("--pidfile", metavar="FILE", help="write the daemon's PID here")
    p.add_argument(
        "--log",
        dest="log_file",
        metavar="FILE",
        help="log to FILE (default: stderr, or syslog with -b)",
    )
    p.add_argument("--user", metavar="NAME", help="drop root privileges to NAME after binding")
    p.add_argument(
        "--key-file",
        metavar="FILE",
        default=default_key_file(),
        help="cluster key file: seal and authenticate every datagram "
        f"(default $DSH_KEY_FILE or {DEFAULT_KEY_FILE} if it exists)",
    )
    p.add_argument(
        "--no-key",
        action="store_true",
        help="unauthenticated gossip even if a default key file exists",
    )
    p.add_argument(
        "--replay-window",
        type=_positive(float),
        default=d.replay_window,
        metavar="SECONDS",
        help="with a key: drop reports sent more than this far "
        "from our clock (default %(default)s)",
    )
    p.add_argument(
        "--allow",
        metavar="CIDR",
        action="append",
        default=[],
        help="who the TCP ports and HTTP answer: a CIDR, 'loopback' or 'members' "
        "(repeatable; default loopback and members)",
    )
    p.add_argument(
        "--gen-key", metavar="FILE", help="write a new random key file (mode 0600) and exit"
    )
    p.add_argument("-v", dest="verbose", action="store_true", help="debug logging")
    p.add_argument(
        "--drain",
        action="store_const",
        const="drain",
        dest="command",
        help="tell the running local daemon never to be the best node",
    )
    p.add_argument(
        "--undrain", action="store_const", const="undrain", dest="command", help="undo --drain"
    )
    p.add_argument(
        "--list-sensors",
        action="store_true",
        help="list every sensor: available here or why not, its fields and units, "
        "its default interval and options; then exit",
    )
    g = p.add_argument_group("Grafana dashboards (README: Dashboards)")
    g.add_argument(
        "--grafana-dashboard",
        action="store_true",
        help="print a Grafana dashboard's JSON and exit: the cluster's, or with --node one node's",
    )
    g.add_argument("--datasource", metavar="prometheus|graphite", help="what it queries")
    g.add_argument(
        "--node",
        dest="dashboard_node",
        metavar="NODE",
        help="the node dashboard, showing NODE (a cluster name; for Prometheus the host of "
        "its scrape target) until one picks another",
    )
    g.add_argument(
        "--prefix",
        metavar="PREFIX",
        help="Graphite: the [graphite] prefix of the nodes' dshd.conf (default none)",
    )
    p.add_argument("--version", action="version", version=f"dshd {__version__}")
    return p


def config_from_args(args: argparse.Namespace) -> DaemonConfig:
    fields = {k: v for k, v in vars(args).items() if k in DaemonConfig.__dataclass_fields__}
    fields["listen"] = tuple(args.listen)
    fields["allow"] = tuple(args.allow) or DaemonConfig.allow
    if args.no_key:
        fields["key_file"] = None
    return replace(DaemonConfig(), **fields)


def read_conf(config: DaemonConfig) -> DshdConf:
    """The sensors and exporters: the config file's, or the defaults without one."""
    path = config.config_file
    if path is None:
        if not os.path.exists(DEFAULT_CONFIG):
            return DshdConf.defaults()
        path = DEFAULT_CONFIG
    conf = load_conf(path)
    for section, line in conf.ignored:
        log.info("%s:%d: section [%s] is not dshd's; ignored", path, line, section)
    for sensor, line in conf.skipped:
        log.warning("%s:%d: sensor %s is FrUCToSA's, not dshd's; skipped", path, line, sensor)
    return conf


def grafana_dashboard(args: argparse.Namespace) -> int:
    """dshd --grafana-dashboard: a dashboard's JSON on stdout (dashboards/model.py)."""
    from .dashboards.model import dashboard_json

    try:
        if not args.grafana_dashboard:
            raise ValueError("--datasource, --node and --prefix go with --grafana-dashboard")
        if args.datasource is None:
            raise ValueError("--grafana-dashboard needs --datasource prometheus or graphite")
        text = dashboard_json(args.datasource, args.dashboard_node, args.prefix or "")
    except ValueError as exc:
        print(f"dshd: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    sys.stdout.write(text)
    return EXIT_OK


def control(path: str, command: str) -> int:
    """dshd --drain/--undrain: one request to the running daemon (control.py)."""
    try:
        reply = request(path, command)
    except DshError as exc:
        print(f"dshd: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(reply)
    return EXIT_OK


def identify(
    config: DaemonConfig, specs: list[NodeSpec], discovery: tuple[Discovery, ...] = ()
) -> tuple[str, dict[str, tuple[str, ...]]]:
    """This node's name, and what every listed member resolves to.

    With discovery a node need not be listed: --name, else its address on
    the broadcast's subnet (or its first non-loopback address)."""
    from .whoami import discovery_name, find_self, local_addresses, local_hostnames, resolve

    resolved = {s.key: resolve(s.name) for s in specs}
    for spec in specs:
        if not resolved[spec.key]:
            log.warning("node %s does not resolve; will try again", spec.name)
    if config.name is not None:
        key = config.name.lower().rstrip(".")
        match = [s for s in specs if s.key == key]
        if match:
            return match[0].name, resolved
        if discovery:
            return config.name, resolved
        raise ConfigError(f"--name {config.name}: not in {config.cluster_file}")
    try:
        return find_self(specs, resolved, local_addresses(), local_hostnames()).name, resolved
    except ConfigError:
        if not discovery:
            raise
    return discovery_name(discovery), resolved


async def _serve(
    config: DaemonConfig,
    cluster: ClusterFile,
    self_name: str,
    resolved: dict[str, tuple[str, ...]],
    keys: list[bytes] | None,
    conf: DshdConf,
    readiness: Readiness,
) -> None:
    from .server import Daemon

    daemon = Daemon(config, cluster.nodes, self_name, resolved, keys, conf, cluster.discovery)
    await daemon.start()
    if config.pidfile:
        write_pidfile(config.pidfile, config.user)
    if config.user:
        drop_privileges(config.user)
    readiness.ready()
    try:
        await daemon.run()
    finally:
        if config.pidfile:
            remove_pidfile(config.pidfile)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command:
        return control(args.control, args.command)
    if args.grafana_dashboard or args.datasource or args.dashboard_node or args.prefix is not None:
        return grafana_dashboard(args)
    if args.list_sensors:
        from .sensors.catalogue import list_sensors

        sys.stdout.write(list_sensors())
        return EXIT_OK
    if args.gen_key:
        try:
            generate_key_file(args.gen_key)
        except ConfigError as exc:
            print(f"dshd: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        print(f"dshd: new key in {args.gen_key}; copy it to every node (mode 0600)")
        return EXIT_OK
    config = config_from_args(args)
    setup_logging(config.verbose, background=False, log_file=None)
    try:
        parse_allow(config.allow)
        keys = load_keys(config.key_file) if config.key_file else None
        cluster = load_cluster_file(config.cluster_file)
        conf = read_conf(config)
        self_name, resolved = identify(config, cluster.nodes, cluster.discovery)
    except ConfigError as exc:
        print(f"dshd: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    raise_fd_limit()
    readiness = Readiness(None)
    if config.background:
        readiness = daemonize(config.print_pid)
    setup_logging(config.verbose, config.background, config.log_file)
    try:
        if keys is None:
            log.warning(
                "gossip is not authenticated: anyone who can send UDP from a member's "
                "address can report its load (create a key with dshd --gen-key %s)",
                DEFAULT_KEY_FILE,
            )
        asyncio.run(_serve(config, cluster, self_name, resolved, keys, conf, readiness))
    except DshError as exc:
        log.error("%s", exc)
        readiness.failed(f"dshd: {exc}")
        with contextlib.suppress(OSError):
            if config.pidfile:
                remove_pidfile(config.pidfile)
        return EXIT_CONFIG if isinstance(exc, ConfigError) else EXIT_FAILURE
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # a bug: say so where the sysadmin looks (syslog in -b)
        log.exception("dshd failed: %s", exc)
        readiness.failed(f"dshd: internal error: {exc}")
        return EXIT_FAILURE
    return EXIT_OK
