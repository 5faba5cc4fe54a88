"""``dsh COMMAND [ARGS...]``: run a command on the least-loaded node, as if locally."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import sysconfig
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import __version__
from .config import FORWARDED_ENV, FORWARDED_ENV_PREFIXES, ClientConfig
from .errors import DaemonUnreachable, DshError, NodeFailure
from .picker import Backoff, ask, ask_best, ask_status, next_node
from .status import ClusterStatus

if TYPE_CHECKING:
    from .remote import Session

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

exit status:
  the command's own status (0-255), 128+N if it was killed by signal N;
  126/127 the command cannot be executed / was not found;
  255 dsh could not run the command (no node and --no-fallback) or lost the
      connection after it started (as ssh, 255 may also be the command's own);
  2 bad dsh options.
"""


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


def build_parser() -> argparse.ArgumentParser:
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


def config_from_args(args: argparse.Namespace) -> ClientConfig:
    d = ClientConfig()
    host, port = _host_port(
        args.daemon or os.environ.get("DSH_DAEMON") or d.daemon_host, d.best_port
    )
    status_port = args.status_port or int(os.environ.get("DSH_STATUS_PORT") or d.status_port)
    return replace(
        d,
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
    )


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
    for candidate in (
        Path(sys.argv[0]).resolve().parent / "waitfile",
        Path(sysconfig.get_path("scripts")) / "waitfile",
        Path(__file__).resolve().parents[2] / "waitfile",
    ):
        if candidate.is_file():
            return str(candidate)
    return shutil.which("waitfile") or "waitfile"


def run_locally(command: list[str]) -> NoReturn:
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
        if not self.committed:
            raise Interrupted(signum)
        try:
            os.write(self.wakeup_w, bytes([signum]))
        except BlockingIOError:
            pass

    def _relay(self, session: Session) -> None:
        for signum in os.read(self.wakeup_r, 64):
            if session.signals_sent >= 2:
                # Asked three times: stop waiting. Closing the channel makes
                # the remote helper kill the command's whole process group.
                raise Interrupted(signum)
            session.relay_signal(signum)

    # -- choosing ----------------------------------------------------------------

    def status(self) -> ClusterStatus:
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
        from . import ssh
        from .remote import Request, Session
        from .syncfile import SyncFile, writable

        c = self.config
        cwd = working_directory()
        sync = None
        if c.sync:
            if writable(cwd):
                sync = SyncFile(cwd)
            elif c.verbose:
                _message(f"{cwd} is not writable: no sync file")
        umask = os.umask(0)
        os.umask(umask)
        client = None
        try:
            client = ssh.connect(ssh.target_for(node, c.ssh_config, c.connect_timeout))
            session = Session(
                client,
                node,
                self.wakeup_r,
                forward_stdin=c.stdin and not _stdin_is_tty(),
                tty=c.tty,
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
                return session.finish(self._relay)
        finally:
            if sync is not None:
                if self.committed and not sync.wait_gone(c.sync_timeout) and c.verbose:
                    _message(f"sync file {sync.path} still visible after {c.sync_timeout:g}s")
                sync.remove()
            if client is not None:
                client.close()


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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from_args(args)
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
    if not args.command:
        parser.print_usage(sys.stderr)
        _message("no command given")
        return EXIT_USAGE
    dsh = Dsh(config, args.command)
    for sig in RELAYED:
        signal.signal(sig, dsh._on_signal)
    try:
        return dsh.run(dry_run=args.dry_run)
    except Interrupted as exc:
        return 128 + exc.signum
    except DshError as exc:
        _message(str(exc))
        return EXIT_FAILED
