"""``dsh COMMAND [ARGS...]``: run a command on the least-loaded node, as if locally.

Rules of this file: it runs once per compile, so what it imports at start is
only what a bare interpreter has cheaply (see ``python3 -X importtime
dsh true``): no argparse (the options of a normal run are read by
``parse_quick``; argparse only for --help and mistakes), no dataclasses, no
paramiko or psutil (they live in the mux), and the C modules ``_signal``
and ``_socket`` rather than ``signal`` and ``socket``, whose enums take
longer to build than the rest of a run. The same holds for every module it
imports on that path (client_config, picker, mux_client, mux_protocol,
syncfile), which also do without ``from __future__ import annotations``
(importing ``__future__`` is 0.3 ms): annotations that name what only mypy
imports are strings.
"""

import os
import sys

from .. import __version__
from ..errors import DaemonUnreachable, DshError, NodeFailure
from .config import FORWARDED_ENV, FORWARDED_ENV_PREFIXES, ClientConfig
from .picker import Backoff, ClusterView, ask, ask_best, ask_status, next_node

TYPE_CHECKING = False  # mypy knows this name; typing is not imported at run time
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal  # signal.py's enums: 6 ms at import on the test machine
if TYPE_CHECKING:
    import argparse
    from typing import Any, NoReturn

    from ..mux.client import MuxCall
    from ..ssh.session import Session
    from .syncfile import SyncFile

EXIT_USAGE = 2  # bad dsh options
EXIT_CANNOT_EXECUTE = 126  # the command exists but cannot be run (as in a shell)
EXIT_NOT_FOUND = 127  # the command was not found (as in a shell)
EXIT_FAILED = 255  # dsh could not run the command, or lost it (as ssh)

RELAYED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

HELP_EPILOG = """\
environment:
  DSH_DAEMON       HOST[:PORT] of the dshd best-node port (default localhost:8282)
  DSH_STATUS_PORT  its status port (default 8181)
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

exit status:
  the command's own status (0-255), 128+N if it was killed by signal N (dsh
      dies of N itself if N was a signal dsh passed on or a closed pipe);
  126/127 the command cannot be executed / was not found;
  255 dsh could not run the command (no node and --no-fallback) or lost the
      connection, the mux or the executor after it started (as ssh, 255 may
      also be the command's own);
  2 bad dsh options.
"""


# Signals this dsh has received (INT, TERM, HUP): see _die_as_the_command.
received_signals: set[int] = set()


class Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        self.signum = signum


def _message(text: str) -> None:
    sys.stderr.write(f"dsh: {text}\n")
    sys.stderr.flush()


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and "]" not in port:
        return host.strip("[]") or "localhost", int(port)
    return text.strip("[]"), default_port


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
        self.command: list[str] = []


_QUICK_FLAGS = {
    "-n": "no_stdin", "-t": "tty", "-v": "verbose", "-q": "quiet",
    "--no-fallback": "no_fallback", "--no-sync": "no_sync", "--direct": "direct",
    "--mux-stop": "mux_stop",
    "--dry-run": "dry_run", "--slots": "slots", "--status": "status", "--version": "version",
}  # fmt: skip
_QUICK_VALUES: dict[str, tuple[str, type[str] | type[int] | type[float]]] = {
    "-H": ("daemon", str), "--status-port": ("status_port", int),
    "--sync-timeout": ("sync_timeout", float), "--attempts": ("attempts", int),
    "--backoff": ("backoff", float), "--ssh-config": ("ssh_config", str),
}  # fmt: skip


def parse_quick(argv: list[str]) -> Options | None:
    """The usual command lines, read without argparse; None for anything else
    (--help, abbreviations, joined short options, values that look like
    options, mistakes), which build_parser() then reads and reports as ever.
    tests/test_mux.py checks that both read the same."""
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
        help="dshd to ask (default $DSH_DAEMON or localhost:8282)",
    )
    p.add_argument(
        "--status-port",
        type=int,
        metavar="PORT",
        help="dshd's status port (default $DSH_STATUS_PORT or 8181)",
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
    p.add_argument("command", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p


def config_from_args(args: "Options | argparse.Namespace") -> ClientConfig:
    d = ClientConfig()
    host, port = _host_port(
        args.daemon or os.environ.get("DSH_DAEMON") or d.daemon_host, d.best_port
    )
    status_port = args.status_port or int(os.environ.get("DSH_STATUS_PORT") or d.status_port)
    return ClientConfig(
        daemon_host=host,
        best_port=port,
        status_port=status_port,
        ssh_config=args.ssh_config or os.environ.get("DSH_SSH_CONFIG") or d.ssh_config,
        attempts=max(1, args.attempts),
        backoff=args.backoff,
        fallback=not args.no_fallback,
        sync=not args.no_sync,
        sync_timeout=args.sync_timeout,
        stdin=not args.no_stdin,
        tty=args.tty,
        verbose=args.verbose,
        quiet=args.quiet,
        remote_python=os.environ.get("DSH_REMOTE_PYTHON") or sys.executable,
        direct=args.direct or os.environ.get("DSH_DIRECT", "") not in ("", "0"),
        executor=os.environ.get("DSH_EXECUTOR", "1") != "0",
        mux_idle=_env_seconds("DSH_MUX_IDLE", d.mux_idle),
    )


def _env_seconds(name: str, default: float) -> float:
    try:
        return max(0.0, float(os.environ[name]))
    except (KeyError, ValueError):
        return default


def working_directory() -> str:
    """$PWD when it names the current directory (keeps symlinked NFS paths), else getcwd."""
    pwd = os.environ.get("PWD")
    try:
        if pwd and os.path.isabs(pwd) and os.path.samestat(os.stat(pwd), os.stat(".")):
            return pwd
    except OSError:
        pass
    return os.getcwd()


def forwarded_env() -> dict[str, bytes]:
    names = set(FORWARDED_ENV) | set(os.environ.get("DSH_ENV", "").split())
    return {
        k: os.environb[k.encode()]
        for k in os.environ
        if k in names or k.startswith(FORWARDED_ENV_PREFIXES)
    }


def waitfile_path() -> str:
    """waitfile next to dsh (a checkout, or the same bin/ when installed), else on PATH."""
    here = os.path.dirname(os.path.realpath(sys.argv[0]))
    candidates = [os.path.join(here, "waitfile")]
    candidates.append(os.path.join(os.path.dirname(__file__), "..", "..", "..", "waitfile"))
    for candidate in candidates:
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    import shutil
    import sysconfig

    scripts = os.path.join(sysconfig.get_path("scripts"), "waitfile")
    if os.path.isfile(scripts):
        return scripts
    return shutil.which("waitfile") or "waitfile"


def run_locally(command: list[str]) -> "NoReturn":
    for sig in RELAYED:
        signal.signal(sig, signal.SIG_DFL)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        _message(f"{command[0]}: {exc.strerror}")
        os._exit(EXIT_CANNOT_EXECUTE if isinstance(exc, PermissionError) else EXIT_NOT_FOUND)


class Dsh:
    def __init__(self, config: ClientConfig, command: list[str]) -> None:
        self.config = config
        self.command = command
        self.backoff = Backoff(config.backoff)
        self.committed = False  # the command has started somewhere: never run it again
        self.wakeup_r, self.wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_w, False)

    # -- signals -----------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: object) -> None:
        received_signals.add(signum)
        if not self.committed:
            raise Interrupted(signum)
        try:
            os.write(self.wakeup_w, bytes([signum]))
        except BlockingIOError:
            pass

    def _relay(self, session: "Session | MuxCall") -> None:
        for signum in os.read(self.wakeup_r, 64):
            if session.signals_sent >= 2:
                # Asked three times: stop waiting. Closing the channel makes
                # the remote helper kill the command's whole process group.
                raise Interrupted(signum)
            session.relay_signal(signum)

    # -- choosing ----------------------------------------------------------------

    def status(self) -> ClusterView:
        c = self.config
        return ask_status(c.daemon_host, c.status_port, c.daemon_timeout)

    def fallback(self, reason: str) -> int:
        if not self.config.fallback:
            _message(f"{reason}; not running locally (--no-fallback)")
            return EXIT_FAILED
        if not self.config.quiet:
            _message(f"{reason}; running locally")
        run_locally(self.command)

    def run(self, dry_run: bool = False) -> int:
        c = self.config
        try:
            best = ask_best(c.daemon_host, c.best_port, c.daemon_timeout)
            status = self.status()
        except DaemonUnreachable as exc:
            if dry_run:  # say where it would run; never run it
                _message(f"{exc}; would run locally")
                print("local")
                return 0
            return self.fallback(str(exc))
        tried: set[str] = set()
        node = best
        if node is not None and node != status.self_name and self.backoff.active(node):
            node = next_node(status, tried, self.backoff)
        for _attempt in range(c.attempts):
            if node is None:
                break
            local = node == status.self_name
            if c.verbose or dry_run:
                where = f"{node} (local)" if local else node
                if dry_run:
                    print(node)
                    return 0
                _message(f"running on {where}")
            if local:
                run_locally(self.command)
            try:
                return self.run_remote(node)
            except NodeFailure as exc:
                _message(f"{exc}; trying another node")
                if exc.transport:
                    self.backoff.mark(node)
            tried.add(node)
            try:
                node = next_node(self.status(), tried, self.backoff)
            except DaemonUnreachable:
                node = None
        if dry_run:
            print("NONE")
            return EXIT_FAILED
        reason = (
            "no node available"
            if not tried
            else f"no node could run it (tried {', '.join(sorted(tried))})"
        )
        return self.fallback(reason)

    # -- running -----------------------------------------------------------------

    def run_remote(self, node: str) -> int:
        """Through the mux, or on a connection of our own (--direct, or no mux)."""
        if not self.config.direct:
            from ..mux.client import MuxUnavailable

            try:
                return self.run_remote_via_mux(node)
            except MuxUnavailable as exc:
                if self.config.verbose:
                    _message(f"{exc}; connecting directly")
                self.config = self.config.replace(direct=True)
        return self.run_remote_direct(node)

    def _sync_file(self, cwd: str) -> "SyncFile | None":
        from .syncfile import SyncFile, writable

        if not self.config.sync:
            return None
        if writable(cwd):
            return SyncFile(cwd)
        if self.config.verbose:
            _message(f"{cwd} is not writable: no sync file")
        return None

    def _end_sync(self, sync: "SyncFile | None", ended: bool) -> None:
        """Wait until the remote side's removal of the sync file shows here, if
        the command ended there. After a lost connection nothing may ever
        remove it, and after an abort nobody waits for the command's files:
        waiting would only delay the exit."""
        c = self.config
        if sync is not None:
            if ended and not sync.wait_gone(c.sync_timeout) and c.verbose:
                _message(f"sync file {sync.path} still visible after {c.sync_timeout:g}s")
            sync.remove()

    def run_remote_via_mux(self, node: str) -> int:
        from ..mux import client as mux_client
        from .picker import runtime_dir

        c = self.config
        cwd = working_directory()
        umask = os.umask(0)
        os.umask(umask)
        try:
            directory = runtime_dir()
        except OSError as exc:
            raise mux_client.MuxUnavailable(f"no private directory for the mux: {exc}") from None
        forward = c.stdin and (c.tty or not _stdin_is_tty())
        columns, lines = _terminal_size() if c.tty else (80, 24)
        options = ["--idle", f"{c.mux_idle:g}", "--executor-max-age", f"{c.executor_max_age:g}",
                   "--executor-retry", f"{c.executor_retry:g}"]  # fmt: skip
        call = mux_client.MuxCall(node, directory)
        sync = self._sync_file(cwd)
        status: int | None = None
        try:
            body: dict[str, Any] = {
                "node": node,
                "ssh_config": _absolute(c.ssh_config),
                "connect_timeout": c.connect_timeout,
                "python": c.remote_python,
                "executor": c.executor,
                "argv": [os.fsencode(a) for a in self.command],
                "cwd": os.fsencode(cwd),
                "umask": umask,
                "env": forwarded_env(),
                "sync": sync.path if sync else None,
                "sync_timeout": c.sync_timeout,
                "waitfile": waitfile_path(),
                "stdin": forward,
                "tty": c.tty,
                "term": os.environ.get("TERM", "vt100"),
                "columns": columns,
                "lines": lines,
            }
            call.start(body, options, c.mux_start_timeout)
            self.committed = True
            self.backoff.clear(node)
            with _raw_terminal(c.tty):
                status = call.finish(self.wakeup_r, self._relay)
            return status
        finally:
            self._end_sync(sync, ended=status is not None)
            call.close()

    def run_remote_direct(self, node: str) -> int:
        if sys.flags.no_site:  # python3 -S dsh: paramiko is in site-packages
            import site

            site.main()
        from ..ssh import connect as ssh
        from ..ssh.session import Request, Session, Stdio

        c = self.config
        cwd = working_directory()
        sync = self._sync_file(cwd)
        umask = os.umask(0)
        os.umask(umask)
        client = None
        status: int | None = None
        try:
            client = ssh.connect(ssh.target_for(node, c.ssh_config, c.connect_timeout))
            columns, lines = _terminal_size() if c.tty else (80, 24)
            session = Session(
                client,
                node,
                self.wakeup_r,
                forward_stdin=c.stdin and not _stdin_is_tty(),
                tty=c.tty,
                stdio=Stdio(term=os.environ.get("TERM", "vt100"), columns=columns, lines=lines),
            )
            request = Request(
                argv=[os.fsencode(a) for a in self.command],
                cwd=os.fsencode(cwd),
                umask=umask,
                env=forwarded_env(),
                sync=sync.path if sync else None,
                sync_timeout=c.sync_timeout,
                waitfile=waitfile_path(),
                pty=c.tty,
            )
            session.start(request, c.remote_python)
            self.committed = True
            self.backoff.clear(node)
            with _raw_terminal(c.tty):
                status = session.finish(self._relay)
            return status
        finally:
            self._end_sync(sync, ended=status is not None and session.aborted_by is None)
            if client is not None:
                client.close()


def _absolute(path: str) -> str:
    """The mux runs in /: a relative --ssh-config is made absolute here."""
    if path.startswith(("~", "$")) or os.path.isabs(path):
        return path
    return os.path.abspath(path)


def _terminal_size() -> tuple[int, int]:
    try:
        size = os.get_terminal_size(0)
        return size.columns, size.lines
    except OSError:
        return 80, 24


def _stdin_is_tty() -> bool:
    try:
        return os.isatty(0)
    except OSError:
        return False


class _raw_terminal:
    """With -t, the local terminal passes every key to the remote one (as ssh -t)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and _stdin_is_tty()
        self.saved: list[Any] | None = None

    def __enter__(self) -> None:
        if self.enabled:
            import termios
            import tty

            self.saved = termios.tcgetattr(0)
            tty.setraw(0)

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, self.saved)


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
    _die_as_the_command(status)
    os._exit(status)


def _die_as_the_command(status: int) -> None:
    """End by signal N, not with status 128+N, when the command ended so because
    of what happened to this dsh: the user's Ctrl-C (or a TERM or HUP) that dsh
    passed on, or a closed output pipe. The shell then sees what a local
    command would have given it: a `for` loop stops at Ctrl-C (bash goes on
    when a child exits 130, taking it for a child that handled the signal),
    and `dsh yes | head -1` dies of SIGPIPE silently. A status of 128+N from
    any other cause stays a status: dsh cannot tell a command killed by N on
    the node from one that exited with 128+N, and does not guess."""
    signum = status - 128
    if signum in received_signals or (signum == signal.SIGPIPE and _output_closed()):
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)  # delivered before kill() returns


def _output_closed() -> bool:
    import select

    poller = select.poll()
    poller.register(1, select.POLLOUT)
    return any(events & select.POLLERR for _fd, events in poller.poll(0))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_quick(argv) or build_parser().parse_args(argv)
    if getattr(args, "version", False):  # (argparse's --version prints it itself)
        print(f"dsh {__version__}")
        return 0
    config = config_from_args(args)
    if args.mux_stop:
        from ..mux.client import ask_to_stop
        from .picker import runtime_dir

        try:
            _message(ask_to_stop(runtime_dir()))
        except OSError as exc:
            _message(f"cannot reach the mux: {exc}")
            return EXIT_FAILED
        return 0
    try:
        if args.status:
            sys.stdout.write(ask(config.daemon_host, config.status_port, config.daemon_timeout))
            return 0
        if args.slots:
            try:
                print(
                    ask_status(
                        config.daemon_host, config.status_port, config.daemon_timeout
                    ).slots()
                )
            except DaemonUnreachable as exc:
                if not config.quiet:
                    _message(f"{exc}; counting local CPUs")
                print(os.cpu_count() or 1)
            return 0
    except DshError as exc:
        _message(str(exc))
        return EXIT_FAILED
    if args.command and args.command[0] == "--":
        args.command = args.command[1:]  # `dsh -- cmd`: the end of dsh's options
    if not args.command:
        build_parser().print_usage(sys.stderr)
        _message("no command given")
        return EXIT_USAGE
    dsh = Dsh(config, args.command)
    for sig in RELAYED:
        # A signal ignored when dsh started (nohup, `&` in a script) stays
        # ignored, as it would for the command run here.
        if signal.getsignal(sig) != signal.SIG_IGN:
            signal.signal(sig, dsh._on_signal)
    try:
        return dsh.run(dry_run=args.dry_run)
    except Interrupted as exc:
        return 128 + exc.signum
    except DshError as exc:
        _message(str(exc))
        return EXIT_FAILED
