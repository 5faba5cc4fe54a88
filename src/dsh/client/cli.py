"""``dsh COMMAND [ARGS...]``: run a command on the least-loaded node, as if locally.

Rules of this file: it runs once per compile, so what it imports at start is
only what a bare interpreter has cheaply (see ``python3 -X importtime
dsh true``): no argparse (the options of a normal run are read by
``parse_quick``; argparse only for --help and mistakes), no dataclasses, no
paramiko or psutil (they live in the mux), and the C modules ``_signal``
and ``_socket`` rather than ``signal`` and ``socket``, whose enums take
longer to build than the rest of a run. The same holds for every module it
imports on that path (client/config, runner, backend, backoff, rundir,
daemon_client, terminal, syncfile; core/status, request, errors, defaults;
mux/client, mux/protocol), which also do without ``from __future__ import annotations``
(importing ``__future__`` is 0.3 ms): annotations that name what only mypy
imports are strings.
"""

import os
import sys

from .. import __version__, defaults
from ..errors import (
    EXIT_FAILED,
    EXIT_USAGE,
    ConfigError,
    DaemonUnreachable,
    DshError,
    Interrupted,
)
from .config import ClientConfig, config_from

TYPE_CHECKING = False  # mypy knows this name; typing is not imported at run time
if TYPE_CHECKING:
    import argparse
    from typing import NoReturn

    from .daemon_client import DaemonClient


HELP_EPILOG = f"""\
environment:
  DSH_DAEMON       HOST[:PORT] of the dshd best-node port (default localhost:{defaults.BEST_PORT})
  DSH_STATUS_PORT  its status port (default {defaults.STATUS_PORT})
  DSH_SSH_CONFIG   ssh config file (default ~/.ssh/config)
  DSH_ENV          names of further variables to pass to the remote command
                   (LANG, LANGUAGE, TZ and LC_* always are)
  DSH_REMOTE_PYTHON  python3 on the nodes for dsh's remote helper
                   (default: this interpreter's path, as on every node)
  DSH_DIRECT=1     as --direct
  DSH_EXECUTOR=0   the mux runs each command on an SSH channel of its own
                   instead of the node's resident executor
  DSH_MUX_IDLE     seconds a mux dsh starts lives on with nothing to do
                   (default 60)
  DSH_PYTHON       the interpreter the dsh command starts (default: the
                   python3 beside it, else python3 on PATH)

subcommands:
  dsh top [--once|--json|--log FILE]  the cluster, live (dsh top --help);
                   `dsh -- top` runs top on a node
  dsh plot --png FILE [--since 10m]  the strip charts as a PNG (dsh plot --help);
                   `dsh -- plot` runs plot on a node
  dsh ps [-u USER|--all] [-w NODES] [--sort cpu|mem|time] [--json]  processes
                   on every live node (dsh ps --help); `dsh -- ps` runs ps on a node
  dsh -a COMMAND / dsh -w NODES COMMAND  on every live node / on NODES at once,
                   each output line prefixed "NODE: " (-b: gathered); the exit
                   status is the highest of the commands', 255 if a node could
                   not run it; down and left nodes are skipped (--all-listed tries them)

exit status:
  the command's own status (0-255), 128+N if it was killed by signal N (dsh
      dies of N itself if N was a signal dsh passed on or a closed pipe);
  126/127 the command cannot be executed / was not found;
  255 dsh could not run the command (no node and --no-fallback) or lost the
      connection, the mux or the executor after it started (as ssh, 255 may
      also be the command's own);
  2 bad dsh options.
"""


# -- options ---------------------------------------------------------------------


class Options:
    """The parsed command line: what argparse's Namespace holds for build_parser()."""

    def __init__(self) -> None:
        d = ClientConfig()
        self.daemon: str | None = None
        self.status_port: int | None = None
        self.no_stdin = False
        self.tty = False
        self.verbose = False
        self.quiet = False
        self.no_fallback = False
        self.no_sync = False
        self.sync_timeout: float = d.sync_timeout
        self.attempts: int = d.attempts
        self.backoff: float = d.backoff
        self.ssh_config: str | None = None
        self.direct = False
        self.mux_stop = False
        self.dry_run = False
        self.slots = False
        self.status = False
        self.version = False
        self.all_nodes = False  # -a, -w, -x, -f, -b, --all-listed: client/fanout.py
        self.nodes: str | None = None
        self.exclude: str | None = None
        self.fanout = 64
        self.gather = False
        self.all_listed = False
        self.command: list[str] = []


_QUICK_FLAGS = {
    "-n": "no_stdin", "-t": "tty", "-v": "verbose", "-q": "quiet",
    "--no-fallback": "no_fallback", "--no-sync": "no_sync", "--direct": "direct",
    "--mux-stop": "mux_stop",
    "--dry-run": "dry_run", "--slots": "slots", "--status": "status", "--version": "version",
    "-a": "all_nodes", "-b": "gather", "--all-listed": "all_listed",
}  # fmt: skip
_QUICK_VALUES: dict[str, tuple[str, type[str] | type[int] | type[float]]] = {
    "-H": ("daemon", str), "--status-port": ("status_port", int),
    "--sync-timeout": ("sync_timeout", float), "--attempts": ("attempts", int),
    "--backoff": ("backoff", float), "--ssh-config": ("ssh_config", str),
    "-w": ("nodes", str), "-x": ("exclude", str), "-f": ("fanout", int),
}  # fmt: skip


def parse_quick(argv: list[str]) -> Options | None:
    """The usual command lines, read without argparse; None for anything else
    (--help, abbreviations, joined short options, values that look like
    options, mistakes), which build_parser() then reads and reports as ever.
    The unit tests check that both read the same."""
    options = Options()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-") or arg == "-":
            options.command = argv[i:]
            break
        name, eq, value = arg.partition("=")
        if arg in _QUICK_FLAGS:
            setattr(options, _QUICK_FLAGS[arg], True)
            i += 1
            continue
        if arg in _QUICK_VALUES and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            value = argv[i + 1]
            i += 1
        elif not (eq and name.startswith("--") and name in _QUICK_VALUES):
            return None
        dest, kind = _QUICK_VALUES[name]
        try:
            setattr(options, dest, kind(value))
        except ValueError:
            return None
        i += 1
    return options


def build_parser() -> "argparse.ArgumentParser":
    import argparse

    d = ClientConfig()
    p = argparse.ArgumentParser(
        prog="dsh",
        usage="dsh [OPTIONS] COMMAND [ARGS...]",
        description="Run COMMAND on the least-loaded cluster node over SSH, in the same "
        "directory, with the same exit status and output as if it ran here.",
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-H",
        dest="daemon",
        metavar="HOST[:PORT]",
        help=f"dshd to ask (default $DSH_DAEMON or localhost:{defaults.BEST_PORT})",
    )
    p.add_argument(
        "--status-port",
        type=int,
        metavar="PORT",
        help=f"dshd's status port (default $DSH_STATUS_PORT or {defaults.STATUS_PORT})",
    )
    p.add_argument(
        "-n", dest="no_stdin", action="store_true", help="never read stdin (like ssh -n)"
    )
    p.add_argument(
        "-t", dest="tty", action="store_true", help="give the remote command a pseudo-terminal"
    )
    p.add_argument(
        "-v", dest="verbose", action="store_true", help="say on stderr which node runs the command"
    )
    p.add_argument(
        "-q",
        dest="quiet",
        action="store_true",
        help="do not say when running locally as a fallback",
    )
    p.add_argument(
        "--no-fallback",
        action="store_true",
        help="fail (exit 255) instead of running locally when no node can be used",
    )
    p.add_argument("--no-sync", action="store_true", help="skip the NFS sync-file protocol")
    p.add_argument(
        "--sync-timeout",
        type=float,
        default=d.sync_timeout,
        metavar="SECONDS",
        help="how long each side waits for the sync file (default %(default)s)",
    )
    p.add_argument(
        "--attempts",
        type=int,
        default=d.attempts,
        metavar="N",
        help="nodes to try before the command starts (default %(default)s)",
    )
    p.add_argument(
        "--backoff",
        type=float,
        default=d.backoff,
        metavar="SECONDS",
        help="avoid a node this long after an SSH failure (default %(default)s)",
    )
    p.add_argument(
        "--ssh-config",
        metavar="FILE",
        help="ssh config file (default $DSH_SSH_CONFIG or ~/.ssh/config)",
    )
    p.add_argument(
        "--direct",
        action="store_true",
        help="connect to the node from this process, without the mux (as dsh 0.1 did)",
    )
    p.add_argument(
        "--mux-stop",
        action="store_true",
        help="tell this user's mux to take no more commands and exit when those it runs end",
    )
    p.add_argument("--dry-run", action="store_true", help="print the chosen node and exit")
    p.add_argument(
        "--slots",
        action="store_true",
        help="print the number of CPUs on live, undrained nodes (for make -j)",
    )
    p.add_argument("--status", action="store_true", help="print the daemon's status table")
    p.add_argument("--version", action="version", version=f"dsh {__version__}")
    fan = p.add_argument_group("on many nodes at once (as pdsh and clush)")
    fan.add_argument(
        "-a",
        dest="all_nodes",
        action="store_true",
        help="run COMMAND on every node not down or left",
    )
    fan.add_argument(
        "-w", dest="nodes", metavar="NODES", help="run COMMAND on NODES: node[01-16,20],@up,..."
    )
    fan.add_argument("-x", dest="exclude", metavar="NODES", help="but not on these NODES")
    fan.add_argument(
        "-f", dest="fanout", type=int, default=64, metavar="N",
        help="at most N commands at once (default %(default)s)",
    )  # fmt: skip
    fan.add_argument(
        "-b", dest="gather", action="store_true",
        help="gather the output: nodes with the same output once, as dshbak -c",
    )  # fmt: skip
    fan.add_argument(
        "--all-listed",
        action="store_true",
        help="try the nodes the gossip says are down or left too",
    )
    p.add_argument("command", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p


# Signals this dsh has received (INT, TERM, HUP): see die_as_the_command.
received_signals: set[int] = set()


def console() -> "NoReturn":
    """The ``dsh`` command: main(), then exit without the interpreter's tear-down,
    which costs 1.5 ms of a 20 ms run and has nothing left to do once the
    standard streams are flushed (dsh registers no atexit handler)."""
    status = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    from .terminal import die_as_the_command

    die_as_the_command(status, received_signals)
    os._exit(status)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["top"]:  # `dsh top`: the cluster view (`dsh -- top` runs top on a node)
        from .top.cli import main as top

        return top(argv[1:])
    if argv[:1] == ["ps"]:  # `dsh ps`: processes across the cluster (`dsh -- ps` runs ps)
        from .ps import main as ps

        return ps(argv[1:])
    if argv[:1] == ["plot"]:  # `dsh plot`: the strip charts (`dsh -- plot` runs plot on a node)
        from .plot.cli import main as plot

        return plot(argv[1:])
    args = parse_quick(argv) or build_parser().parse_args(argv)
    if getattr(args, "version", False):  # (argparse's --version prints it itself)
        print(f"dsh {__version__}")
        return 0
    # Only now what a run needs (--version and --help are answered without it).
    from .backend import message
    from .daemon_client import DaemonClient, ask

    try:
        config = config_from(args)
    except ConfigError as exc:
        message(str(exc))
        return EXIT_USAGE
    if args.all_nodes or args.nodes is not None:  # dsh -a / -w: many nodes at once
        from .fanout import main as fanout

        return fanout(args, config, received_signals)
    if args.exclude is not None or args.gather or args.all_listed:
        message("-x, -b and --all-listed go with -a or -w NODES")
        return EXIT_USAGE
    if args.mux_stop:
        from ..mux.client import ask_to_stop
        from .rundir import runtime_dir

        try:
            message(ask_to_stop(runtime_dir()))
        except OSError as exc:
            message(f"cannot reach the mux: {exc}")
            return EXIT_FAILED
        return 0
    daemon = DaemonClient(
        config.daemon_host, config.best_port, config.status_port, config.daemon_timeout
    )
    try:
        if args.status:
            sys.stdout.write(ask(config.daemon_host, config.status_port, config.daemon_timeout))
            return 0
        if args.slots:
            try:
                print(daemon.status().slots())
            except DaemonUnreachable as exc:
                if not config.quiet:
                    message(f"{exc}; counting local CPUs")
                print(os.cpu_count() or 1)
            return 0
    except DshError as exc:
        message(str(exc))
        return EXIT_FAILED
    if args.command and args.command[0] == "--":
        args.command = args.command[1:]  # `dsh -- cmd`: the end of dsh's options
    if not args.command:
        build_parser().print_usage(sys.stderr)
        message("no command given")
        return EXIT_USAGE
    return run(config, args.command, daemon, dry_run=args.dry_run)


def run(config: ClientConfig, command: list[str], daemon: "DaemonClient", dry_run: bool) -> int:
    from .backend import Backend, message
    from .backoff import Backoff
    from .runner import Runner

    backend = Backend(config, command)
    backend.received_signals = received_signals
    backend.catch_signals()
    runner = Runner(config, daemon, backend, Backoff(config.backoff), say=message)
    try:
        return runner.run(dry_run=dry_run)
    except Interrupted as exc:
        return 128 + exc.signum
    except DshError as exc:
        message(str(exc))
        return EXIT_FAILED
    finally:
        backend.close()
