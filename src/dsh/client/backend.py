"""Running the command once a node is chosen: the job dsh hands over, through
the mux or directly, with the sync file, signals and the local fallback.

Rules of this file: on dsh's fast path (see cli.py); what only one path
needs is imported on that path.
"""

import os
import sys

from ..errors import EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, Interrupted, MuxUnavailable
from ..request import Job, Request
from .config import FORWARDED_ENV, FORWARDED_ENV_PREFIXES, ClientConfig
from .terminal import raw_terminal, stdin_is_tty, terminal_size

TYPE_CHECKING = False  # mypy knows this name; typing is not imported at run time
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable
    from typing import NoReturn

    from ..mux.client import MuxCall
    from ..ssh.session import Session
    from .syncfile import SyncFile
else:
    import _signal as signal  # signal.py's enums: 6 ms at import on the test machine


RELAYED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def message(text: str) -> None:
    sys.stderr.write(f"dsh: {text}\n")
    sys.stderr.flush()


def working_directory() -> str:
    """$PWD when it names the current directory (keeps symlinked NFS paths), else getcwd."""
    pwd = os.environ.get("PWD")
    try:
        if pwd and os.path.isabs(pwd) and os.path.samestat(os.stat(pwd), os.stat(".")):
            return pwd
    except OSError:
        pass
    return os.getcwd()


def forwarded_env(extra: tuple[str, ...]) -> dict[str, bytes]:
    names = set(FORWARDED_ENV) | set(extra)
    return {
        k: os.environb[os.fsencode(k)]
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


def absolute(path: str) -> str:
    """The mux runs in /: a relative --ssh-config is made absolute for it."""
    if path.startswith(("~", "$")) or os.path.isabs(path):
        return path
    return os.path.abspath(path)


def run_locally(command: list[str]) -> "NoReturn":
    for sig in RELAYED:
        signal.signal(sig, signal.SIG_DFL)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        message(f"{command[0]}: {exc.strerror}")
        os._exit(EXIT_CANNOT_EXECUTE if isinstance(exc, PermissionError) else EXIT_NOT_FOUND)


class Backend:
    """One command, run on the node the runner chose, or here."""

    def __init__(self, config: ClientConfig, command: list[str]) -> None:
        self.config = config
        self.command = command
        self.committed = False  # the command has started somewhere: never run it again
        # The request is on its way to the node: the command may be running
        # there before dsh hears so. A signal now is kept for it (see _on_signal).
        self.handing_over = False
        self.kept = 0  # signals kept while handing over
        self.received_signals: set[int] = set()  # INT, TERM, HUP: see die_as_the_command
        self.wakeup_r, self.wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_r, False)  # (read only when select says so, or to drain)
        os.set_blocking(self.wakeup_w, False)

    # -- signals -----------------------------------------------------------------

    def catch_signals(self) -> None:
        for sig in RELAYED:
            # A signal ignored when dsh started (nohup, `&` in a script) stays
            # ignored, as it would for the command run here.
            if signal.getsignal(sig) != signal.SIG_IGN:
                signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        """Before the request leaves, a signal ends dsh (nothing ran). Once it
        is on its way, the command may have started already, as a local one
        would have at once, so the signal is kept and relayed when the start
        is confirmed (or ends dsh if the start fails); a second one ends the
        wait. After the start it goes to the command (see _relay)."""
        self.received_signals.add(signum)
        if not self.committed:
            if not self.handing_over or self.kept:
                raise Interrupted(signum)
            self.kept += 1
        try:
            os.write(self.wakeup_w, bytes([signum]))
        except OSError:
            pass  # a signal is waiting already (full), or the run is over (closed)

    def _relay(self, session: "Session | MuxCall") -> None:
        for signum in os.read(self.wakeup_r, 64):
            if session.signals_sent >= 2:
                # Asked three times: stop waiting. Closing the channel makes
                # the remote helper kill the command's whole process group.
                raise Interrupted(signum)
            session.relay_signal(signum)

    def _hand_over(self) -> None:
        self.handing_over = True

    def _not_started(self) -> None:
        """The start failed (or was given up): a signal kept meanwhile ends dsh
        now, rather than trying another node."""
        if self.committed or not self.handing_over:
            return
        self.handing_over, self.kept = False, 0
        try:
            kept = os.read(self.wakeup_r, 64)
        except BlockingIOError:
            kept = b""
        if kept:
            raise Interrupted(kept[0])

    def close(self) -> None:
        for fd in (self.wakeup_r, self.wakeup_w):
            os.close(fd)

    # -- the job -----------------------------------------------------------------

    def job(self, node: str, cwd: str, sync: "SyncFile | None") -> Job:
        c = self.config
        umask = os.umask(0)
        os.umask(umask)
        columns, lines = terminal_size() if c.tty else (80, 24)
        request = Request(
            argv=[os.fsencode(a) for a in self.command],
            cwd=os.fsencode(cwd),
            umask=umask,
            env=forwarded_env(c.forward_env),
            sync=sync.path if sync else None,
            sync_timeout=c.sync_timeout,
            waitfile=waitfile_path(),
            pty=c.tty,
        )
        return Job(
            request,
            node=node,
            ssh_config=absolute(c.ssh_config),
            connect_timeout=c.connect_timeout,
            start_grace=c.start_grace,
            python=c.remote_python,
            executor=c.executor,
            stdin=c.stdin and (c.tty or not stdin_is_tty()),
            term=os.environ.get("TERM", "vt100"),
            columns=columns,
            lines=lines,
        )

    def _sync_file(self, cwd: str) -> "SyncFile | None":
        from .syncfile import SyncFile, writable

        if not self.config.sync:
            return None
        if writable(cwd):
            return SyncFile(cwd)
        if self.config.verbose:
            message(f"{cwd} is not writable: no sync file")
        return None

    def _end_sync(self, sync: "SyncFile | None", ended: bool) -> None:
        """Wait until the remote side's removal of the sync file shows here, if
        the command ended there. After a lost connection nothing may ever
        remove it, and after an abort nobody waits for the command's files:
        waiting would only delay the exit."""
        c = self.config
        if sync is not None:
            if ended and not sync.wait_gone(c.sync_timeout) and c.verbose:
                message(f"sync file {sync.path} still visible after {c.sync_timeout:g}s")
            sync.remove()

    # -- running -----------------------------------------------------------------

    def run_local(self) -> "NoReturn":
        run_locally(self.command)

    def run_remote(self, node: str, started: "Callable[[], None]") -> int:
        """Through the mux, or on a connection of our own (--direct, or no mux);
        ``started`` once the command is committed there (it never runs twice).
        NodeFailure: it did not start there, and may be tried elsewhere."""

        def committed() -> None:
            self.committed = True
            started()

        if not self.config.direct:
            try:
                return self.via_mux(node, committed)
            except MuxUnavailable as exc:
                if self.config.verbose:
                    message(f"{exc}; connecting directly")
                self.config = self.config.replace(direct=True)
        return self.direct(node, committed)

    def via_mux(self, node: str, started: "Callable[[], None]") -> int:
        from ..mux import client as mux_client
        from .rundir import runtime_dir

        c = self.config
        try:
            directory = runtime_dir()
        except OSError as exc:
            raise MuxUnavailable(f"no private directory for the mux: {exc}") from None
        call = mux_client.MuxCall(node, directory, c)
        cwd = working_directory()
        sync = self._sync_file(cwd)
        status: int | None = None
        try:
            self._hand_over()
            try:
                call.start(self.job(node, cwd, sync).to_value())
            except BaseException:
                self._not_started()
                raise
            started()
            with raw_terminal(c.tty):
                status = call.finish(self.wakeup_r, self._relay)
            return status
        finally:
            self._end_sync(sync, ended=status is not None)
            call.close()

    def direct(self, node: str, started: "Callable[[], None]") -> int:
        from .direct import run_direct

        cwd = working_directory()
        sync = self._sync_file(cwd)
        job = self.job(node, cwd, sync)
        try:
            return run_direct(
                job, self.wakeup_r, self._relay, self._hand_over, started,
                lambda ended: self._end_sync(sync, ended),
            )  # fmt: skip
        except BaseException:
            self._not_started()
            raise
